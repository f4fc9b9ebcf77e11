//! A build recipe (`build::recipe::Loaded::open`): any bytes as recipe.yaml, a typed error or
//! a checked recipe; no panic; no single allocation over 64 MiB; nothing written (the
//! reader only reads).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;
#[path = "parse.rs"]
mod parse;

target!(64 << 20, |data| {
    parse::recipe_yaml(data);
});
