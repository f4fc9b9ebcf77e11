//! `llmtool imatrix`: the importance matrix of the real model, against llama.cpp's own
//! `llama-imatrix` output on the same model and text (committed by
//! fixtures/imatrix/gen_llama_imatrix.sh, llama.cpp 0c1e570 from llama-cpp-python 0.3.36),
//! both file formats, combining files, and bad input.

mod common;

use std::path::Path;

use common::{llmtool, llmtool_ok, real_model, root, wiki_text};
use llmtool_formats::imatrix::Imatrix;

fn fixture(name: &str) -> std::path::PathBuf {
    root().join("fixtures/imatrix").join(name)
}

fn imatrix(model: &Path, out: &Path, extra: &[&str]) {
    let text = wiki_text();
    let mut args = vec![
        "imatrix",
        model.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "512",
        "--chunks",
        "4",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend_from_slice(extra);
    llmtool_ok(&args);
}

/// Every entry of `ours` matches `judge`: the same names and token counts, and each value
/// within `rel` of llama.cpp's, relative to the entry's mean value (a column whose activations
/// are tiny is compared at the entry's scale: the two cores round activations differently).
fn assert_matches(ours: &Imatrix, judge: &Imatrix, rel: f64) -> f64 {
    let (a, b) = (ours.importance(), judge.importance());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "entry names");
    let mut worst = 0f64;
    for (name, want) in &b {
        let got = &a[name];
        assert_eq!(got.len(), want.len(), "{name}");
        let scale = want.iter().map(|&v| v.abs() as f64).sum::<f64>() / want.len() as f64;
        for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
            let e = (g as f64 - w as f64).abs() / (w.abs() as f64).max(scale);
            assert!(e <= rel, "{name}[{i}]: ours {g}, llama-imatrix {w} (relative error {e:.2e})");
            worst = worst.max(e);
        }
    }
    worst
}

#[test]
fn real_model_matches_llama_imatrix_in_both_formats() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ours.gguf");
    imatrix(&model, &out, &[]);
    let ours = Imatrix::read(&out).unwrap();
    let judge = Imatrix::read(&fixture("smollm2-q4_1-wiki4.gguf")).unwrap();
    assert_eq!(ours.chunk_count, 4);
    assert_eq!(ours.chunk_size, 512);
    assert_eq!(ours.entries.len(), 30 * 7, "7 matrices in each of 30 layers");
    for (name, e) in &judge.entries {
        assert_eq!(ours.entries[name].counts, e.counts, "{name}: tokens seen");
    }
    let worst = assert_matches(&ours, &judge, 1e-3);
    eprintln!("worst relative difference from llama-imatrix: {worst:.2e}");

    // The legacy format: ours written as .dat reads back to the same importance as
    // llama-imatrix's own .dat.
    let dat = dir.path().join("ours.dat");
    llmtool_ok(&["imatrix", "--in-file", out.to_str().unwrap(), "-o", dat.to_str().unwrap(), "-q"]);
    let ours_dat = Imatrix::read(&dat).unwrap();
    assert!(ours_dat.is_legacy);
    assert_matches(&ours_dat, &Imatrix::read(&fixture("smollm2-q4_1-wiki4.dat")).unwrap(), 1e-3);
    assert_matches(&ours_dat, &ours, 1e-6);
}

#[test]
fn in_files_add_up_and_bad_files_are_refused() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.gguf");
    imatrix(&model, &a, &[]);
    let m = Imatrix::read(&a).unwrap();
    // a + a: counts and sums double, importance unchanged
    let aa = dir.path().join("aa.gguf");
    llmtool_ok(&[
        "imatrix",
        "--in-file",
        a.to_str().unwrap(),
        "--in-file",
        a.to_str().unwrap(),
        "-o",
        aa.to_str().unwrap(),
    ]);
    let mm = Imatrix::read(&aa).unwrap();
    assert_eq!(mm.chunk_count, 8);
    for (name, e) in &m.entries {
        assert_eq!(mm.entries[name].counts, vec![2 * e.counts[0]], "{name}");
        for (x, y) in mm.entries[name].sums.iter().zip(&e.sums) {
            assert_eq!(*x, 2.0 * y, "{name}");
        }
    }
    // An imatrix of another model: refused before anything is written.
    let other = root().join("fixtures/models/llama");
    let out = dir.path().join("x.gguf");
    let o =
        llmtool(&["imatrix", other.to_str().unwrap(), "--in-file", a.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("does not fit") && err.contains("blk."), "{err}");
    assert!(!out.exists());
    // A truncated legacy file and a truncated GGUF file: clear errors naming the file.
    let dat = dir.path().join("a.dat");
    llmtool_ok(&["imatrix", "--in-file", a.to_str().unwrap(), "-o", dat.to_str().unwrap(), "-q"]);
    for (name, src) in [("t.dat", dat), ("t.gguf", a.clone())] {
        let bytes = std::fs::read(&src).unwrap();
        let t = dir.path().join(name);
        std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
        let o = llmtool(&["imatrix", "--in-file", t.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(name), "{name}: {err}");
        assert!(!out.exists());
    }
    // An existing output is kept without --force.
    let o = llmtool(&["imatrix", "--in-file", a.to_str().unwrap(), "-o", aa.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--force"));
}
