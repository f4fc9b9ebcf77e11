//! An eval task file (JSONL: header line, items; `TaskSet::parse`): any text, a typed error
//! or a task set; no panic; no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;
#[path = "parse.rs"]
mod parse;

target!(64 << 20, text |text| {
    parse::tasks_jsonl(text);
});
