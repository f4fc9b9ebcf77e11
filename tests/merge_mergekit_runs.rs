//! `llmtool merge` against mergekit 0.1.5's own outputs (`fixtures/merge/mergekit_runs`,
//! written by its committed generator with torch on CPU; no torch here):
//! - `g_*`: gradient parameters on f32 inputs — every tensor within 1e-6 of mergekit's,
//!   the final norm and lm_head included (mergekit 0.1.5 plans them at t = 0);
//! - `d{f16,bf16}_*`: `dtype: float16`/`bfloat16` on f16/bf16 inputs — with
//!   `--arithmetic dtype` bit-identical for the methods it reproduces (and a clear error for
//!   the others); with the default f32 arithmetic close to it — linear and slerp within one
//!   step of the dtype (at the inputs' magnitude), the methods mergekit rounds several times
//!   in a row within a few, the sparsifying ones differing where the magnitude selection does —
//!   the counts printed (README.md of the fixture states them).

mod common;

use std::path::{Path, PathBuf};

use common::variant::{read_st_f32, TensorsF32};
use common::*;

fn runs() -> PathBuf {
    root().join("fixtures/merge/mergekit_runs")
}

/// The committed cases: `configs/<case>.yml`, mergekit's output in `out/<case>`.
fn cases(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(runs().join("configs"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().and_then(|n| n.strip_suffix(".yml")).map(String::from))
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {prefix}* case in {}", runs().display());
    v
}

fn mergekit_out(case: &str) -> TensorsF32 {
    read_st_f32(&runs().join("out").join(case).join("model.safetensors"))
}

/// Every safetensors file of an HF output dir, merged.
fn read_dir_st(dir: &Path) -> TensorsF32 {
    let mut out = TensorsF32::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            out.extend(read_st_f32(&p));
        }
    }
    out
}

fn merge(case: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    let cfg = runs().join("configs").join(format!("{case}.yml"));
    let out = dir.join(format!("{case}{}", extra.join("")));
    let mut args = vec!["merge", cfg.to_str().unwrap(), out.to_str().unwrap(), "--to", "hf", "--quiet"];
    args.extend_from_slice(extra);
    let o = llmtool(&args);
    if o.status.success() {
        std::fs::write(dir.join("last"), out.to_str().unwrap()).unwrap();
    }
    o
}

fn merged(case: &str, dir: &Path, extra: &[&str]) -> TensorsF32 {
    let o = merge(case, dir, extra);
    assert!(o.status.success(), "llmtool merge {case} {extra:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let out = std::fs::read_to_string(dir.join("last")).unwrap();
    read_dir_st(Path::new(&out))
}

fn same_names(case: &str, ours: &TensorsF32, theirs: &TensorsF32) {
    let a: Vec<_> = ours.keys().collect();
    let b: Vec<_> = theirs.keys().collect();
    assert_eq!(a, b, "{case}: tensor names differ");
    for must in ["model.norm.weight", "lm_head.weight", "model.embed_tokens.weight"] {
        assert!(theirs.contains_key(must), "{case}: mergekit output lacks {must}");
    }
}

#[test]
fn gradient_parameters_match_mergekit_including_norm_and_lm_head() {
    let tmp = tempfile::tempdir().unwrap();
    for case in cases("g_") {
        let theirs = mergekit_out(&case);
        let ours = merged(&case, tmp.path(), &[]);
        same_names(&case, &ours, &theirs);
        for (name, (shape, want)) in &theirs {
            let (s, got) = &ours[name];
            assert_eq!(s, shape, "{case} {name}: shape");
            let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-6, "{case} {name}: differs from mergekit by up to {worst}");
        }
    }
}

/// The t = 0 rule is what the gradient cases test: at t = 1 the final norm and lm_head of
/// g_slerp would be model `a`'s, which differ from the base's (and from mergekit's result).
#[test]
fn gradient_cases_tell_t0_from_t1() {
    let theirs = mergekit_out("g_slerp");
    let a = read_st_f32(&runs().join("models/a_f32/model.safetensors"));
    let base = read_st_f32(&runs().join("models/base_f32/model.safetensors"));
    for name in ["model.norm.weight", "lm_head.weight"] {
        assert_eq!(theirs[name].1, base[name].1, "{name}: slerp at t = 0 is the base");
        assert_ne!(theirs[name].1, a[name].1, "{name}");
    }
}

/// The methods `--arithmetic dtype` reproduces bit for bit.
const EXACT: [&str; 6] = ["linear", "task_arithmetic", "ties", "breadcrumbs", "breadcrumbs_ties", "passthrough"];
/// The methods it refuses (whole-tensor torch reductions).
const REFUSED: [&str; 3] = ["slerp", "nuslerp", "model_stock"];

/// The case's `merge_method`.
fn method_of(case: &str) -> String {
    let text = std::fs::read_to_string(runs().join("configs").join(format!("{case}.yml"))).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("merge_method:")).expect("merge_method");
    line.trim().to_string()
}

