//! A mergekit YAML configuration (`MergeConfig::parse`): any text, a typed error or a
//! config; no panic (YAML anchors/aliases included); no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;
#[path = "parse.rs"]
mod parse;

target!(64 << 20, text |text| {
    parse::merge_yaml(text);
});
