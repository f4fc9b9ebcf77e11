//! The forward pass against transformers: for each fixture architecture, the logits of
//! `expected_logits.json`'s `input_ids` (computed by transformers in f32 eager mode, see
//! fixtures/README.md) from the HF dir and from its GGUF conversions by `llmtool convert`.
//! Also: incremental decoding with the KV cache gives the same logits as one batch.

mod common;

use std::path::Path;

use llmtool::infer::{InferModel, KvPrecision};
use llmtool::model::Model;

use common::FIXTURE_MODELS as ARCHS;

/// Fixtures with rope scaling (fixtures/README.md): their expected_logits.json also holds a
/// `long` text, longer than the longrope fixtures' original context (32).
const ROPE_SCALED: [&str; 3] = ["llama31", "phi35", "phi4mini"];

/// Bounds on max |Δlogit| per stored weight type. f32 is the 1e-4 (measured: 4e-6 …
/// 7e-6). With F16/BF16 matrices the products also round the activations to f16/bf16 (ggml's
/// `vec_dot_type`), which dominates: measured 0.9e-2 … 2.0e-2 (f16) and 5e-2 … 1.5e-1 (bf16)
/// over the five fixtures, whose random weights (std 0.2) give logits of magnitude ~5.
const TOL_F32: f32 = 1e-4;
const TOL_F16: f32 = 4e-2;
const TOL_BF16: f32 = 2.5e-1;

fn expected(arch: &str) -> (Vec<u32>, Vec<f32>, usize) {
    let path = common::root().join("fixtures/models").join(arch).join("expected_logits.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let ids: Vec<u32> = v["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let rows = v["logits"].as_array().unwrap();
    let n_vocab = rows[0].as_array().unwrap().len();
    let logits = rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32)).collect();
    (ids, logits, n_vocab)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn logits_of(path: &Path, ids: &[u32]) -> Vec<f32> {
    let model = Model::open(path).unwrap();
    let m = InferModel::load(&model).unwrap();
    let mut kv = m.new_cache(ids.len());
    m.forward(ids, &mut kv, 0).unwrap()
}

fn check(arch: &str, path: &Path, what: &str, tol: f32) -> f32 {
    let (ids, want, n_vocab) = expected(arch);
    let got = logits_of(path, &ids);
    assert_eq!(got.len(), ids.len() * n_vocab);
    let d = max_abs_diff(&got, &want);
    eprintln!("{arch} {what}: max |Δlogit| = {d:.3e}");
    assert!(d <= tol, "{arch} {what}: max |Δlogit| = {d} > {tol}");
    d
}

#[test]
fn hf_dirs_match_transformers() {
    for arch in ARCHS {
        check(arch, &common::root().join("fixtures/models").join(arch), "HF f32", TOL_F32);
    }
}

#[test]
fn gguf_conversions_match_transformers() {
    let tmp = tempfile::tempdir().unwrap();
    for arch in ARCHS {
        let dir = common::root().join("fixtures/models").join(arch);
        for (ty, tol) in [("f32", TOL_F32), ("f16", TOL_F16), ("bf16", TOL_BF16)] {
            let out = tmp.path().join(format!("{arch}-{ty}.gguf"));
            common::llmtool_ok(&["convert", dir.to_str().unwrap(), out.to_str().unwrap(), "--outtype", ty, "--quiet"]);
            check(arch, &out, &format!("GGUF {ty}"), tol);
        }
    }
}

#[test]
fn llama_cpp_reference_conversions_match_transformers() {
    // The same fixtures converted by llama.cpp's own convert_hf_to_gguf.py (f32) — without
    // tokenizer keys, which the forward pass does not need.
    for arch in ARCHS {
        check(arch, &common::root().join("fixtures/llama_cpp").join(format!("{arch}.gguf")), "llama.cpp GGUF", TOL_F32);
    }
}

