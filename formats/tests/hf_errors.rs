//! One test per way an HF model directory or its config can be refused.

use std::borrow::Cow;
use std::fs;
use std::path::Path;

use llmtool_formats::hf::{config_bool, config_f64, config_opt_usize, config_usize, BaseHparams, HfDir, HfError};
use llmtool_formats::safetensors::{write_safetensors, Dtype, StTensor};
use serde_json::json;

fn weights(dir: &Path, name: &str) {
    let t = vec![StTensor::new("w", Dtype::F32, vec![2])];
    let mut f = fs::File::create(dir.join(name)).unwrap();
    write_safetensors(&mut f, &t, None, |_, _| Ok(Cow::Owned(vec![0; 8])), |_| {}).unwrap();
}

fn model_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("config.json"), r#"{"model_type": "llama"}"#).unwrap();
    weights(d.path(), "model.safetensors");
    d
}

#[test]
fn valid_dir_opens() {
    let d = model_dir();
    let hf = HfDir::open(d.path()).unwrap();
    assert_eq!(hf.config["model_type"], "llama");
    assert_eq!(hf.weights.tensors().len(), 1);
}

#[test]
fn not_a_directory() {
    let d = model_dir();
    let e = HfDir::open(&d.path().join("config.json")).unwrap_err();
    assert!(matches!(e, HfError::NotADirectory { .. }), "{e}");
}

