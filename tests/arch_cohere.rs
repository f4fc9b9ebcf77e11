//! Command R / Command R7B config handling beyond the fixtures: both config forms
//! (transformers 5 `rope_parameters` / `layer_types`, and the older top-level `rope_theta` /
//! `sliding_window_pattern`), `model_max_length`, a non-default sliding pattern (written as
//! llama.cpp's per-layer bool array, read back by the mapping and by the inference core),
//! and the clear refusals.

mod common;

use common::{config, to_md};
use llmtool::arch::{self, ArchError};
use llmtool::infer::InferConfig;
use llmtool_formats::{GgmlType, MetaArray, MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

fn pairs(md: &Metadata) -> Vec<(String, MetaValue)> {
    md.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// The older form: rope_theta at the top level, no rope_parameters; cohere2 with the legacy
/// `sliding_window_pattern` instead of `layer_types`. Same metadata as the transformers 5 form.
#[test]
fn legacy_config_form_gives_the_same_metadata() {
    for name in ["command_r", "cohere2"] {
        let new = config(name);
        let mut old = new.clone();
        let o = old.as_object_mut().unwrap();
        let theta = o.remove("rope_parameters").unwrap()["rope_theta"].clone();
        o.insert("rope_theta".into(), theta);
        o.insert("rope_scaling".into(), Value::Null);
        if name == "cohere2" {
            o.remove("layer_types");
            o.insert("sliding_window_pattern".into(), json!(4));
        }
        assert_eq!(pairs(&to_md(&old).unwrap()), pairs(&to_md(&new).unwrap()), "{name}");
    }
}

#[test]
fn metadata_keys_of_the_fixtures() {
    let md = to_md(&config("command_r")).unwrap();
    assert_eq!(md.get("command-r.logit_scale"), Some(&MetaValue::F32(0.5)));
    assert_eq!(md.get("command-r.attention.layer_norm_epsilon"), Some(&MetaValue::F32(1e-5)));
    assert_eq!(md.get("command-r.rope.freq_base"), Some(&MetaValue::F32(75e6)));
    assert_eq!(md.get_str("command-r.rope.scaling.type"), Some("none"));
    assert!(md.get("command-r.attention.layer_norm_rms_epsilon").is_none());
    let md = to_md(&config("cohere2")).unwrap();
    assert_eq!(md.get("cohere2.attention.sliding_window"), Some(&MetaValue::U32(4)));
    assert_eq!(md.get("cohere2.rope.dimension_count"), Some(&MetaValue::U32(16)));
    // The fixture has llama.cpp's default pattern: no pattern key (as llama.cpp's converter).
    assert!(md.get("cohere2.attention.sliding_window_pattern").is_none());
}

#[test]
fn model_max_length_is_the_context_length_and_model_type_finds_the_family() {
    let mut c = config("command_r");
    c["model_max_length"] = json!(131072);
    let md = to_md(&c).unwrap();
    assert_eq!(md.get("command-r.context_length"), Some(&MetaValue::U32(131072)));
    c.as_object_mut().unwrap().remove("architectures");
    assert_eq!(arch::from_hf_config(&c).unwrap().gguf_arch(), "command-r");
}

fn infos(n_layer: usize) -> Vec<TensorInfo> {
    let mut v = vec![TensorInfo::new("token_embd.weight", GgmlType::F32, vec![64, 388])];
    for il in 0..n_layer {
        v.push(TensorInfo::new(format!("blk.{il}.attn_norm.weight"), GgmlType::F32, vec![64]));
    }
    v
}

/// A pattern other than llama.cpp's default (global every 4th layer) is written as the
/// per-layer bool array llama.cpp's loader reads first; it comes back as `layer_types` and
/// drives the inference core's windows and rope.
#[test]
fn non_default_pattern_round_trips_and_drives_inference() {
    let mut c = config("cohere2");
    let types = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"];
    c["layer_types"] = json!(types);
    let md = to_md(&c).unwrap();
    assert_eq!(
        md.get("cohere2.attention.sliding_window_pattern"),
        Some(&MetaValue::Array(MetaArray::Bool(vec![true, false, true, false])))
    );
    let a = arch::from_gguf_metadata(&md).unwrap();
    let back = a.metadata_to_config(&md, &infos(4), "float32").unwrap();
    assert_eq!(back["layer_types"], json!(types));
    let cfg = InferConfig::from_metadata(&md, &infos(4)).unwrap();
    assert_eq!(cfg.swa_layers.as_deref(), Some(&[true, false, true, false][..]));
    assert_eq!((0..4).map(|il| cfg.layer_window(il)).collect::<Vec<_>>(), [Some(4), None, Some(4), None]);
    assert_eq!((0..4).map(|il| cfg.layer_rotates(il)).collect::<Vec<_>>(), [true, false, true, false]);
    // Legacy period 2 (HF: (i + 1) % 2 != 0 slides) is the same layout.
    let mut legacy = config("cohere2");
    legacy.as_object_mut().unwrap().remove("layer_types");
    legacy["sliding_window_pattern"] = json!(2);
    assert_eq!(pairs(&to_md(&legacy).unwrap()), pairs(&md));
    // A period in the metadata (llama.cpp also accepts one) is read the same way.
    let mut md2 = md.clone();
    md2.insert("cohere2.attention.sliding_window_pattern", MetaValue::U32(2));
    let cfg2 = InferConfig::from_metadata(&md2, &infos(4)).unwrap();
    assert_eq!(cfg2.swa_layers, cfg.swa_layers);
}

fn refused(name: &str, edit: impl FnOnce(&mut Value)) -> ArchError {
    let mut c = config(name);
    edit(&mut c);
    to_md(&c).unwrap_err()
}

#[test]
fn unsupported_settings_are_refused_by_name() {
    for name in ["command_r", "cohere2"] {
        let e =
            refused(name, |c| c["rope_parameters"] = json!({"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}));
        assert!(matches!(&e, ArchError::Unsupported { what, .. } if what.contains("rope scaling")), "{e:?}");
        let e = refused(name, |c| c["attention_bias"] = json!(true));
        assert!(e.to_string().contains("attention_bias"), "{e}");
        let e = refused(name, |c| c["tie_word_embeddings"] = json!(false));
        assert!(e.to_string().contains("tie_word_embeddings"), "{e}");
        let e = refused(name, |c| {
            c.as_object_mut().unwrap().remove("logit_scale");
        });
        assert_eq!(e, ArchError::MissingKey { what: "config.json", key: "logit_scale".into() });
        let e = refused(name, |c| {
            c.as_object_mut().unwrap().remove("layer_norm_eps");
        });
        assert_eq!(e, ArchError::MissingKey { what: "config.json", key: "layer_norm_eps".into() });
    }
    let e = refused("cohere2", |c| c["rotary_pct"] = json!(0.5));
    assert!(e.to_string().contains("rotary_pct"), "{e}");
    let e = refused("cohere2", |c| c["layer_types"] = json!(["sliding_attention"]));
    assert!(matches!(&e, ArchError::InvalidValue { key, .. } if key == "layer_types"), "{e:?}");
    let e = refused("cohere2", |c| {
        c.as_object_mut().unwrap().remove("sliding_window");
    });
    assert_eq!(e, ArchError::MissingKey { what: "config.json", key: "sliding_window".into() });
}

/// GGUF side: an untied `output.weight` has no HF counterpart for these families.
#[test]
fn untied_gguf_is_refused() {
    let md = to_md(&config("command_r")).unwrap();
    let a = arch::from_gguf_metadata(&md).unwrap();
    let mut t = infos(2);
    t.push(TensorInfo::new("output.weight", GgmlType::F32, vec![64, 388]));
    let e = a.metadata_to_config(&md, &t, "float32").unwrap_err();
    assert!(e.to_string().contains("output.weight"), "{e}");
    assert!(a.gguf_to_hf_tensor("output.weight", &md).is_err());
    // cohere2 has no q/k norms in gguf-py's tensor list: refused both ways.
    let c2 = config("cohere2");
    let a2 = arch::from_hf_config(&c2).unwrap();
    assert!(a2.hf_to_gguf_tensor("model.layers.0.self_attn.q_norm.weight", &c2).is_err());
}