#[test]
fn incremental_decoding_matches_one_batch() {
    for arch in ARCHS {
        let dir = common::root().join("fixtures/models").join(arch);
        let (ids, want, n_vocab) = expected(arch);
        let model = Model::open(&dir).unwrap();
        let m = InferModel::load(&model).unwrap();
        let mut kv = m.new_cache(ids.len());
        // a 7-token prompt, then one token at a time
        let mut got = m.forward(&ids[..7], &mut kv, 0).unwrap();
        for (i, &id) in ids.iter().enumerate().skip(7) {
            got.extend(m.forward(&[id], &mut kv, i).unwrap());
        }
        assert_eq!(kv.len(), ids.len());
        let d = max_abs_diff(&got, &want);
        assert!(d <= TOL_F32, "{arch}: incremental max |Δ| {d}");
        // forward_from returns the tail rows only, equal to the full call's
        kv.clear();
        let tail = m.forward_from(&ids, &mut kv, 0, ids.len() - 3).unwrap();
        assert_eq!(tail.len(), 3 * n_vocab);
        assert!(max_abs_diff(&tail, &want[(ids.len() - 3) * n_vocab..]) <= TOL_F32);
    }
}

/// The gemma3 fixtures' prompt is longer than their sliding window (4) and layers 0-4 slide:
/// without the window, or with the global RoPE on the sliding layers, the logits move far
/// beyond the tolerance — so the match above really tests both.
#[test]
fn gemma3_window_and_local_rope_are_exercised() {
    for arch in ["gemma3", "gemma3_mm"] {
        let (ids, want, _) = expected(arch);
        let window = 4;
        assert!(ids.len() > 2 * window, "{arch}: prompt of {} tokens", ids.len());
        let model = Model::open(&common::root().join("fixtures/models").join(arch)).unwrap();
        let mut m = InferModel::load(&model).unwrap();
        assert_eq!(m.cfg.sliding_window, Some(window));
        let slides: Vec<bool> = (0..m.cfg.n_layer).map(|il| m.cfg.layer_window(il).is_some()).collect();
        assert_eq!(slides, [true, true, true, true, true, false]);
        assert_ne!(m.cfg.layer_rope(0), m.cfg.layer_rope(5));
        let run = |m: &InferModel| {
            let mut kv = m.new_cache(ids.len());
            m.forward(&ids, &mut kv, 0).unwrap()
        };
        assert!(max_abs_diff(&run(&m), &want) <= TOL_F32);
        let rope_swa = m.cfg.rope_swa.take();
        let d = max_abs_diff(&run(&m), &want);
        assert!(d > 100.0 * TOL_F32, "{arch}: global rope on sliding layers changes the logits by only {d}");
        m.cfg.rope_swa = rope_swa;
        m.cfg.sliding_window = None;
        let d = max_abs_diff(&run(&m), &want);
        assert!(d > 100.0 * TOL_F32, "{arch}: no window changes the logits by only {d}");
    }
}

/// The cohere2 fixture's prompt (19 tokens) is longer than its window (4) and it has both
/// layer kinds (3 sliding with rope, 1 global without): without the window, or with rope on
/// every layer, the logits move far from transformers', so the matching test is not vacuous.
#[test]
fn cohere2_window_and_global_no_rope_matter() {
    let dir = common::root().join("fixtures/models/cohere2");
    let (ids, want, _) = expected("cohere2");
    let model = Model::open(&dir).unwrap();
    let mut m = InferModel::load(&model).unwrap();
    assert_eq!(m.cfg.sliding_window, Some(4));
    assert!(ids.len() > 4);
    assert_eq!(m.cfg.swa_layers.as_deref(), Some(&[true, true, true, false][..]));
    assert!(!m.cfg.layer_rotates(3) && m.cfg.layer_rotates(0));
    let run = |m: &InferModel| {
        let mut kv = m.new_cache(ids.len());
        m.forward(&ids, &mut kv, 0).unwrap()
    };
    assert!(max_abs_diff(&run(&m), &want) <= TOL_F32);
    m.cfg.sliding_window = None;
    let d = max_abs_diff(&run(&m), &want);
    assert!(d > 0.1, "logits without the window: max |Δ| {d}");
    m.cfg.sliding_window = Some(4);
    m.cfg.rope_swa_only = false;
    let d = max_abs_diff(&run(&m), &want);
    assert!(d > 0.1, "logits with rope on the global layer: max |Δ| {d}");
}

