//! HF config.json → architecture → GGUF metadata (`arch::from_hf_config`,
//! `Arch::config_to_metadata`): any bytes, a typed error or metadata; no panic; no single
//! allocation over 64 MiB (the inputs are at most a few KiB).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;
#[path = "parse.rs"]
mod parse;

target!(64 << 20, |data| {
    parse::hf_config(data);
});
