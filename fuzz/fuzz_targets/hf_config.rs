//! HF config.json → architecture → GGUF metadata (`arch::from_hf_config`,
//! `Arch::config_to_metadata`): any bytes, a typed error or metadata; no panic; no single
//! allocation over 64 MiB (the inputs are at most a few KiB).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::arch;
use llmtool_formats::Metadata;

target!(64 << 20, |data| {
    let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(a) = arch::from_hf_config(&cfg) else { return };
    let mut md = Metadata::new();
    let _ = a.config_to_metadata(&cfg, &mut md);
});
