//! `llmtool lora extract` against independent judges, on the tiny llama fixture and a
//! "tuned" copy of it with known deltas (fixtures/lora/extract/tuned: rank-4 LoRAs on every
//! linear module, rank 8 on k_proj, rank 4 on the embedding, a full-rank lm_head change and
//! three changed norms; fixtures/lora/extract/gen_extract_fixtures.py):
//!
//! * round trip: at a rank ≥ the deltas' ranks, `lora merge` of the extracted adapter gives
//!   the tuned weights back (HF and GGUF inputs, PEFT and GGUF adapters);
//! * Eckart–Young: below that rank, each module's delta is numpy's best rank-k approximation
//!   (tests/judges/lora_extract_ey.py, also on Q8_0 GGUF inputs dequantized by gguf-py);
//! * PEFT 0.21 loads adapters we extracted and its `merge_and_unload()` equals our merge;
//! * mergekit 0.1.5's `mergekit-extract-lora` gives the same B·A per module;
//! * mismatched inputs and bad options are clear errors that write nothing.
//!
//! Tolerances: 1e-5 (absolute below 1, relative above) for merged weights; the Eckart–Young
//! comparison 1e-6 of the module's largest element (the SVD runs in f64, the factors are
//! stored in f32: measured ≤ 1e-7); mergekit's products 1e-5 of the largest element
//! (mergekit's SVD runs in f32: measured 2e-6).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{judge, llmtool, llmtool_ok, root};
use llmtool::model::Model;
use llmtool_formats::safetensors::SafetensorsSet;
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmtool-extract-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(&d);
    d
}

fn base() -> PathBuf {
    root().join("fixtures/models/llama")
}

