//! `llmtool quantize` is byte-identical to llama-quantize on a Mixture-of-Experts model: a
//! Mixtral-shaped F16 file with 8 experts (so llama-quant.cpp's `n_expert == 8` rules for
//! attn_v / attn_k / ffn_down apply), stacked 3-D expert tensors and F32 routers
//! (`ffn_gate_inp`, never quantized).
//!
//! The judge is `fixtures/llama_quantize/moe_sha256.txt`: the SHA-256 of llama-quantize's
//! output (llama.cpp 0c1e570, the one vendored in llama-cpp-python 0.3.36) for every file type
//! that needs no importance matrix, made by `fixtures/llama_quantize/gen_moe.sh
//! LLAMA_CPP_BIN_DIR`. The input is written here by the same seeded script
//! (`gen_moe_input.py`, numpy + gguf) and checked against the recorded hash first.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn expected() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("fixtures/llama_quantize/moe_sha256.txt")).unwrap();
    text.lines()
        .map(|l| {
            let (hash, tag) = l.split_once("  ").expect("sha256sum line");
            (tag.to_string(), hash.to_string())
        })
        .collect()
}

fn input(dir: &Path, expected: &[(String, String)]) -> PathBuf {
    let path = dir.join("moe-f16.gguf");
    let out = std::process::Command::new("python3")
        .arg(root().join("fixtures/llama_quantize/gen_moe_input.py"))
        .arg(&path)
        .output()
        .expect("python3 with numpy and gguf (scripts/judges-requirements.txt)");
    assert!(out.status.success(), "gen_moe_input.py: {}", String::from_utf8_lossy(&out.stderr));
    let want = &expected.iter().find(|(t, _)| t == "F16-input").unwrap().1;
    assert_eq!(
        &sha256_hex(&std::fs::read(&path).unwrap()),
        want,
        "the input differs from the one llama-quantize was given"
    );
    path
}

#[test]
fn every_file_type_equals_llama_quantize_on_a_mixtral_shaped_model() {
    let expected = expected();
    let dir = tempfile::tempdir().unwrap();
    let f16 = input(dir.path(), &expected);
    let mut wrong = Vec::new();
    let types: Vec<&(String, String)> = expected.iter().filter(|(t, _)| t != "F16-input").collect();
    assert_eq!(types.len(), 18);
    for (ty, want) in types {
        let out = dir.path().join(format!("{ty}.gguf"));
        llmtool_ok(&[
            "quantize",
            "--quiet",
            "--threads",
            "2",
            f16.to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            ty,
        ]);
        let got = sha256_hex(&std::fs::read(&out).unwrap());
        if &got != want {
            wrong.push(format!("{ty}: {got} (llama-quantize {want})"));
        }
        std::fs::remove_file(&out).unwrap();
    }
    assert!(wrong.is_empty(), "outputs that differ from llama-quantize's:\n{}", wrong.join("\n"));
    // IQ3_XS gives this model's attn_q IQ3_XXS, which llama-quantize refuses without an imatrix
    let out = llmtool(&[
        "quantize",
        "--quiet",
        f16.to_str().unwrap(),
        dir.path().join("x.gguf").to_str().unwrap(),
        "--type",
        "IQ3_XS",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("importance matrix"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
