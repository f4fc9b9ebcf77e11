//! `llmtool quantize` is byte-identical to llama-quantize on Mixture-of-Experts models: a
//! Mixtral-shaped F16 file with 8 experts (so llama-quant.cpp's `n_expert == 8` rules for
//! attn_v / attn_k / ffn_down apply) and a Qwen2-MoE-shaped one (4 experts, a shared expert),
//! with stacked 3-D expert tensors and F32 routers (`ffn_gate_inp`, never quantized).
//!
//! The judges are `fixtures/llama_quantize/moe_sha256.txt` and `moe_qwen2_sha256.txt`: the SHA-256 of llama-quantize's
//! output (llama.cpp 0c1e570, the one vendored in llama-cpp-python 0.3.36) for every file type,
//! with a synthetic importance matrix (per-expert sums and counts for the stacked tensors) and,
//! for the types that need none on this model, without; made by
//! `fixtures/llama_quantize/gen_moe.sh LLAMA_CPP_BIN_DIR`. The inputs are written here by the
//! same seeded script (`gen_moe_input.py`, numpy + gguf) and checked against the recorded
//! hashes first.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Writes `moe-f16.gguf` and `moe-imatrix.gguf` into `dir` (`extra`: gen_moe_input.py's model
/// flag), checked to be llama-quantize's inputs recorded in `expected`.
fn inputs(dir: &Path, extra: &[&str], expected: &[(String, String)]) -> PathBuf {
    let path = dir.join("moe-f16.gguf");
    let out = std::process::Command::new("python3")
        .arg(root().join("fixtures/llama_quantize/gen_moe_input.py"))
        .args(extra)
        .arg(&path)
        .arg(dir.join("moe-imatrix.gguf"))
        .output()
        .expect("python3 with numpy and gguf (scripts/judges-requirements.txt)");
    assert!(out.status.success(), "gen_moe_input.py: {}", String::from_utf8_lossy(&out.stderr));
    for (file, tag) in [("moe-f16.gguf", "F16-input"), ("moe-imatrix.gguf", "imatrix-input")] {
        let want = &expected.iter().find(|(t, _)| t == tag).unwrap().1;
        let got = sha256_hex(&std::fs::read(dir.join(file)).unwrap());
        assert_eq!(&got, want, "{file} differs from the one llama-quantize was given");
    }
    path
}

/// Quantizes the model of `hashes` (fixtures/llama_quantize/) to every recorded file type and
/// compares each output's SHA-256 with llama-quantize's; then checks that IQ3_XS without an
/// imatrix is refused (it gives these models' attn_q IQ3_XXS). Returns nothing: asserts.
fn check(hashes: &str, extra: &[&str]) {
    let expected = sha256_lines(&root().join("fixtures/llama_quantize").join(hashes));
    let dir = tempfile::tempdir().unwrap();
    let f16 = inputs(dir.path(), extra, &expected);
    let mut wrong = Vec::new();
    let tags: Vec<&(String, String)> = expected.iter().filter(|(t, _)| !t.ends_with("-input")).collect();
    assert_eq!(tags.len(), 18 + 27);
    for (tag, want) in tags {
        let (ty, imatrix) = match tag.strip_suffix("+imatrix") {
            Some(ty) => (ty, true),
            None => (tag.as_str(), false),
        };
        let out = dir.path().join(format!("{tag}.gguf"));
        let mut args =
            vec!["quantize", "--quiet", "--threads", "2", "moe-f16.gguf", out.to_str().unwrap(), "--type", ty];
        if imatrix {
            args.extend(["--imatrix", "moe-imatrix.gguf"]); // relative, as llama-quantize was given it
        }
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_llmtool"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(run.status.success(), "{tag}: {}", String::from_utf8_lossy(&run.stderr));
        let got = sha256_hex(&std::fs::read(&out).unwrap());
        if &got != want {
            wrong.push(format!("{tag}: {got} (llama-quantize {want})"));
        }
        std::fs::remove_file(&out).unwrap();
    }
    assert!(wrong.is_empty(), "{hashes}: outputs that differ from llama-quantize's:\n{}", wrong.join("\n"));
    let x = dir.path().join("x.gguf");
    let out = llmtool(&["quantize", "--quiet", f16.to_str().unwrap(), x.to_str().unwrap(), "--type", "IQ3_XS"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("importance matrix"), "{err}");
}

#[test]
fn every_file_type_with_and_without_imatrix_equals_llama_quantize_on_a_mixtral_shaped_model() {
    check("moe_sha256.txt", &[]);
}

/// Qwen2-MoE: 4 experts (n_expert neither 1 nor 8), a shared expert whose `ffn_down_shexp`
/// is one of llama-quant.cpp's `ffn_down` tensors, and the shared expert's gate [256, 1],
/// written 1-D as llama-quantize writes it.
#[test]
fn every_file_type_with_and_without_imatrix_equals_llama_quantize_on_a_qwen2_moe_shaped_model() {
    check("moe_qwen2_sha256.txt", &["--qwen2moe"]);
}