fn tuned() -> PathBuf {
    root().join("fixtures/lora/extract/tuned")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn extract(base: &Path, tuned: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["lora", "extract", "--base", s(base), "--tuned", s(tuned)];
    args.extend(extra);
    args.extend([s(out), "-q"]);
    llmtool_ok(&args);
}

fn merge(base: &Path, adapter: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["lora", "merge", "--base", s(base), "--adapter", s(adapter), s(out), "-q"];
    args.extend(extra);
    llmtool_ok(&args);
}

/// Every tensor of a model (HF dir or GGUF) as f32, under GGUF names and layouts.
fn tensors(path: &Path) -> HashMap<String, Vec<f32>> {
    let m = Model::open(path).unwrap();
    m.tensors
        .tensor_infos()
        .iter()
        .map(|t| {
            let mut v = vec![0f32; t.n_elements().unwrap() as usize];
            llmtool_kernels::dequant::dequantize(t.ty, &m.tensors.tensor_bytes(&t.name).unwrap(), &mut v).unwrap();
            (t.name.clone(), v)
        })
        .collect()
}

fn st_f32(set: &SafetensorsSet, name: &str) -> Vec<f32> {
    let t = set.tensor(name).unwrap_or_else(|| panic!("no tensor {name}"));
    let ty = llmtool_formats::safetensors::ggml_type(t.dtype).unwrap();
    let mut v = vec![0f32; t.shape.iter().product::<u64>() as usize];
    llmtool_kernels::dequant::dequantize(ty, set.tensor_data(name).unwrap(), &mut v).unwrap();
    v
}

/// max |a − b| / max(1, |b|) ≤ tol.
fn assert_close(what: &str, ours: &[f32], judge: &[f32], tol: f32) {
    assert_eq!(ours.len(), judge.len(), "{what}: length");
    let (err, i) = ours
        .iter()
        .zip(judge)
        .enumerate()
        .map(|(i, (a, b))| ((a - b).abs() / b.abs().max(1.0), i))
        .fold((0f32, 0), |m, x| if x.0 > m.0 { x } else { m });
    assert!(err <= tol, "{what}: element {i} is {} vs judge {} (err {err})", ours[i], judge[i]);
}

fn config(adapter: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

/// At rank 8 (the largest delta rank of a linear module), with the embedding, the head and
/// the norms saved at full rank (mergekit's default), base + adapter is the tuned model.
#[test]
fn round_trip_peft_default_modules() {
    let adapter = tmp("rt-peft");
    extract(&base(), &tuned(), &adapter, &["--rank", "8"]);
    let cfg = config(&adapter);
    assert_eq!(cfg["r"], 8);
    assert_eq!(cfg["lora_alpha"], 8);
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(
        strings(&cfg["target_modules"]),
        ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    );
    // only the modules that changed (layer 1's input_layernorm, layer 0's post-attention
    // norm did not), by full path
    assert_eq!(
        strings(&cfg["modules_to_save"]),
        [
            "lm_head",
            "model.embed_tokens",
            "model.layers.0.input_layernorm",
            "model.layers.1.post_attention_layernorm",
            "model.norm"
        ]
    );
    let st = SafetensorsSet::open_file(&adapter.join("adapter_model.safetensors")).unwrap();
    let a = st.tensor("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight").unwrap();
    assert_eq!(a.shape, [8, 128]);
    let b = st.tensor("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").unwrap();
    assert_eq!(b.shape, [64, 8]);

    let merged = tmp("rt-peft-merged");
    merge(&base(), &adapter, &merged, &[]);
    let (got, want) = (tensors(&merged), tensors(&tuned()));
    assert_eq!(got.len(), want.len());
    for (name, w) in &want {
        assert_close(&format!("round trip {name}"), &got[name], w, 1e-5);
    }
    std::fs::remove_dir_all(&adapter).unwrap();
    std::fs::remove_dir_all(&merged).unwrap();
}

const LINEAR_AND_EMBED: &str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj,embed_tokens";

/// GGUF inputs (Q/K rows permuted as llama.cpp stores them): a GGUF LoRA merged into the GGUF
/// base, and a PEFT adapter (B's rows back in HF order) merged into the HF base, both give
/// the tuned tensors; what was not selected stays the base's.
#[test]
fn round_trip_gguf_inputs_both_adapter_formats() {
    let (base_g, tuned_g) = (tmp("rt-base.gguf"), tmp("rt-tuned.gguf"));
    llmtool_ok(&["convert", s(&base()), s(&base_g), "-q"]);
    llmtool_ok(&["convert", s(&tuned()), s(&tuned_g), "-q"]);
    let want = tensors(&tuned_g);
    let base_t = tensors(&base_g);
    let selected = |n: &str| n.starts_with("blk.") && !n.contains("norm") || n == "token_embd.weight";

    let lora_g = tmp("rt-lora.gguf");
    extract(&base_g, &tuned_g, &lora_g, &["--rank", "8", "--embed-lora", "--modules", LINEAR_AND_EMBED]);
    let merged_g = tmp("rt-merged.gguf");
    merge(&base_g, &lora_g, &merged_g, &[]);
    let got = tensors(&merged_g);
    for (name, w) in &want {
        let judge = if selected(name) { w } else { &base_t[name] };
        assert_close(&format!("gguf adapter {name}"), &got[name], judge, 1e-5);
    }

    let peft = tmp("rt-peft-from-gguf");
    extract(&base_g, &tuned_g, &peft, &["--rank", "8", "--embed-lora", "--modules", LINEAR_AND_EMBED]);
    let st = SafetensorsSet::open_file(&peft.join("adapter_model.safetensors")).unwrap();
    assert_eq!(st.tensor("base_model.model.model.embed_tokens.lora_embedding_A").unwrap().shape, [8, 379]);
    assert_eq!(st.tensor("base_model.model.model.embed_tokens.lora_embedding_B").unwrap().shape, [64, 8]);
    let merged_h = tmp("rt-merged-hf");
    merge(&base(), &peft, &merged_h, &[]);
    let got = tensors(&merged_h);
    for (name, w) in &want {
        let judge = if selected(name) { w } else { &base_t[name] };
        assert_close(&format!("peft adapter from gguf {name}"), &got[name], judge, 1e-5);
    }
    for p in [&base_g, &tuned_g, &lora_g, &merged_g] {
        std::fs::remove_file(p).unwrap();
    }
    std::fs::remove_dir_all(&peft).unwrap();
    std::fs::remove_dir_all(&merged_h).unwrap();
}

fn check_ey(report: &Value, expect: usize, what: &str) {
    assert_eq!(report["missing"].as_array().unwrap().len(), 0, "{what}: modules missing: {report}");
    let modules = report["modules"].as_object().unwrap();
    assert_eq!(modules.len(), expect, "{what}: {report}");
    for (name, m) in modules {
        let err = m["err"].as_f64().unwrap();
        assert!(err <= 1e-6, "{what} {name}: {err} from the best rank-{} approximation", m["k"]);
    }
}

/// Below the deltas' ranks each module's delta is the best rank-k approximation (numpy's SVD).
#[test]
fn best_rank_k_approximation_hf_inputs() {
    let adapter = tmp("ey-peft");
    extract(&base(), &tuned(), &adapter, &["--rank", "2", "--embed-lora"]);
    let report = judge("lora_extract_ey.py", &[&base(), &tuned(), &adapter, Path::new("2")]);
    // 14 linear modules, the embedding and the head
    check_ey(&report, 16, "HF rank 2");
    std::fs::remove_dir_all(&adapter).unwrap();
}

/// The same on Q8_0 GGUF inputs, dequantized by llmtool for the extraction and by gguf-py
/// for the judge; the adapter a GGUF LoRA (GGUF layout).
#[test]
fn best_rank_k_approximation_quantized_gguf_inputs() {
    let (base_q, tuned_q) = (tmp("ey-base-q8.gguf"), tmp("ey-tuned-q8.gguf"));
    llmtool_ok(&["quantize", s(&base()), s(&base_q), "--type", "Q8_0", "-q"]);
    llmtool_ok(&["quantize", s(&tuned()), s(&tuned_q), "--type", "Q8_0", "-q"]);
    let lora = tmp("ey-lora.gguf");
    extract(&base_q, &tuned_q, &lora, &["--rank", "3", "--embed-lora", "--skip-undecomposable"]);
    let report = judge("lora_extract_ey.py", &[&base_q, &tuned_q, &lora, Path::new("3")]);
    check_ey(&report, 16, "Q8_0 rank 3");
    for p in [&base_q, &tuned_q, &lora] {
        std::fs::remove_file(p).unwrap();
    }
}

/// PEFT loads the adapters we extract (the generator checked that it takes every key and
/// misses none) and merges them into what `lora merge` gives.
#[test]
fn peft_merge_and_unload_equals_lora_merge() {
    for case in ["peft_saved_r3", "peft_embed_r40"] {
        let dir = root().join("fixtures/lora/extract").join(case);
        let cj: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
        let args: Vec<&str> = cj["args"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let adapter = tmp(&format!("{case}-adapter"));
        extract(&base(), &tuned(), &adapter, &args);
        let mut cfg = config(&adapter);
        let mut judge_cfg = cj["adapter_config"].clone();
        for c in [&mut cfg, &mut judge_cfg] {
            c.as_object_mut().unwrap().remove("base_model_name_or_path");
        }
        assert_eq!(cfg, judge_cfg, "{case}: adapter_config.json differs from the one PEFT loaded");
        let merged = tmp(&format!("{case}-merged"));
        merge(&base(), &adapter, &merged, &[]);
        let ours = SafetensorsSet::open_file(&merged.join("model.safetensors")).unwrap();
        let peft = SafetensorsSet::open_file(&dir.join("peft_merged.safetensors")).unwrap();
        let base_st = SafetensorsSet::open_file(&base().join("model.safetensors")).unwrap();
        let changed = strings(&cj["changed"]);
        assert!(!changed.is_empty());
        for t in base_st.tensors() {
            let name = t.name.as_str();
            if changed.iter().any(|c| c == name) {
                assert_close(&format!("{case} {name}"), &st_f32(&ours, name), &st_f32(&peft, name), 1e-5);
            } else {
                assert_eq!(st_f32(&ours, name), st_f32(&base_st, name), "{case}: {name} should be the base's");
            }
        }
        std::fs::remove_dir_all(&adapter).unwrap();
        std::fs::remove_dir_all(&merged).unwrap();
    }
}

/// `scaling · B·A` per module of a PEFT adapter (HF tensor name → row-major delta).
fn peft_products(adapter: &Path) -> HashMap<String, Vec<f32>> {
    let a = llmtool::passes::lora::PeftAdapter::open(adapter).unwrap();
    a.modules
        .iter()
        .map(|m| {
            let mut d = vec![0f32; m.n_out * m.n_in];
            for o in 0..m.n_out {
                for k in 0..m.r {
                    let b = m.b[o * m.r + k] * m.scaling as f32;
                    for i in 0..m.n_in {
                        d[o * m.n_in + i] += b * m.a[k * m.n_in + i];
                    }
                }
            }
            (format!("{}.weight", m.module), d)
        })
        .collect()
}

/// mergekit 0.1.5's extractor, same inputs, --max-rank 3 (fixtures/lora/extract/mergekit_r3):
/// the same products B·A per module (the factors are unique only up to sign), the same
/// full-rank tensors where both save one, the same r / alpha / target modules.
#[test]
fn same_products_as_mergekit_extract_lora() {
    let mk = root().join("fixtures/lora/extract/mergekit_r3");
    let ours = tmp("mk-ours");
    extract(&base(), &tuned(), &ours, &["--rank", "3"]);
    let (oc, mc) = (config(&ours), config(&mk));
    for key in ["r", "lora_alpha", "peft_type", "task_type", "use_rslora"] {
        assert_eq!(oc[key], mc[key], "{key}");
    }
    assert_eq!(strings(&oc["target_modules"]), strings(&mc["target_modules"]));
    let (po, pm) = (peft_products(&ours), peft_products(&mk));
    assert_eq!(po.len(), 14);
    assert_eq!(pm.len(), 14);
    for (name, m) in &pm {
        let o = po.get(name).unwrap_or_else(|| panic!("{name}: not in our adapter"));
        let scale = m.iter().fold(0f32, |a, x| a.max(x.abs()));
        let err = o.iter().zip(m).fold(0f32, |a, (x, y)| a.max((x - y).abs())) / scale;
        assert!(err <= 1e-5, "{name}: B·A differs from mergekit's by {err} of its largest element");
    }
    // Saved at full rank: ours are the changed ones of mergekit's (which saves every one).
    let os = llmtool::passes::lora::PeftAdapter::open(&ours).unwrap().full;
    let ms = llmtool::passes::lora::PeftAdapter::open(&mk).unwrap().full;
    assert_eq!(os.len(), 5);
    assert_eq!(ms.len(), 7);
    let base_st = SafetensorsSet::open_file(&base().join("model.safetensors")).unwrap();
    for m in &ms {
        match os.iter().find(|o| o.name == m.name) {
            Some(o) => assert_eq!(o.data, m.data, "{}", m.name),
            None => assert_eq!(m.data, st_f32(&base_st, &m.name), "{}: unchanged, so left out", m.name),
        }
    }
    std::fs::remove_dir_all(&ours).unwrap();
}

fn extract_err(base: &Path, tuned: &Path, extra: &[&str]) -> String {
    let out = tmp("err-out");
    let mut args = vec!["lora", "extract", "--base", s(base), "--tuned", s(tuned)];
    args.extend(extra);
    args.extend([s(&out), "-q"]);
    let r = llmtool(&args);
    assert!(!r.status.success(), "{args:?} should fail");
    assert!(!out.exists(), "{args:?}: output written despite the error");
    String::from_utf8_lossy(&r.stderr).into_owned()
}

/// The llama fixture with the vocabulary cut to 300 rows (config and tensors): same
/// architecture, other shapes.
fn llama_small_vocab() -> PathBuf {
    let dir = tmp("small-vocab");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(base().join("config.json")).unwrap()).unwrap();
    cfg["vocab_size"] = 300.into();
    std::fs::write(dir.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let bytes = std::fs::read(base().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let mut shape = view.shape().to_vec();
        let mut data = view.data().to_vec();
        if shape[0] == 379 {
            shape[0] = 300;
            data.truncate(300 * shape[1] * 4);
        }
        owned.push((name, shape, data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, sh, d)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, sh.clone(), d).unwrap())
        })
        .collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    dir
}

#[test]
fn errors_are_clear_and_write_nothing() {
    let e = extract_err(&base(), &root().join("fixtures/models/qwen2"), &["--rank", "4"]);
    assert!(e.contains("'llama'") && e.contains("'qwen2'"), "{e}");
    let small = llama_small_vocab();
    let e = extract_err(&base(), &small, &["--rank", "4"]);
    assert!(e.contains("has shape [379, 64] in the base and [300, 64] in the tuned model"), "{e}");
    std::fs::remove_dir_all(&small).unwrap();
    let e = extract_err(&base(), &tuned(), &["--rank", "0"]);
    assert!(e.contains("--rank 0"), "{e}");
    // min(rows, cols) is at most 64 here (q_proj 64×64, gate_proj 128×64 …)
    let e = extract_err(&base(), &tuned(), &["--rank", "65"]);
    assert!(e.contains("--rank 65") && e.contains("= 64"), "{e}");
    let e = extract_err(&base(), &tuned(), &["--rank", "4", "--modules", "q_proj,qproj"]);
    assert!(e.contains("'qproj'") && e.contains("q_proj"), "{e}");
    let e = extract_err(&base(), &base(), &["--rank", "4"]);
    assert!(e.contains("nothing to extract"), "{e}");
}

/// `--no-distribute-scale` (mergekit's option): the same products, S on A, so B = U has
/// orthonormal columns; `--sv-epsilon` keeps only singular values above it (q_proj deltas:
/// layer 0 1.53, 1.32, 1.02, 0.90 → 2 above 1.1; layer 1 1.47, 1.31, 1.16, 0.91 → 3), the
/// smaller rank recorded in rank_pattern / alpha_pattern.
#[test]
fn scale_placement_and_sv_epsilon() {
    let (dist, s_on_a) = (tmp("dist"), tmp("s-on-a"));
    extract(&base(), &tuned(), &dist, &["--rank", "3", "--modules", "q_proj,down_proj"]);
    extract(&base(), &tuned(), &s_on_a, &["--rank", "3", "--modules", "q_proj,down_proj", "--no-distribute-scale"]);
    let (pd, ps) = (peft_products(&dist), peft_products(&s_on_a));
    assert_eq!(pd.len(), 4);
    for (name, d) in &pd {
        assert_close(&format!("S placement {name}"), &ps[name], d, 1e-6);
    }
    let a = llmtool::passes::lora::PeftAdapter::open(&s_on_a).unwrap();
    for m in &a.modules {
        for (j, k) in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2)] {
            let dot: f32 = (0..m.n_out).map(|o| m.b[o * m.r + j] * m.b[o * m.r + k]).sum();
            let want = if j == k { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-5, "{}: BᵀB[{j}][{k}] = {dot}", m.module);
        }
    }
    let eps = tmp("eps");
    extract(&base(), &tuned(), &eps, &["--rank", "8", "--modules", "q_proj", "--sv-epsilon", "1.1"]);
    let cfg = config(&eps);
    assert_eq!(cfg["r"], 3, "{cfg}");
    assert_eq!(cfg["rank_pattern"], serde_json::json!({"model.layers.0.self_attn.q_proj": 2}), "{cfg}");
    assert_eq!(cfg["alpha_pattern"], cfg["rank_pattern"], "{cfg}");
    for p in [&dist, &s_on_a, &eps] {
        std::fs::remove_dir_all(p).unwrap();
    }
}

