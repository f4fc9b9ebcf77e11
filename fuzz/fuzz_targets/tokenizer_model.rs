//! SentencePiece tokenizer.model (protobuf `ModelProto`) → pieces (`read_spm_pieces`): a
//! typed error or pieces; no panic; no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

target!(64 << 20, |data| {
    if let Ok(p) = llmtool::tokenizer::read_spm_pieces(data) {
        std::hint::black_box(p);
    }
});
