//! HF → GGUF → HF on the tiny committed fixture of every architecture: every tensor comes
//! back under the same name with the same dtype, shape and bytes; the PyPI packages read
//! both directions' outputs.

mod common;

use std::path::Path;

use common::*;
use llmtool_formats::hf::HfDir;

const ARCHES: &[&str] = &["llama", "phi3", "gemma", "gemma2", "qwen2"];

fn round_trip(arch: &str) {
    let src = root().join("fixtures/models").join(arch);
    assert!(src.join("config.json").exists(), "fixture {arch} missing: run fixtures/gen_fixtures.py");
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join(format!("{arch}.gguf"));
    let back = dir.path().join("back");
    llmtool_ok(&["convert", "--quiet", src.to_str().unwrap(), gguf.to_str().unwrap()]);
    assert_gguf_py_agrees(&gguf);
    llmtool_ok(&["convert", "--quiet", gguf.to_str().unwrap(), back.to_str().unwrap()]);

    let a = HfDir::open(&src).unwrap();
    let b = HfDir::open(&back).unwrap();
    let mut names_a: Vec<&str> = a.weights.tensors().iter().map(|t| t.name.as_str()).collect();
    let mut names_b: Vec<&str> = b.weights.tensors().iter().map(|t| t.name.as_str()).collect();
    // A tied lm_head copy in the source is dropped on purpose (GGUF stores it once).
    let tied = a.config.get("tie_word_embeddings").and_then(|v| v.as_bool()).unwrap_or(arch.starts_with("gemma"));
    if tied {
        names_a.retain(|n| *n != "lm_head.weight");
    }
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b, "{arch}: tensor names");
    for t in a.weights.tensors().iter().filter(|t| names_b.contains(&t.name.as_str())) {
        let u = b.weights.tensors().iter().find(|u| u.name == t.name).unwrap();
        assert_eq!(t.dtype, u.dtype, "{arch}: dtype of {}", t.name);
        assert_eq!(t.shape, u.shape, "{arch}: shape of {}", t.name);
        assert!(a.weights.tensor_data(&t.name) == b.weights.tensor_data(&t.name), "{arch}: bytes of {}", t.name);
    }
    for key in [
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "vocab_size",
    ] {
        assert_eq!(a.config.get(key), b.config.get(key), "{arch}: config {key}");
    }
    let st = judge("st_dump.py", &[back.as_path() as &Path]);
    assert_eq!(st["config_model_type"], a.config["model_type"], "{arch}: transformers reads our config");
}

#[test]
fn llama_fixture_round_trips() {
    round_trip(ARCHES[0]);
}

#[test]
fn phi3_fixture_round_trips() {
    round_trip(ARCHES[1]);
}

#[test]
fn gemma_fixture_round_trips() {
    round_trip(ARCHES[2]);
}

#[test]
fn gemma2_fixture_round_trips() {
    round_trip(ARCHES[3]);
}

#[test]
fn qwen2_fixture_round_trips() {
    round_trip(ARCHES[4]);
}