/// `--eval-text --json`: at full rank base + adapter is the tuned model (KLD from it ~0, all
/// of the fine-tune kept), while the base is measurably away from it.
#[test]
fn eval_text_reports_the_share_kept() {
    let dir = tmp("eval");
    std::fs::create_dir_all(&dir).unwrap();
    // The first lines of WikiText-2, two 128-token windows (the fixture's context is 256).
    let full = std::fs::read_to_string(common::wiki_text()).unwrap();
    let text = dir.join("wiki-head.txt");
    std::fs::write(&text, full.lines().take(200).collect::<Vec<_>>().join("\n")).unwrap();
    let adapter = dir.join("adapter");
    let o = llmtool_ok(&[
        "lora",
        "extract",
        "--base",
        s(&base()),
        "--tuned",
        s(&tuned()),
        "--rank",
        "8",
        s(&adapter),
        "--eval-text",
        s(&text),
        "--eval-chunks",
        "2",
        "--eval-ctx",
        "128",
        "--json",
        "-q",
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).expect("--json prints one JSON object");
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(r["n_chunks"], 2);
    assert!(f("ppl_base").is_finite() && f("ppl_tuned").is_finite(), "{r}");
    assert!((f("ppl_base_plus_adapter") / f("ppl_tuned") - 1.0).abs() < 1e-4, "{r}");
    assert!(r["kld_tuned_base"]["kld_mean"].as_f64().unwrap() > 1e-3, "{r}");
    assert!(r["kld_tuned_adapter"]["kld_mean"].as_f64().unwrap() < 1e-6, "{r}");
    assert!(f("kept") > 0.999, "{r}");
    std::fs::remove_dir_all(&dir).unwrap();
}
