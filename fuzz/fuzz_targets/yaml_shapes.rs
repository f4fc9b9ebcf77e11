//! Structure-aware YAML: the first byte picks the input (mergekit config, EVOLVE config,
//! build recipe), the rest builds a document from the words that input's parser knows
//! (`shapes.rs`, `vocab.rs`), written as YAML — block and flow style, anchors and aliases —
//! and given to the same parser as the byte-level target (`parse.rs`). A typed error or a
//! value; no panic; no single allocation over 64 MiB (aliases included: src/yaml.rs bounds
//! their expansion).
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

target!(64 << 20, |data| {
    let Some((&which, rest)) = data.split_first() else { return };
    let words = match which % 3 {
        0 => vocab::MERGE,
        1 => vocab::EVOLVE,
        _ => vocab::RECIPE,
    };
    let Ok(doc) = shapes::Gen::new(rest, words, true).map(0) else { return };
    let text = shapes::to_yaml(&doc);
    match which % 3 {
        0 => parse::merge_yaml(&text),
        1 => parse::evolve_yaml(&text),
        _ => parse::recipe_yaml(text.as_bytes()),
    }
});
