//! tokenizer.json → GGUF tokenizer metadata → tokenizer → encode (`hf_to_gguf_metadata`,
//! `Tokenizer::from_gguf_metadata`, `Tokenizer::encode`): a typed error or tokens; no panic;
//! no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::tokenizer::{hf_to_gguf_metadata, Tokenizer};
use llmtool_formats::Metadata;

target!(64 << 20, |data| {
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
