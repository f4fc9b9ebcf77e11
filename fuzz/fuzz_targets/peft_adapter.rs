//! PEFT adapter_config.json (beside a fixed, valid adapter_model.safetensors: the
//! llama_plain fixture's) → `PeftAdapter::open`, and the scaling rules on their own
//! (`ScalingRules::from_config`, `for_module`): a typed error or an adapter; no panic; no
//! single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::passes::lora::peft::ScalingRules;
use llmtool::passes::lora::PeftAdapter;

const WEIGHTS: &[u8] = include_bytes!("../../fixtures/lora/llama_plain/adapter/adapter_model.safetensors");

target!(64 << 20, |data| {
    let dir = common::scratch().join("peft");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg_path = dir.join("adapter_config.json");
    std::fs::write(&cfg_path, data).unwrap();
    if !dir.join("adapter_model.safetensors").exists() {
        std::fs::write(dir.join("adapter_model.safetensors"), WEIGHTS).unwrap();
    }
    if let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(rules) = ScalingRules::from_config(&cfg_path, &cfg) {
            std::hint::black_box(rules.for_module("model.layers.0.self_attn.q_proj"));
        }
    }
    let _ = PeftAdapter::open(&dir);
});
