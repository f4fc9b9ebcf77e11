//! A llama.cpp log-probability file (`--kl-base`, `BaseFile::read`): any bytes, a typed
//! error or a base whose sizes match the header; no panic; no single allocation over 64 MiB
//! (the reader checks the header's sizes against the file's length before allocating).
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use llmtool::eval::BaseFile;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    let p = common::file("base.logits", data);
    if let Ok(b) = BaseFile::read(&p) {
        assert_eq!(b.tokens.len(), b.n_chunk * b.n_ctx);
    }
});
