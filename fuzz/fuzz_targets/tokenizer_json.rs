//! tokenizer.json → GGUF tokenizer metadata → tokenizer → encode (`hf_to_gguf_metadata`,
//! `Tokenizer::from_gguf_metadata`, `Tokenizer::encode`): a typed error or tokens; no panic;
//! no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;
#[path = "parse.rs"]
mod parse;

target!(64 << 20, |data| {
    parse::tokenizer_json(data);
});
