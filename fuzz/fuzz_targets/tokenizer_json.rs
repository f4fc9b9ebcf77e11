//! tokenizer.json → GGUF tokenizer metadata → tokenizer → encode (`hf_to_gguf_metadata`,
//! `Tokenizer::from_gguf_metadata`, `Tokenizer::encode`): a typed error or tokens; no panic;
//! no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use llmtool::tokenizer::{hf_to_gguf_metadata, Tokenizer};
use llmtool_formats::Metadata;

#[global_allocator]
static ALLOC: common::Capped<{ 64 << 20 }> = common::Capped;

fuzz_target!(|data: &[u8]| {
    let Ok(tj) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let mut md = Metadata::new();
    if hf_to_gguf_metadata(&tj, None, None, &mut md).is_err() {
        return;
    }
    let Ok(tok) = Tokenizer::from_gguf_metadata(&md) else { return };
    if let Ok(ids) = tok.encode("Hello world! 123 <s> </s> <|im_start|>ünï 日本", true, true) {
        std::hint::black_box(ids);
    }
});
