//! A build recipe (`build::recipe::Loaded::open`): any bytes as recipe.yaml, a typed error or
//! a checked recipe; no panic; no single allocation over 64 MiB; nothing written (the
//! reader only reads).
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use llmtool::build::recipe::Loaded;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    let p = common::file("recipe.yaml", data);
    let _ = Loaded::open(&p, |_| true);
});
