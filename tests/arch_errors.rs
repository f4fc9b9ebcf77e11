//! Config / metadata validation: one test per error case, each checking the error names the
//! key and what was expected against what was found.

mod common;

use common::{config, to_md};
use llmtool::arch::{self, ArchError};
use llmtool_formats::{MetaValue, Metadata};
use serde_json::json;

#[test]
fn missing_key() {
    for name in ["llama", "phi3", "gemma", "gemma2", "qwen2"] {
        let mut c = config(name);
        c.as_object_mut().unwrap().remove("hidden_size");
        let e = to_md(&c).unwrap_err();
        assert_eq!(e, ArchError::MissingKey { what: "config.json", key: "hidden_size".into() }, "{name}");
        assert!(e.to_string().contains("hidden_size"));
    }
}

#[test]
fn wrong_type() {
    let mut c = config("llama");
    c["num_attention_heads"] = json!("4");
    let e = to_md(&c).unwrap_err();
    assert!(matches!(&e, ArchError::WrongType { key, .. } if key == "num_attention_heads"), "{e:?}");
    assert!(e.to_string().contains("expected a non-negative integer, found string \"4\""), "{e}");

    let mut c = config("llama");
    c["hidden_size"] = json!(64.5);
    assert!(matches!(to_md(&c), Err(ArchError::WrongType { key, .. }) if key == "hidden_size"));

    let mut c = config("llama");
    c["rms_norm_eps"] = json!("1e-6");
    assert!(matches!(to_md(&c), Err(ArchError::WrongType { key, .. }) if key == "rms_norm_eps"));

    let mut c = config("llama");
    c["tie_word_embeddings"] = json!(1);
    let a = arch::from_hf_config(&c).unwrap();
    assert!(
        matches!(a.hf_to_gguf_tensor("lm_head.weight", &c), Err(ArchError::WrongType { key, .. }) if key == "tie_word_embeddings")
    );
}

#[test]
fn zero_heads() {
    let mut c = config("qwen2");
    c["num_attention_heads"] = json!(0);
    let e = to_md(&c).unwrap_err();
    assert!(matches!(&e, ArchError::InvalidValue { key, .. } if key == "num_attention_heads"), "{e:?}");
    assert!(e.to_string().contains("must be > 0, found 0"), "{e}");
    let mut c = config("llama");
    c["num_hidden_layers"] = json!(0);
    assert!(matches!(to_md(&c), Err(ArchError::InvalidValue { key, .. }) if key == "num_hidden_layers"));
}

#[test]
fn kv_heads_must_divide_heads() {
    for kv in [3, 8] {
        let mut c = config("llama");
        c["num_key_value_heads"] = json!(kv);
        let e = to_md(&c).unwrap_err();
        assert!(matches!(&e, ArchError::InvalidValue { key, .. } if key == "num_key_value_heads"), "{e:?}");
        assert!(e.to_string().contains(&format!("{kv} KV heads must divide num_attention_heads = 4")), "{e}");
    }
}

#[test]
fn hidden_size_must_divide_by_heads_without_head_dim() {
    let mut c = config("qwen2"); // no head_dim in the qwen2 config
    c["hidden_size"] = json!(66);
    let e = to_md(&c).unwrap_err();
    assert!(matches!(&e, ArchError::InvalidValue { key, .. } if key == "hidden_size"), "{e:?}");
    // with an explicit head_dim the geometry is allowed
    let mut c = config("llama");
    c["hidden_size"] = json!(66);
    c["head_dim"] = json!(16);
    let md = to_md(&c).unwrap();
    assert_eq!(md.get("llama.attention.key_length"), Some(&MetaValue::U32(16)));
    assert_eq!(md.get("llama.rope.dimension_count"), Some(&MetaValue::U32(16)));
}

#[test]
fn unknown_architecture() {
    let mut c = config("llama");
    c["architectures"] = json!(["GPT2LMHeadModel"]);
    let e = arch::from_hf_config(&c).err().unwrap();
    assert!(matches!(&e, ArchError::UnknownArchitecture { found, .. } if found == "GPT2LMHeadModel"));
    let msg = e.to_string();
    for s in ["llama", "phi3", "gemma2", "qwen2", "MistralForCausalLM"] {
        assert!(msg.contains(s), "{msg}");
    }
    // model_type fallback, Mistral -> llama
    let c = json!({"model_type": "mistral"});
    assert_eq!(arch::from_hf_config(&c).unwrap().gguf_arch(), "llama");
    let c = json!({"model_type": "gpt2"});
    assert!(matches!(arch::from_hf_config(&c), Err(ArchError::UnknownArchitecture { .. })));
    assert!(matches!(arch::from_hf_config(&json!({})), Err(ArchError::MissingKey { .. })));
    let c = json!({"architectures": ["MistralForCausalLM"]});
    assert_eq!(arch::from_hf_config(&c).unwrap().gguf_arch(), "llama");

    let mut md = Metadata::new();
    assert!(matches!(arch::from_gguf_metadata(&md), Err(ArchError::MissingKey { .. })));
    md.insert("general.architecture", MetaValue::String("falcon".into()));
    assert!(
        matches!(arch::from_gguf_metadata(&md), Err(ArchError::UnknownArchitecture { found, .. }) if found == "falcon")
    );
    md.insert("general.architecture", MetaValue::U32(1));
    assert!(matches!(arch::from_gguf_metadata(&md), Err(ArchError::WrongType { .. })));
}