/// Command R: the logit scale, the q/k norms (the fixture is R+-shaped) and the LayerNorm are
/// really used: dropping either moves the logits.
#[test]
fn command_r_logit_scale_and_qk_norms_matter() {
    let dir = common::root().join("fixtures/models/command_r");
    let (ids, want, _) = expected("command_r");
    let model = Model::open(&dir).unwrap();
    let mut m = InferModel::load(&model).unwrap();
    assert_eq!(m.cfg.logit_scale, Some(0.5));
    assert!(m.cfg.parallel_block);
    let run = |m: &InferModel| {
        let mut kv = m.new_cache(ids.len());
        m.forward(&ids, &mut kv, 0).unwrap()
    };
    assert!(max_abs_diff(&run(&m), &want) <= TOL_F32);
    m.cfg.logit_scale = None;
    assert!(max_abs_diff(&run(&m), &want) > 0.1);
    m.cfg.logit_scale = Some(0.5);
    m.cfg.norm = llmtool::infer::NormKind::Rms;
    assert!(max_abs_diff(&run(&m), &want) > 0.01);
}

#[test]
fn f16_kv_cache_changes_logits_slightly() {
    let dir = common::root().join("fixtures/models/llama");
    let (ids, want, _) = expected("llama");
    let model = Model::open(&dir).unwrap();
    let mut m = InferModel::load(&model).unwrap();
    m.set_kv_precision(KvPrecision::F16);
    let mut kv = m.new_cache(ids.len());
    let got = m.forward(&ids, &mut kv, 0).unwrap();
    let d = max_abs_diff(&got, &want);
    assert!(d > 0.0 && d < 2e-2, "f16 KV cache: max |Δ| {d}");
}

#[test]
fn errors_are_typed() {
    let dir = common::root().join("fixtures/models/llama");
    let model = Model::open(&dir).unwrap();
    let m = InferModel::load(&model).unwrap();
    let mut kv = m.new_cache(4);
    let e = m.forward(&[1, 2, 3, 4, 5], &mut kv, 0).unwrap_err().to_string();
    assert!(e.contains("KV cache overflow"), "{e}");
    let e = m.forward(&[1], &mut kv, 2).unwrap_err().to_string();
    assert!(e.contains("holds only 0 positions"), "{e}");
    let e = m.forward(&[100_000], &mut kv, 0).unwrap_err().to_string();
    assert!(e.contains("out of range"), "{e}");
}

