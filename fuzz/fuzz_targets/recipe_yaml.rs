//! A build recipe (`build::recipe::Loaded::open`): any bytes as recipe.yaml, a typed error or
//! a checked recipe; no panic; no single allocation over 64 MiB; nothing written (the
//! reader only reads).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::build::recipe::Loaded;

target!(64 << 20, |data| {
    let p = common::file("recipe.yaml", data);
    let _ = Loaded::open(&p, |_| true);
});
