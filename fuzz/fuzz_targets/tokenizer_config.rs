//! tokenizer_config.json beside a fixed, valid tokenizer.json (the llama fixture's):
//! special tokens, add_bos/add_eos, chat templates → GGUF metadata, then the chat template
//! (if any) compiled and rendered under its limits. A typed error or metadata; no panic; no
//! single allocation over 256 MiB (the chat template's per-string bound is 16 MiB).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;
#[path = "parse.rs"]
mod parse;

target!(256 << 20, |data| {
    parse::tokenizer_config(data);
});