fn expected_long(arch: &str) -> (Vec<u32>, Vec<f32>) {
    let path = common::root().join("fixtures/models").join(arch).join("expected_logits.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let long = &v["long"];
    let ids = long["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let logits = long["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
        .collect();
    (ids, logits)
}

/// Logits of `ids` with a KV cache of `cap` positions (the context longrope chooses by).
fn logits_with_cap(m: &InferModel<'_>, ids: &[u32], cap: usize) -> Vec<f32> {
    let mut kv = m.new_cache(cap);
    m.forward(ids, &mut kv, 0).unwrap()
}

#[test]
fn rope_scaled_long_texts_match_transformers() {
    // HF dir, our GGUF and llama.cpp's GGUF: rope factors applied as ggml does. For longrope
    // the 72-token text runs in a 72-position context > original 32: long factors, which is
    // also transformers' choice (its sequence length 72 > 32).
    let tmp = tempfile::tempdir().unwrap();
    for arch in ROPE_SCALED {
        let (ids, want) = expected_long(arch);
        let dir = common::root().join("fixtures/models").join(arch);
        let gguf = tmp.path().join(format!("{arch}.gguf"));
        common::llmtool_ok(&["convert", dir.to_str().unwrap(), gguf.to_str().unwrap(), "--quiet"]);
        let reference = common::root().join("fixtures/llama_cpp").join(format!("{arch}.gguf"));
        for (what, path) in [("HF", dir.as_path()), ("GGUF", gguf.as_path()), ("llama.cpp GGUF", reference.as_path())] {
            let got = logits_of(path, &ids);
            let d = max_abs_diff(&got, &want);
            eprintln!("{arch} long text {what}: max |Δlogit| = {d:.3e}");
            assert!(d <= TOL_F32, "{arch} long text {what}: max |Δlogit| = {d} > {TOL_F32}");
        }
    }
}

/// A tensor source without the rope factor tensors (the model as if they were ignored).
struct WithoutRopeFactors<'a> {
    inner: &'a dyn llmtool_formats::TensorSource,
    infos: Vec<llmtool_formats::TensorInfo>,
}

impl llmtool_formats::TensorSource for WithoutRopeFactors<'_> {
    fn tensor_infos(&self) -> &[llmtool_formats::TensorInfo] {
        &self.infos
    }
    fn tensor_bytes(&self, name: &str) -> Result<std::borrow::Cow<'_, [u8]>, llmtool_formats::FormatError> {
        self.inner.tensor_bytes(name)
    }
    fn release(&self, name: &str) {
        self.inner.release(name)
    }
}

#[test]
fn llama3_rope_factors_change_the_logits_far_beyond_the_tolerance() {
    // Not vacuous: the same model without rope_freqs.weight is far from transformers.
    let dir = common::root().join("fixtures/models/llama31");
    let (ids, want) = expected_long("llama31");
    let model = Model::open(&dir).unwrap();
    assert!(model.tensors.tensor_info("rope_freqs.weight").is_some());
    let src = WithoutRopeFactors {
        inner: model.tensors.as_ref(),
        infos: model.tensors.tensor_infos().iter().filter(|t| t.name != "rope_freqs.weight").cloned().collect(),
    };
    let plain = InferModel::from_source(&model.metadata, &src).unwrap();
    let d = max_abs_diff(&logits_with_cap(&plain, &ids, ids.len()), &want);
    eprintln!("llama31 without rope factors: max |Δlogit| = {d:.3e}");
    assert!(d > 1000.0 * TOL_F32, "rope factors barely matter: max |Δlogit| {d}");
}

#[test]
fn longrope_factors_follow_the_context_length() {
    for arch in ["phi35", "phi4mini"] {
        let dir = common::root().join("fixtures/models").join(arch);
        let model = Model::open(&dir).unwrap();
        let m = InferModel::load(&model).unwrap();
        assert_eq!(m.cfg.rope.n_ctx_orig, 32);
        assert_eq!(m.cfg.rope.n_rot, if arch == "phi4mini" { 12 } else { 16 }, "{arch}: partial rotary");
        assert!(m.rope_factors_for(32) != m.rope_factors_for(33), "{arch}: short factors up to 32, long above");
        // The 19-token prompt in a 19-position context: short factors, as transformers (19 <= 32).
        let (ids, want, _) = expected(arch);
        let d = max_abs_diff(&logits_with_cap(&m, &ids, ids.len()), &want);
        assert!(d <= TOL_F32, "{arch}: short prompt, short factors: {d}");
        // The same prompt in a 256-position context takes the long factors (llama.cpp's rule:
        // n_ctx > n_ctx_orig), which transformers does not do for a 19-token sequence: the
        // logits move far beyond the tolerance, so the choice is tested, not incidental.
        let d = max_abs_diff(&logits_with_cap(&m, &ids, 256), &want);
        eprintln!("{arch}: short prompt with long factors: max |Δlogit| = {d:.3e}");
        assert!(d > 1000.0 * TOL_F32, "{arch}: long factors change little: {d}");
    }
}
