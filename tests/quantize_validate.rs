//! `llmtool quantize --validate TEXT`: perplexity before/after and KL divergence on the real
//! model and the real text, and `--max-ppl-increase` as a gate.

mod common;

use std::path::Path;
use std::process::Output;

use common::{llmtool, llmtool_ok, real_model};

fn wiki() -> std::path::PathBuf {
    common::wiki_text()
}

/// `llmtool quantize MODEL OUT -t TY REST…`.
fn quantize(model: &Path, out: &Path, ty: &str, rest: &[&str]) -> Output {
    let mut args = vec!["quantize", model.to_str().unwrap(), out.to_str().unwrap(), "-t", ty];
    args.extend_from_slice(rest);
    llmtool(&args)
}

/// The figure after `label` on the report line starting with it.
fn figure(report: &str, label: &str) -> f64 {
    let line =
        report.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label} in {report}"));
    line.trim_start()[label.len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn validate_reports_perplexity_before_after_and_kld() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q8.gguf");
    let text = wiki();
    let args = ["--validate", text.to_str().unwrap(), "--validate-chunks", "2", "--validate-ctx", "128", "--quiet"];
    let o = quantize(&model, &out, "Q8_0", &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = String::from_utf8(o.stdout).unwrap();
    let before = figure(&report, "PPL before (IN):");
    let after = figure(&report, "PPL after (OUT):");
    // Q8_0 from Q4_1 weights is nearly lossless: same order, within 2 %.
    assert!(before > 1.0 && (after / before - 1.0).abs() < 0.02, "{report}");
    assert!(report.contains("KLD mean") && report.contains("same top-1 token"), "{report}");
    // The same perplexity as `llmtool perplexity` on the input.
    let p = llmtool_ok(&[
        "perplexity",
        model.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "128",
        "--chunks",
        "2",
        "--json",
        "-q",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    let ppl = v["ppl"].as_f64().unwrap();
    assert!((ppl - before).abs() / ppl < 1e-4, "perplexity {ppl} vs validation {before}");
}

#[test]
fn max_ppl_increase_fails_a_lossy_pass_and_keeps_the_output() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q4_0.gguf");
    let text = wiki();
    let o = quantize(
        &model,
        &out,
        "Q4_0",
        &[
            "--validate",
            text.to_str().unwrap(),
            "--validate-chunks",
            "2",
            "--validate-ctx",
            "128",
            "--max-ppl-increase",
            "0.5",
            "--quiet",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "Q4_0 from Q4_1 raises perplexity by more than 0.5 %");
    assert!(err.contains("validation failed: perplexity rose by"), "{err}");
    assert!(out.is_file(), "the output is kept for inspection");
}

#[test]
fn validate_errors_come_before_quantizing() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"ok \xff\xfe not utf-8").unwrap();
    let o = quantize(&model, &out, "Q8_0", &["--validate", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not valid UTF-8") && err.contains("byte offset 3"), "{err}");
    assert!(!out.exists());
    let o = quantize(&model, &out, "Q8_0", &["--dry-run", "--validate", bad.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--dry-run"));
    let o = quantize(&model, &out, "Q8_0", &["--validate-chunks", "2"]);
    assert!(!o.status.success(), "--validate-chunks needs --validate");
}
