//! HF → GGUF → HF on the tiny committed fixture of every architecture: every tensor comes
//! back under the same name with the same dtype, shape and bytes; the PyPI packages read
//! both directions' outputs.

mod common;

use std::path::Path;

use common::*;
use llmtool_formats::hf::HfDir;

const ARCHES: &[&str] = &["llama", "phi3", "gemma", "gemma2", "qwen2", "command_r", "cohere2"];

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

#[test]
fn command_r_fixture_round_trips() {
    round_trip(ARCHES[5]);
}

#[test]
fn cohere2_fixture_round_trips() {
    round_trip(ARCHES[6]);
}

/// bf16 rounding of an f32 (round to nearest even), computed here independently of the
/// kernels crate.
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = b + 0x7FFF + ((b >> 16) & 1);
    (rounded >> 16) as u16
}

#[test]
fn hf_to_hf_redtypes_and_reshards() {
    let src = root().join("fixtures/models/llama");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bf16");
    llmtool_ok(&[
        "convert",
        "--quiet",
        "--outtype",
        "bf16",
        "--shard-size",
        "100KB",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(out.join("model.safetensors.index.json").exists());
    let st = judge("st_dump.py", &[out.as_path()]);
    let shards: std::collections::BTreeSet<&str> =
        st["tensors"].as_object().unwrap().values().map(|t| t["file"].as_str().unwrap()).collect();
    assert!(shards.len() > 1, "several shards expected: {shards:?}");
    let a = HfDir::open(&src).unwrap();
    let b = HfDir::open(&out).unwrap();
    assert_eq!(b.config["torch_dtype"], "bfloat16");
    assert_eq!(a.weights.tensors().len(), b.weights.tensors().len());
    for t in a.weights.tensors() {
        let u = b.weights.tensor(&t.name).unwrap();
        assert_eq!(format!("{:?}", u.dtype), "BF16", "{}", t.name);
        assert_eq!(t.shape, u.shape);
        let want: Vec<u16> = a
            .weights
            .tensor_data(&t.name)
            .unwrap()
            .chunks_exact(4)
            .map(|c| bf16_bits(f32::from_le_bytes(c.try_into().unwrap())))
            .collect();
        let got: Vec<u16> =
            b.weights.tensor_data(&t.name).unwrap().chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(want, got, "{}", t.name);
    }
    // Tokenizer and extra files travel along unchanged.
    assert_eq!(a.tokenizer_json, b.tokenizer_json);
    assert_eq!(a.tokenizer_config, b.tokenizer_config);
}

#[test]
fn gguf_to_gguf_retypes_matrices_and_keeps_vectors_f32() {
    let src = root().join("fixtures/models/qwen2");
    let dir = tempfile::tempdir().unwrap();
    let g32 = dir.path().join("a.gguf");
    let g16 = dir.path().join("b.gguf");
    llmtool_ok(&["convert", "--quiet", src.to_str().unwrap(), g32.to_str().unwrap()]);
    llmtool_ok(&["convert", "--quiet", "--outtype", "f16", g32.to_str().unwrap(), g16.to_str().unwrap()]);
    let a = llmtool_formats::gguf::GgufFile::open(&g32).unwrap();
    let b = llmtool_formats::gguf::GgufFile::open(&g16).unwrap();
    assert_eq!(b.metadata.get_u64("general.file_type"), Some(1), "MOSTLY_F16");
    for (t, u) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(t.name, u.name);
        let want = if t.ne.len() >= 2 { llmtool_formats::GgmlType::F16 } else { llmtool_formats::GgmlType::F32 };
        assert_eq!(u.ty, want, "{}", t.name);
        if u.ty == llmtool_formats::GgmlType::F16 {
            let x: Vec<f32> = a
                .tensor_data(&t.name)
                .unwrap()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let y = b.tensor_data(&u.name).unwrap();
            for (i, v) in x.iter().enumerate() {
                // Round to nearest even, as numpy's float16 does (the kernels tests check
                // `half` against numpy on every value class).
                let h = u16::from_le_bytes([y[2 * i], y[2 * i + 1]]);
                assert_eq!(h, half::f16::from_f32(*v).to_bits(), "{}[{i}] = {v}", t.name);
            }
        }
    }
    assert_gguf_py_agrees(&g16);
}

#[test]
fn inspect_shows_an_hf_dir_under_gguf_names() {
    let src = root().join("fixtures/models/phi3");
    let out = llmtool_ok(&["inspect", "--json", src.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"]["kind"], "hf");
    assert_eq!(v["architecture"], "phi3");
    let names: Vec<&str> = v["tensors"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"blk.0.attn_qkv.weight"), "{names:?}");
    assert!(names.contains(&"blk.1.ffn_up.weight"), "{names:?}");
    assert_eq!(v["hyperparameters"]["block_count"], 2);
}
