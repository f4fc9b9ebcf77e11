//! A mergekit YAML configuration (`MergeConfig::parse`): any text, a typed error or a
//! config; no panic (YAML anchors/aliases included); no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use llmtool::merge::config::MergeConfig;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = MergeConfig::parse(text, "<fuzz>");
});
