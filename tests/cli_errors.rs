//! The CLI refuses unsafe or malformed requests with a clear message and a non-zero exit,
//! leaving nothing behind.

mod common;

use common::*;

fn stderr_of(args: &[&str]) -> String {
    let out = llmtool(args);
    assert!(!out.status.success(), "llmtool {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fixture() -> std::path::PathBuf {
    root().join("fixtures/models/llama")
}

#[test]
fn existing_output_is_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    std::fs::write(&out, b"keep me").unwrap();
    let err = stderr_of(&["convert", "--quiet", fixture().to_str().unwrap(), out.to_str().unwrap()]);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    llmtool_ok(&["convert", "--quiet", "--force", fixture().to_str().unwrap(), out.to_str().unwrap()]);
    assert_ne!(std::fs::read(&out).unwrap(), b"keep me");
}

#[test]
fn output_that_is_the_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.gguf");
    llmtool_ok(&["convert", "--quiet", fixture().to_str().unwrap(), a.to_str().unwrap()]);
    let before = std::fs::read(&a).unwrap();
    // Same path, through `..`, and through a symlink — even with --force.
    let dotdot = dir.path().join("sub/../a.gguf");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let link = dir.path().join("link.gguf");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    for out in [&a, &dotdot, &link] {
        let err = stderr_of(&["convert", "--quiet", "--force", a.to_str().unwrap(), out.to_str().unwrap()]);
        assert!(err.contains("input"), "{err}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), before);
}

#[test]
fn pickle_checkpoints_are_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("pytorch_model.bin");
    std::fs::write(&bin, b"\x80\x02not really").unwrap();
    let err = stderr_of(&["inspect", bin.to_str().unwrap()]);
    assert!(err.contains("pickle") && err.contains("safetensors"), "{err}");
}

#[test]
fn missing_input_is_named() {
    let err = stderr_of(&["inspect", "/nonexistent/model.gguf"]);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
}

#[test]
fn shard_size_with_gguf_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    let err = stderr_of(&["convert", "--shard-size", "1GB", fixture().to_str().unwrap(), out.to_str().unwrap()]);
    assert!(err.contains("--shard-size"), "{err}");
    assert!(!out.exists());
}

#[test]
fn garbage_gguf_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00\xff\xff").unwrap();
    let err = stderr_of(&["inspect", bad.to_str().unwrap()]);
    assert!(err.contains("bad.gguf"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn inspect_reports_the_real_model() {
    let model = real_model();
    let out = llmtool_ok(&["inspect", "--json", model.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["n_tensors"], 272);
    assert_eq!(v["hyperparameters"]["block_count"], 30);
    assert_eq!(v["hyperparameters"]["attention.head_count_kv"], 3);
    // From the architecture: embeddings 49152×576 + 30 × (q,o 576² + k,v 576×192 +
    // gate,up,down 576×1536 + two norms of 576) + the output norm 576 (tied output).
    let per_layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576;
    assert_eq!(v["n_params"].as_u64().unwrap(), 49152 * 576 + 30 * per_layer + 576);
    let bpw = v["bits_per_weight"].as_f64().unwrap();
    assert!(bpw > 4.5 && bpw < 6.5, "{bpw}");
    let text = llmtool_ok(&["inspect", model.to_str().unwrap()]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("blk.0.attn_q.weight") && text.contains("Q4_1"), "{text}");
}
