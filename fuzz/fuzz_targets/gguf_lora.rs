//! A llama.cpp GGUF LoRA adapter (`GgufAdapter::open`): any bytes, a typed error or an
//! adapter; no panic; no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use llmtool::passes::lora::GgufAdapter;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    let p = common::file("adapter.gguf", data);
    let _ = GgufAdapter::open(&p);
});
