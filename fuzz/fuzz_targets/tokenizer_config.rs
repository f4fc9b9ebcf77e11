//! tokenizer_config.json beside a fixed, valid tokenizer.json (the llama fixture's):
//! special tokens, add_bos/add_eos, chat templates → GGUF metadata, then the chat template
//! (if any) compiled and rendered under its limits. A typed error or metadata; no panic; no
//! single allocation over 256 MiB (the chat template's per-string bound is 16 MiB).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::chat_template::{ChatTemplate, Message};
use llmtool::tokenizer::hf_to_gguf_metadata;
use llmtool_formats::Metadata;

const TOKENIZER_JSON: &[u8] = include_bytes!("../../fixtures/models/llama/tokenizer.json");

target!(256 << 20, |data| {
    let Ok(tc) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let tj: serde_json::Value = serde_json::from_slice(TOKENIZER_JSON).unwrap();
    let mut md = Metadata::new();
    if hf_to_gguf_metadata(&tj, Some(&tc), None, &mut md).is_err() {
        return;
    }
    if let Ok(t) = ChatTemplate::from_gguf_metadata(&md) {
        let _ = t.render(&[Message::new("system", "s"), Message::new("user", "hi")], true);
    }
});
