//! An EVOLVE search configuration (`EvolveConfig::parse`): any text, a typed error or a
//! config; no panic; no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use llmtool::evolve::config::EvolveConfig;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = EvolveConfig::parse(text, "<fuzz>", Some(common::scratch()));
});
