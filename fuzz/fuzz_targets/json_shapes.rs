//! Structure-aware JSON: the first byte picks the input (config.json, tokenizer.json,
//! tokenizer_config.json, PEFT adapter_config.json, task JSONL), the rest builds a document
//! from the words that input's parser knows (`shapes.rs`, `vocab.rs`), written as JSON and
//! given to the same parser as the byte-level target (`parse.rs`). A typed error or a value;
//! no panic; no single allocation over 256 MiB (tokenizer_config renders chat templates:
//! its bound).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;
#[path = "parse.rs"]
mod parse;
#[path = "shapes.rs"]
mod shapes;
#[path = "vocab.rs"]
mod vocab;

target!(256 << 20, |data| {
    let Some((&which, rest)) = data.split_first() else { return };
    let words = match which % 5 {
        0 => vocab::HF_CONFIG,
        1 | 2 => vocab::TOKENIZER,
        3 => vocab::PEFT,
        _ => vocab::TASKS,
    };
    let mut g = shapes::Gen::new(rest, words, false);
    if which % 5 == 4 {
        // JSONL: a header or item per line.
        let Ok(top) = g.node(0) else { return };
        let lines = match top {
            shapes::Node::Seq(items, _) => items,
            other => vec![other],
        };
        let text: String = lines.iter().map(|l| shapes::to_json(l).to_string() + "\n").collect();
        parse::tasks_jsonl(&text);
        return;
    }
    let Ok(doc) = g.map(0) else { return };
    let bytes = shapes::to_json(&doc).to_string().into_bytes();
    match which % 5 {
        0 => parse::hf_config(&bytes),
        1 => parse::tokenizer_json(&bytes),
        2 => parse::tokenizer_config(&bytes),
        _ => parse::peft_adapter(&bytes),
    }
});
