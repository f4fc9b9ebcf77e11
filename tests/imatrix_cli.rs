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

/// Relative differences of every value of `ours` from `judge` (each relative to the larger of
/// the judge's value and its entry's mean value: a column whose activations are tiny is
/// compared at the entry's scale), after checking names, sizes and token counts. `filter`
/// picks the entries.
fn differences(ours: &Imatrix, judge: &Imatrix, filter: impl Fn(&str) -> bool) -> Vec<f64> {
    assert_eq!(ours.entries.keys().collect::<Vec<_>>(), judge.entries.keys().collect::<Vec<_>>(), "entry names");
    let (a, b) = (ours.importance(), judge.importance());
    let mut out = Vec::new();
    for (name, want) in b.iter().filter(|(n, _)| filter(n)) {
        let got = &a[name];
        assert_eq!(got.len(), want.len(), "{name}");
        assert_eq!(ours.entries[*name].counts, judge.entries[*name].counts, "{name}: tokens seen");
        let scale = want.iter().map(|&v| v.abs() as f64).sum::<f64>() / want.len() as f64;
        out.extend(
            got.iter().zip(want.iter()).map(|(&g, &w)| (g as f64 - w as f64).abs() / (w.abs() as f64).max(scale)),
        );
    }
    out
}

/// (median, 99th percentile, max) of `v`.
fn spread(mut v: Vec<f64>) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    [q(0.5), q(0.99), q(1.0)]
}

/// Ours against llama-imatrix: the first layer element by element (1e-3: only the order of
/// the arithmetic differs there), and the whole matrix within 1.5× of how far llama.cpp's
/// own result moves when only its attention kernel changes (`-fa off`): 30 layers of
/// quantized products amplify rounding differences alike for both.
fn assert_close_to_llama(ours: &Imatrix, judge: &Imatrix) -> [f64; 3] {
    let first = spread(differences(ours, judge, |n| n.starts_with("blk.0.")));
    assert!(first[2] <= 1e-3, "layer 0: largest relative difference {:.2e}", first[2]);
    let fa_off = Imatrix::read(&fixture("smollm2-q4_1-wiki4-fa-off.gguf")).unwrap();
    let own = spread(differences(&fa_off, judge, |_| true));
    let got = spread(differences(ours, judge, |_| true));
    for (i, what) in ["median", "99th percentile", "max"].iter().enumerate() {
        assert!(
            got[i] <= 1.5 * own[i],
            "{what} relative difference {:.2e}, llama.cpp's own (-fa off) {:.2e}",
            got[i],
            own[i]
        );
    }
    eprintln!("relative difference from llama-imatrix: median/p99/max {got:?}; llama.cpp -fa off: {own:?}");
    got
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
    assert_close_to_llama(&ours, &judge);

    // The legacy format: ours written as .dat holds the same importance as our GGUF, and
    // is as close to llama-imatrix's own .dat.
    let dat = dir.path().join("ours.dat");
    llmtool_ok(&["imatrix", "--in-file", out.to_str().unwrap(), "-o", dat.to_str().unwrap(), "-q"]);
    let ours_dat = Imatrix::read(&dat).unwrap();
    let judge_dat = Imatrix::read(&fixture("smollm2-q4_1-wiki4.dat")).unwrap();
    assert!(ours_dat.is_legacy && judge_dat.is_legacy);
    assert_eq!(ours_dat.entries.keys().collect::<Vec<_>>(), judge_dat.entries.keys().collect::<Vec<_>>());
    let (a, b) = (ours_dat.importance(), ours.importance());
    for (name, v) in &a {
        for (x, y) in v.iter().zip(&b[name]) {
            assert!((x - y).abs() <= 1e-6 * y.abs().max(1e-6), "{name}: {x} vs {y}");
        }
    }
    let (x, y) = (judge_dat.importance(), judge.importance());
    for (name, v) in &x {
        for (p, q) in v.iter().zip(&y[name]) {
            assert!((p - q).abs() <= 1e-6 * q.abs().max(1e-6), "llama.cpp's .dat vs its GGUF, {name}: {p} vs {q}");
        }
    }
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