#[test]
fn dtype_arithmetic_is_bit_identical_to_mergekit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = std::collections::BTreeSet::new();
    // dtype float16 / bfloat16, and the float32 gradient cases of the methods it reproduces
    for case in cases("d").into_iter().chain(["g_linear".to_string(), "g_ties".to_string()]) {
        let method = method_of(&case);
        if !EXACT.contains(&method.as_str()) {
            continue;
        }
        let theirs = mergekit_out(&case);
        let ours = merged(&case, tmp.path(), &["--arithmetic", "dtype"]);
        same_names(&case, &ours, &theirs);
        for (name, (_, want)) in &theirs {
            let got = &ours[name].1;
            let bad = got.iter().zip(want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(bad, 0, "{case} {name}: {bad} of {} elements differ from mergekit", want.len());
        }
        checked.insert((case.split('_').next().unwrap().to_string(), method));
    }
    for tag in ["df16", "dbf16"] {
        for m in EXACT {
            assert!(checked.contains(&(tag.to_string(), m.to_string())), "no {tag} case of {m}");
        }
    }
    assert!(checked.contains(&("g".to_string(), "linear".to_string())));
    assert!(checked.contains(&("g".to_string(), "ties".to_string())));
}

#[test]
fn dtype_arithmetic_refuses_what_it_cannot_reproduce() {
    let tmp = tempfile::tempdir().unwrap();
    for method in REFUSED {
        let case = format!("df16_{method}");
        let o = merge(&case, tmp.path(), &["--arithmetic", "dtype"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{case}: --arithmetic dtype should be refused");
        assert!(err.contains(&format!("mergekit's {method} bit for bit")), "{case}: {err}");
    }
    // a config without `dtype`: nothing to follow
    let cfg = tmp.path().join("nodtype.yml");
    let text = std::fs::read_to_string(runs().join("configs/g_linear.yml")).unwrap();
    let text = text.replace("../models/", &format!("{}/", runs().join("models").display()));
    std::fs::write(&cfg, text.replace("dtype: float32", "")).unwrap();
    let out = tmp.path().join("nodtype_out");
    let o = llmtool(&["merge", cfg.to_str().unwrap(), out.to_str().unwrap(), "--arithmetic", "dtype", "--quiet"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("config's `dtype`"), "{}", String::from_utf8_lossy(&o.stderr));
    // not an option of the evolutionary search
    let o = llmtool(&["merge", cfg.to_str().unwrap(), out.to_str().unwrap(), "--evolve", "--arithmetic", "dtype"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--evolve"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// One step of the dtype (f16: 11 significant bits, bf16: 8) at magnitude `m`.
fn step_at(m: f32, bf16: bool) -> f32 {
    let e = m.max(f32::MIN_POSITIVE).log2().floor();
    let step = (e - if bf16 { 7.0 } else { 10.0 }).exp2();
    if bf16 {
        step
    } else {
        step.max(2f32.powi(-24)) // f16 subnormals
    }
}

/// How far our elements are from mergekit's, in steps of the dtype at the inputs' magnitude.
struct Distance {
    differ: usize,
    beyond_one: usize,
    worst: f32,
}

#[test]
fn default_arithmetic_is_close_to_mergekit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    let mut bad = Vec::new();
    let mut total = 0;
    for case in cases("d") {
        let bf16 = case.starts_with("dbf16");
        let tag = if bf16 { "bf16" } else { "f16" };
        let inputs: Vec<TensorsF32> = ["base", "a", "b", "c"]
            .iter()
            .map(|m| read_st_f32(&runs().join(format!("models/{m}_{tag}/model.safetensors"))))
            .collect();
        let theirs = mergekit_out(&case);
        let ours = merged(&case, tmp.path(), &[]);
        same_names(&case, &ours, &theirs);
        let mut d = Distance { differ: 0, beyond_one: 0, worst: 0.0 };
        for (name, (_, want)) in &theirs {
            for (i, (&a, &b)) in ours[name].1.iter().zip(want).enumerate() {
                // ours as written (1-D tensors stay f32) rounded like mergekit's output
                let a = if bf16 { half::bf16::from_f32(a).to_f32() } else { half::f16::from_f32(a).to_f32() };
                let mag = inputs.iter().map(|t| t[name].1[i].abs()).fold(0f32, f32::max);
                let s = (a - b).abs() / step_at(mag, bf16);
                d.differ += usize::from(a != b);
                d.beyond_one += usize::from(s > 1.0);
                d.worst = d.worst.max(s);
                total += 1;
            }
        }
        let n: usize = theirs.values().map(|t| t.1.len()).sum();
        report.push(format!(
            "{case}: {} of {n} elements differ ({:.2} %), {} by more than one step at the inputs' magnitude (at most {:.1})",
            d.differ,
            100.0 * d.differ as f64 / n as f64,
            d.beyond_one,
            d.worst
        ));
        let m = method_of(&case);
        let ok = match m.as_str() {
            // f32 math (passthrough: one f32 multiply), one rounding in mergekit too: one step
            "linear" | "slerp" | "passthrough" => d.worst <= 1.0,
            // mergekit rounds after each of its (up to ~6) operations in a row
            "task_arithmetic" | "nuslerp" | "model_stock" => d.worst <= 8.0,
            // magnitude selection: where |δ| ties after mergekit's rounding, another element
            // may be kept (a difference of the task vector's size); a loose bound on how many
            _ => d.beyond_one * 20 <= n,
        };
        if !ok {
            bad.push(format!("{case}: {} beyond one step, at most {} steps", d.beyond_one, d.worst));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(total > 0);
    assert!(bad.is_empty(), "{bad:?}");
}
