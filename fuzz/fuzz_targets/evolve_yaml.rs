//! An EVOLVE search configuration (`EvolveConfig::parse`): any text, a typed error or a
//! config; no panic; no single allocation over 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool::evolve::config::EvolveConfig;

target!(64 << 20, text |text| {
    let _ = EvolveConfig::parse(text, "<fuzz>", Some(common::scratch()));
});
