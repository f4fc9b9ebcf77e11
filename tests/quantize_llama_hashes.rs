//! `llmtool quantize` is byte-identical to llama-quantize on the real model, for every file
//! type, with and without an importance matrix.
//!
//! The judge is `fixtures/llama_quantize/sha256.txt`: the SHA-256 of each llama-quantize output
//! (llama.cpp 0c1e570, the one vendored in llama-cpp-python 0.3.36) on SmolLM2-135M-Instruct
//! turned into F16, with and without `fixtures/imatrix/smollm2-q4_1-wiki4.gguf`, made by
//! `fixtures/llama_quantize/gen.sh LLAMA_CPP_BIN_DIR hashes`. llama-quantize is not needed here.
//!
//! The default test runs a subset that covers each quantizer family (legacy, K, i-quants, each
//! with and without weights) in CI time; `every_file_type_equals_llama_quantize` runs all 46
//! outputs (`cargo test --test quantize_llama_hashes -- --ignored`, a few minutes).

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The imatrix as llama-quantize was given it: the path is recorded in the output's
/// `quantize.imatrix.file`, so it is passed relative to the repository root, as there.
const IMATRIX: &str = "fixtures/imatrix/smollm2-q4_1-wiki4.gguf";

fn expected() -> Vec<(String, String)> {
    sha256_lines(&root().join("fixtures/llama_quantize/sha256.txt"))
}

fn sha256_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

/// SmolLM2 as F16, made the way gen.sh made llama-quantize's input, checked to be that input.
fn f16_input(dir: &Path, expected: &[(String, String)]) -> PathBuf {
    let f16 = dir.join("smol-f16.gguf");
    let model = real_model();
    llmtool_ok(&["quantize", "--quiet", model.to_str().unwrap(), f16.to_str().unwrap(), "--type", "F16"]);
    let want = &expected.iter().find(|(t, _)| t == "F16-input").unwrap().1;
    assert_eq!(&sha256_file(&f16), want, "the F16 input differs from the one llama-quantize was given");
    f16
}

fn check(tags: &[&str]) {
    let expected = expected();
    let dir = tempfile::tempdir().unwrap();
    let f16 = f16_input(dir.path(), &expected);
    let mut wrong = Vec::new();
    for tag in tags {
        let want = &expected.iter().find(|(t, _)| t == tag).unwrap_or_else(|| panic!("{tag} not in sha256.txt")).1;
        let (ty, imatrix) = match tag.strip_suffix("+imatrix") {
            Some(ty) => (ty, true),
            None => (*tag, false),
        };
        let out = dir.path().join(format!("{tag}.gguf"));
        let mut args = vec!["quantize", "--quiet", "--threads", "2", f16.to_str().unwrap(), out.to_str().unwrap()];
        args.extend(["--type", ty]);
        if imatrix {
            args.extend(["--imatrix", IMATRIX]);
        }
        let run =
            std::process::Command::new(env!("CARGO_BIN_EXE_llmtool")).args(&args).current_dir(root()).output().unwrap();
        assert!(run.status.success(), "{tag}: {}", String::from_utf8_lossy(&run.stderr));
        let got = sha256_file(&out);
        if &got != want {
            wrong.push(format!("{tag}: {got} (llama-quantize {want})"));
        }
        std::fs::remove_file(&out).unwrap();
    }
    assert!(wrong.is_empty(), "outputs that differ from llama-quantize's:\n{}", wrong.join("\n"));
}

#[test]
fn file_types_equal_llama_quantize() {
    check(&[
        "Q4_0",
        "Q5_1+imatrix",
        "Q3_K_M",
        "Q4_K_M+imatrix",
        "Q2_K_S+imatrix",
        "IQ4_NL",
        "IQ4_XS+imatrix",
        "IQ3_M+imatrix",
        "IQ2_XXS+imatrix",
        "IQ1_M+imatrix",
    ]);
}

#[test]
#[ignore = "all 46 outputs take minutes; run with --ignored"]
fn every_file_type_equals_llama_quantize() {
    let tags: Vec<String> = expected().into_iter().map(|(t, _)| t).filter(|t| t != "F16-input").collect();
    check(&tags.iter().map(String::as_str).collect::<Vec<_>>());
}
