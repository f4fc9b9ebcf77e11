//! An eval task file (JSONL: header line, items; `TaskSet::parse`): any text, a typed error
//! or a task set; no panic; no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use llmtool::eval::tasks::TaskSet;
use std::path::Path;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = TaskSet::parse(Path::new("<fuzz>.jsonl"), text);
});
