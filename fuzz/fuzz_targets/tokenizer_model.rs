//! SentencePiece tokenizer.model (protobuf `ModelProto`) → pieces (`read_spm_pieces`): a
//! typed error or pieces; no panic; no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = llmtool::tokenizer::read_spm_pieces(data) {
        std::hint::black_box(p);
    }
});