#[test]
fn metadata_errors() {
    let md = to_md(&config("llama")).unwrap();
    let a = arch::from_gguf_metadata(&md).unwrap();
    let mut m = md.clone();
    m.remove("llama.block_count");
    assert_eq!(
        a.metadata_to_config(&m, &[], "float32").unwrap_err(),
        ArchError::MissingKey { what: "GGUF metadata", key: "llama.block_count".into() }
    );
    let mut m = md.clone();
    m.insert("llama.attention.head_count", MetaValue::String("4".into()));
    assert!(
        matches!(a.metadata_to_config(&m, &[], "float32"), Err(ArchError::WrongType { key, .. }) if key == "llama.attention.head_count")
    );
    let mut m = md.clone();
    m.insert("llama.attention.head_count_kv", MetaValue::U32(3));
    assert!(matches!(a.metadata_to_config(&m, &[], "float32"), Err(ArchError::InvalidValue { .. })));
    let mut m = md.clone();
    m.insert("llama.attention.layer_norm_rms_epsilon", MetaValue::U32(1));
    assert!(matches!(a.metadata_to_config(&m, &[], "float32"), Err(ArchError::WrongType { .. })));
    // vocab size from the token list when the arch key is absent
    let mut m = md.clone();
    m.remove("llama.vocab_size");
    m.insert("tokenizer.ggml.tokens", MetaValue::Array(llmtool_formats::MetaArray::String(vec!["a".into(); 7])));
    assert_eq!(a.metadata_to_config(&m, &[], "float32").unwrap()["vocab_size"], 7);
}

#[test]
fn gemma_requires_head_dim_and_gemma2_softcapping() {
    let mut c = config("gemma");
    c.as_object_mut().unwrap().remove("head_dim");
    assert_eq!(to_md(&c).unwrap_err(), ArchError::MissingKey { what: "config.json", key: "head_dim".into() });
    let mut c = config("gemma2");
    c.as_object_mut().unwrap().remove("final_logit_softcapping");
    assert_eq!(
        to_md(&c).unwrap_err(),
        ArchError::MissingKey { what: "config.json", key: "final_logit_softcapping".into() }
    );
    let mut c = config("phi3");
    c.as_object_mut().unwrap().remove("original_max_position_embeddings");
    assert!(matches!(to_md(&c), Err(ArchError::MissingKey { key, .. }) if key == "original_max_position_embeddings"));
}

