//! The structured inputs' parsers as the fuzz targets drive them, one function per input:
//! the byte-level targets (`hf_config`, `merge_yaml`, …) call one each, and the
//! structure-aware ones (`json_shapes`, `yaml_shapes`) call them on generated documents.
//! Each returns nothing: a typed error or a value is fine; a panic, an abort or an
//! allocation over the target's bound is a finding.
#![allow(dead_code)]

use llmtool::arch;
use llmtool::build::recipe::Loaded;
use llmtool::chat_template::{ChatTemplate, Message};
use llmtool::eval::tasks::TaskSet;
use llmtool::evolve::config::EvolveConfig;
use llmtool::merge::config::MergeConfig;
use llmtool::passes::lora::peft::ScalingRules;
use llmtool::passes::lora::PeftAdapter;
use llmtool::tokenizer::{hf_to_gguf_metadata, Tokenizer};
use llmtool_formats::Metadata;
use std::path::Path;

/// HF config.json → architecture → GGUF metadata.
pub fn hf_config(data: &[u8]) {
    let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(a) = arch::from_hf_config(&cfg) else { return };
    let mut md = Metadata::new();
    let _ = a.config_to_metadata(&cfg, &mut md);
}

/// tokenizer.json → GGUF tokenizer metadata → tokenizer → encode.
pub fn tokenizer_json(data: &[u8]) {
    let Ok(tj) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let mut md = Metadata::new();
    if hf_to_gguf_metadata(&tj, None, None, &mut md).is_err() {
        return;
    }
    let Ok(tok) = Tokenizer::from_gguf_metadata(&md) else { return };
    if let Ok(ids) = tok.encode("Hello world! 123 <s> </s> <|im_start|>ünï 日本", true, true) {
        std::hint::black_box(ids);
    }
}

const TOKENIZER_JSON: &[u8] = include_bytes!("../../fixtures/models/llama/tokenizer.json");

/// tokenizer_config.json beside a fixed, valid tokenizer.json (the llama fixture's), then
/// its chat template (if any) compiled and rendered under its limits.
pub fn tokenizer_config(data: &[u8]) {
    let Ok(tc) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let tj: serde_json::Value = serde_json::from_slice(TOKENIZER_JSON).unwrap();
    let mut md = Metadata::new();
    if hf_to_gguf_metadata(&tj, Some(&tc), None, &mut md).is_err() {
        return;
    }
    if let Ok(t) = ChatTemplate::from_gguf_metadata(&md) {
        let _ = t.render(&[Message::new("system", "s"), Message::new("user", "hi")], true);
    }
}

const PEFT_WEIGHTS: &[u8] = include_bytes!("../../fixtures/lora/llama_plain/adapter/adapter_model.safetensors");

/// PEFT adapter_config.json beside fixed, valid weights (the llama_plain fixture's) → the
/// adapter, and the scaling rules on their own.
pub fn peft_adapter(data: &[u8]) {
    let dir = crate::common::scratch().join("peft");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg_path = dir.join("adapter_config.json");
    std::fs::write(&cfg_path, data).unwrap();
    if !dir.join("adapter_model.safetensors").exists() {
        std::fs::write(dir.join("adapter_model.safetensors"), PEFT_WEIGHTS).unwrap();
    }
    if let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(rules) = ScalingRules::from_config(&cfg_path, &cfg) {
            std::hint::black_box(rules.for_module("model.layers.0.self_attn.q_proj"));
        }
    }
    let _ = PeftAdapter::open(&dir);
}

/// An eval task file (JSONL).
pub fn tasks_jsonl(text: &str) {
    let _ = TaskSet::parse(Path::new("<fuzz>.jsonl"), text);
}

/// A mergekit YAML configuration.
pub fn merge_yaml(text: &str) {
    let _ = MergeConfig::parse(text, "<fuzz>");
}

/// An EVOLVE search configuration.
pub fn evolve_yaml(text: &str) {
    let _ = EvolveConfig::parse(text, "<fuzz>", Some(crate::common::scratch()));
}

/// A build recipe (read from a file: relative paths resolve beside it; nothing is written).
pub fn recipe_yaml(data: &[u8]) {
    let p = crate::common::file("recipe.yaml", data);
    let _ = Loaded::open(&p, |_| true);
}