#[test]
fn config_missing() {
    let d = model_dir();
    fs::remove_file(d.path().join("config.json")).unwrap();
    let e = HfDir::open(d.path()).unwrap_err();
    assert!(matches!(e, HfError::MissingConfig { .. }), "{e}");
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn config_not_json_names_file_line_column() {
    let d = model_dir();
    fs::write(d.path().join("config.json"), "{\n  \"a\": 1,\n  \"b\": ]\n}").unwrap();
    let e = HfDir::open(d.path()).unwrap_err();
    assert!(matches!(&e, HfError::Json { file, line: 3, column: 8, .. } if file.ends_with("config.json")), "{e}");
}

#[test]
fn config_not_an_object() {
    let d = model_dir();
    fs::write(d.path().join("config.json"), "[1]").unwrap();
    assert!(matches!(HfDir::open(d.path()).unwrap_err(), HfError::NotAnObject { .. }));
}

#[test]
fn optional_json_file_invalid() {
    let d = model_dir();
    fs::write(d.path().join("tokenizer_config.json"), "{oops").unwrap();
    let e = HfDir::open(d.path()).unwrap_err();
    assert!(matches!(&e, HfError::Json { file, .. } if file.ends_with("tokenizer_config.json")), "{e}");
}

#[test]
fn only_pytorch_bin_refused_with_advice() {
    let d = model_dir();
    fs::remove_file(d.path().join("model.safetensors")).unwrap();
    fs::write(d.path().join("pytorch_model.bin"), b"PK\x03\x04").unwrap();
    let e = HfDir::open(d.path()).unwrap_err();
    assert!(matches!(&e, HfError::PickleOnly { found, .. } if found == &["pytorch_model.bin"]), "{e}");
    assert!(e.to_string().contains("safe_serialization=True"), "{e}");
}

#[test]
fn weights_missing() {
    let d = model_dir();
    fs::remove_file(d.path().join("model.safetensors")).unwrap();
    assert!(matches!(HfDir::open(d.path()).unwrap_err(), HfError::MissingWeights { .. }));
}

#[test]
fn several_safetensors_without_index_refused() {
    let d = model_dir();
    fs::rename(d.path().join("model.safetensors"), d.path().join("a.safetensors")).unwrap();
    weights(d.path(), "b.safetensors");
    let e = HfDir::open(d.path()).unwrap_err();
    assert!(matches!(e, HfError::AmbiguousWeights { .. }), "{e}");
}

#[test]
fn single_other_safetensors_name_accepted() {
    let d = model_dir();
    fs::rename(d.path().join("model.safetensors"), d.path().join("adapter.safetensors")).unwrap();
    let hf = HfDir::open(d.path()).unwrap();
    assert!(hf.weights.shards()[0].path().ends_with("adapter.safetensors"));
}

#[test]
fn bad_weights_error_is_passed_through() {
    let d = model_dir();
    fs::write(d.path().join("model.safetensors"), b"\x01\x00").unwrap();
    let e = HfDir::open(d.path()).unwrap_err();
    assert!(matches!(e, HfError::Weights(_)), "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

// ----- config values

#[test]
fn config_key_missing_or_ill_typed() {
    let c = json!({"hidden_size": "4096", "n": -1, "f": "x", "b": 1, "null_key": null, "float_int": 4096.0});
    assert!(matches!(config_usize(&c, "absent"), Err(HfError::MissingKey { key }) if key == "absent"));
    let e = config_usize(&c, "hidden_size").unwrap_err();
    assert!(matches!(&e, HfError::BadKey { key, .. } if key == "hidden_size"), "{e}");
    assert!(e.to_string().contains("\"4096\""), "{e}");
    assert!(matches!(config_usize(&c, "n"), Err(HfError::BadKey { .. })));
    assert!(matches!(config_usize(&c, "float_int"), Err(HfError::BadKey { .. })));
    assert!(matches!(config_f64(&c, "f"), Err(HfError::BadKey { .. })));
    assert!(matches!(config_bool(&c, "b"), Err(HfError::BadKey { .. })));
    assert_eq!(config_opt_usize(&c, "null_key").unwrap(), None);
}

fn llama() -> serde_json::Value {
    json!({
        "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
        "rms_norm_eps": 1e-05, "rope_theta": 100000.0, "max_position_embeddings": 8192,
        "tie_word_embeddings": true
    })
}

#[test]
fn base_hparams_valid() {
    let h = BaseHparams::from_config(&llama()).unwrap();
    assert_eq!(h.head_dim, 64);
    assert_eq!(h.num_key_value_heads, 3);
    assert_eq!(h.rms_norm_eps, Some(1e-5));
    let mut c = llama();
    c.as_object_mut().unwrap().remove("num_key_value_heads");
    assert_eq!(BaseHparams::from_config(&c).unwrap().num_key_value_heads, 9);
}

fn with(key: &str, v: serde_json::Value) -> serde_json::Value {
    let mut c = llama();
    c[key] = v;
    c
}

#[test]
fn zero_attention_heads() {
    let e = BaseHparams::from_config(&with("num_attention_heads", json!(0))).unwrap_err();
    assert!(matches!(&e, HfError::BadKey { key, .. } if key == "num_attention_heads"), "{e}");
}

#[test]
fn hidden_size_not_divisible_by_heads() {
    let e = BaseHparams::from_config(&with("hidden_size", json!(577))).unwrap_err();
    assert!(matches!(e, HfError::Inconsistent { .. }), "{e}");
    assert!(e.to_string().contains("577"), "{e}");
    // With an explicit head_dim it is fine.
    let mut c = with("hidden_size", json!(577));
    c["head_dim"] = json!(64);
    assert_eq!(BaseHparams::from_config(&c).unwrap().head_dim, 64);
}

#[test]
fn kv_heads_not_dividing_heads() {
    let e = BaseHparams::from_config(&with("num_key_value_heads", json!(2))).unwrap_err();
    assert!(matches!(e, HfError::Inconsistent { .. }), "{e}");
    assert!(e.to_string().contains("num_key_value_heads = 2"), "{e}");
}

#[test]
fn bad_rms_norm_eps() {
    for v in [json!(-1e-6), json!(0.0), json!("1e-5")] {
        let e = BaseHparams::from_config(&with("rms_norm_eps", v.clone())).unwrap_err();
        assert!(matches!(&e, HfError::BadKey { key, .. } if key == "rms_norm_eps"), "{v}: {e}");
    }
}

#[test]
fn zero_vocab_size() {
    let e = BaseHparams::from_config(&with("vocab_size", json!(0))).unwrap_err();
    assert!(matches!(&e, HfError::BadKey { key, .. } if key == "vocab_size"), "{e}");
}

#[test]
fn missing_required_hparam() {
    let mut c = llama();
    c.as_object_mut().unwrap().remove("num_hidden_layers");
    let e = BaseHparams::from_config(&c).unwrap_err();
    assert!(matches!(&e, HfError::MissingKey { key } if key == "num_hidden_layers"), "{e}");
}