#[test]
fn rope_scaling_supported_and_refused() {
    // llama3: no rope.scaling.* key (llama.cpp writes rope_freqs.weight only), one tensor
    let mut c = config("llama");
    c["rope_parameters"] = json!({"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0});
    let md = to_md(&c).unwrap();
    assert!(!md.keys().any(|k| k.contains("rope.scaling")), "{:?}", md.keys().collect::<Vec<_>>());
    let extra = arch::from_hf_config(&c).unwrap().extra_tensors(&c).unwrap();
    assert_eq!(extra.iter().map(|(n, v)| (n.as_str(), v.len())).collect::<Vec<_>>(), [("rope_freqs.weight", 8)]);
    // ... but not for qwen2, whose llama.cpp converter writes no factor tensor
    let mut c = config("qwen2");
    c["rope_parameters"] = json!({"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0});
    let e = to_md(&c).unwrap_err();
    assert!(matches!(&e, ArchError::Unsupported { .. }) && e.to_string().contains("qwen2"), "{e}");
    // longrope on phi3: one factor per rotated pair (head_dim 16: 8)
    let mut c = config("phi3");
    c["rope_parameters"] =
        json!({"rope_theta": 10000.0, "rope_type": "longrope", "long_factor": [1.0], "short_factor": [1.0]});
    let e = to_md(&c).unwrap_err();
    assert!(matches!(&e, ArchError::InvalidValue { .. }) && e.to_string().contains("needs 8 each"), "{e}");
    assert!(e.to_string().contains("rope_parameters.long_factor"), "{e}");
    // ... and longrope on llama is refused (llama.cpp's llama converter writes no factors)
    let mut c = config("llama");
    c["rope_parameters"] =
        json!({"rope_theta": 10000.0, "rope_type": "longrope", "long_factor": [1.0], "short_factor": [1.0]});
    assert!(matches!(to_md(&c), Err(ArchError::Unsupported { .. })));
    // an unknown type is named by the key the file uses (`type` in legacy rope_scaling)
    let mut c = config("phi3");
    c.as_object_mut().unwrap().remove("rope_parameters");
    c["rope_theta"] = json!(10000.0);
    c["rope_scaling"] = json!({"type": "dynamic", "factor": 2.0});
    let e = to_md(&c).unwrap_err().to_string();
    assert!(e.contains("rope_scaling.type = \"dynamic\""), "{e}");

    // linear (legacy rope_scaling form) round trips
    let mut c = config("llama");
    c.as_object_mut().unwrap().remove("rope_parameters");
    c["rope_theta"] = json!(10000.0);
    c["rope_scaling"] = json!({"type": "linear", "factor": 2.0});
    let md = to_md(&c).unwrap();
    assert_eq!(md.get_str("llama.rope.scaling.type"), Some("linear"));
    assert_eq!(md.get("llama.rope.scaling.factor"), Some(&MetaValue::F32(2.0)));
    let keys: Vec<&str> = md.keys().collect();
    let pos = |k: &str| keys.iter().position(|x| *x == k).unwrap();
    // llama.cpp order: head_count_kv, rope scaling, freq_base, rms eps
    assert!(pos("llama.attention.head_count_kv") < pos("llama.rope.scaling.type"));
    assert!(pos("llama.rope.scaling.factor") < pos("llama.rope.freq_base"));
    let a = arch::from_gguf_metadata(&md).unwrap();
    let back = a.metadata_to_config(&md, &[], "bfloat16").unwrap();
    assert_eq!(back["rope_scaling"], json!({"rope_type": "linear", "factor": 2.0}));

    // yarn (transformers 5 form) round trips
    let mut c = config("qwen2");
    c["rope_parameters"] = json!({"rope_theta": 1000000.0, "rope_type": "yarn", "factor": 4.0,
        "original_max_position_embeddings": 64, "beta_fast": 32.0, "beta_slow": 1.0});
    let md = to_md(&c).unwrap();
    assert_eq!(md.get("qwen2.rope.scaling.original_context_length"), Some(&MetaValue::U32(64)));
    // qwen2 writes no vocab_size: it comes from token_embd.weight's rows (ne[1])
    let embd = [llmtool_formats::TensorInfo::new("token_embd.weight", llmtool_formats::GgmlType::F32, vec![64, 379])];
    let back = arch::from_gguf_metadata(&md).unwrap().metadata_to_config(&md, &embd, "float32").unwrap();
    assert_eq!(back["vocab_size"], 379);
    assert_eq!(back["tie_word_embeddings"], true);
    assert_eq!(
        back["rope_scaling"],
        json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "beta_fast": 32.0, "beta_slow": 1.0})
    );
    assert_eq!(back["rope_theta"], json!(1000000.0));
}

#[test]
fn fix_errors_name_the_tensor() {
    use llmtool_formats::{GgmlType, TensorInfo};
    let info = TensorInfo::new("blk.0.attn_q.weight", GgmlType::F32, vec![4, 6]);
    let e = arch::apply_fix(&arch::TensorFix::PermuteQk { n_head: 2 }, &info, &[0u8; 96]).unwrap_err();
    assert!(e.to_string().contains("blk.0.attn_q.weight"), "{e}");
    assert!(e.to_string().contains("6 rows are not a multiple of 2 x 2 heads"), "{e}");
    let e = arch::apply_fix(&arch::TensorFix::Copy, &info, &[0u8; 95]).unwrap_err();
    assert!(e.to_string().contains("expected 96 bytes"), "{e}");
}

#[test]
fn general_keys_and_refused_qwen2_sliding_window() {
    let mut c = config("llama");
    c["_name_or_path"] = json!("/models/HuggingFaceTB/SmolLM2-135M-Instruct/");
    let md = to_md(&c).unwrap();
    let first: Vec<&str> = md.keys().take(3).collect();
    assert_eq!(first, ["general.architecture", "general.type", "general.name"]);
    assert_eq!(md.get_str("general.name"), Some("SmolLM2-135M-Instruct"));
    assert_eq!(md.get_str("general.type"), Some("model"));
    assert!(!to_md(&config("llama")).unwrap().contains_key("general.name"));

    let mut c = config("qwen2");
    c["use_sliding_window"] = json!(true);
    assert!(matches!(to_md(&c), Err(ArchError::Unsupported { .. })));
}
