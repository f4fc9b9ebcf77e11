//! A llama.cpp GGUF LoRA adapter (`GgufAdapter::open`): any bytes, a typed error or an
//! adapter; no panic; no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::passes::lora::GgufAdapter;

target!(64 << 20, |data| {
    let p = common::file("adapter.gguf", data);
    let _ = GgufAdapter::open(&p);
});
