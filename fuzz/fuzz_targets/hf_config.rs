//! HF config.json → architecture → GGUF metadata (`arch::from_hf_config`,
//! `Arch::config_to_metadata`): any bytes, a typed error or metadata; no panic; no single
//! allocation over 64 MiB (the inputs are at most a few KiB).
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use llmtool::arch;
use llmtool_formats::Metadata;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(a) = arch::from_hf_config(&cfg) else { return };
    let mut md = Metadata::new();
    let _ = a.config_to_metadata(&cfg, &mut md);
});
