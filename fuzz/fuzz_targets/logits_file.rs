//! A llama.cpp log-probability file (`--kl-base`, `BaseFile::read`): any bytes, a typed
//! error or a base whose sizes match the header; no panic; no single allocation over 64 MiB
//! (the reader checks the header's sizes against the file's length before allocating).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::eval::BaseFile;

target!(64 << 20, |data| {
    let p = common::file("base.logits", data);
    if let Ok(b) = BaseFile::read(&p) {
        assert_eq!(b.tokens.len(), b.n_chunk * b.n_ctx);
    }
});
