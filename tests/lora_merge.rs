//! `llmtool lora merge` against independent judges: PEFT's `merge_and_unload()` (fixtures
//! written by fixtures/lora/gen_lora_fixtures.py) and llama.cpp's `llama-export-lora` (its
//! merged tensors committed by the same script).
//!
//! Tolerance: |ours − judge| ≤ 1e-6 · max(1, |judge|) — absolute for values below 1, relative
//! above (the fixtures' weights are O(0.1–1); f32 sums of r products in another order).

mod common;

use std::path::{Path, PathBuf};

use common::{llmtool, llmtool_ok, root};
use llmtool::arch::apply_fix;
use llmtool::model::Model;
use llmtool_formats::safetensors::SafetensorsSet;
use llmtool_formats::GgmlType;
use serde_json::Value;

const TOL: f32 = 1e-6;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llmtool-lora-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(&d);
    d
}

fn case_dir(case: &str) -> PathBuf {
    root().join("fixtures/lora").join(case)
}

fn case_json(case: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(case_dir(case).join("case.json")).unwrap()).unwrap()
}

/// `lora merge` arguments of a case: --base and each adapter with its scale.
fn case_args(case: &str, base_override: Option<&Path>) -> Vec<String> {
    let cj = case_json(case);
    let base = base_override.map_or_else(|| root().join(cj["base"].as_str().unwrap()), Path::to_path_buf);
    let mut args = vec!["lora".into(), "merge".into(), "--base".into(), base.display().to_string()];
    for a in cj["adapters"].as_array().unwrap() {
        args.push("--adapter".into());
        args.push(case_dir(case).join(a["adapter"].as_str().unwrap()).display().to_string());
        args.push("--scale".into());
        args.push(a["scale"].as_f64().unwrap().to_string());
    }
    args
}

fn run_merge(mut args: Vec<String>, out: &Path, extra: &[&str]) {
    args.push(out.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("-q".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    llmtool_ok(&refs);
}

fn f32s(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    llmtool_kernels::dequant::dequantize(ty, bytes, &mut out).unwrap();
    out
}

fn st_f32(set: &SafetensorsSet, name: &str) -> Vec<f32> {
    let t = set.tensor(name).unwrap_or_else(|| panic!("no tensor {name}"));
    let ty = llmtool_formats::safetensors::ggml_type(t.dtype).unwrap();
    let n = t.shape.iter().product::<u64>() as usize;
    f32s(ty, set.tensor_data(name).unwrap(), n)
}

fn assert_close(what: &str, ours: &[f32], judge: &[f32], tol: f32) {
    assert_eq!(ours.len(), judge.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    for (i, (a, b)) in ours.iter().zip(judge).enumerate() {
        let e = (a - b).abs() / b.abs().max(1.0);
        if e > worst.0 {
            worst = (e, i);
        }
    }
    assert!(
        worst.0 <= tol,
        "{what}: element {} is {} vs judge {} (err {})",
        worst.1,
        ours[worst.1],
        judge[worst.1],
        worst.0
    );
}

/// HF output: changed tensors equal PEFT's, every other tensor is the base's, byte for byte.
fn check_hf_case(case: &str) {
    let out = tmp(&format!("{case}-hf"));
    run_merge(case_args(case, None), &out, &[]);
    let cj = case_json(case);
    let base_dir = root().join(cj["base"].as_str().unwrap());
    let base = SafetensorsSet::open_file(&base_dir.join("model.safetensors")).unwrap();
    let ours = SafetensorsSet::open_file(&out.join("model.safetensors")).unwrap();
    let expected = SafetensorsSet::open_file(&case_dir(case).join("expected.safetensors")).unwrap();
    let changed: Vec<&str> = cj["changed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(!changed.is_empty());
    for t in base.tensors() {
        let name = t.name.as_str();
        if changed.contains(&name) {
            assert_close(&format!("{case} {name}"), &st_f32(&ours, name), &st_f32(&expected, name), TOL);
        } else {
            assert_eq!(ours.tensor_data(name), base.tensor_data(name), "{case}: untouched {name} changed");
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// GGUF output: PEFT's tensors mapped to GGUF names/layouts by the architecture registry.
fn check_gguf_case(case: &str) {
    let out = tmp(&format!("{case}.gguf"));
    run_merge(case_args(case, None), &out, &[]);
    let cj = case_json(case);
    let base_dir = root().join(cj["base"].as_str().unwrap());
    let base = Model::open(&base_dir).unwrap();
    let config = &base.hf.as_ref().unwrap().files.config;
    let ours = Model::open(&out).unwrap();
    let expected = SafetensorsSet::open_file(&case_dir(case).join("expected.safetensors")).unwrap();
    let mut mapped = std::collections::HashMap::new();
    for t in expected.tensors() {
        let m = base.arch.hf_to_gguf_tensor(&t.name, config).unwrap().unwrap();
        let info = llmtool_formats::TensorInfo::from_shape(&m.name, GgmlType::F32, &t.shape);
        let (_, bytes) = apply_fix(&m.fix, &info, expected.tensor_data(&t.name).unwrap()).unwrap();
        mapped.insert(m.name, f32s(GgmlType::F32, &bytes, info.n_elements().unwrap() as usize));
    }
    for info in base.tensors.tensor_infos() {
        let got = ours.tensors.tensor_bytes(&info.name).unwrap();
        let o = ours.tensors.tensor_info(&info.name).unwrap();
        assert_eq!(o.ty, info.ty, "{case}: {} type", info.name);
        match mapped.get(&info.name) {
            Some(judge) => assert_close(&format!("{case} {}", info.name), &f32s(o.ty, &got, judge.len()), judge, TOL),
            None => {
                assert_eq!(&*got, &*base.tensors.tensor_bytes(&info.name).unwrap(), "{case}: untouched {}", info.name)
            }
        }
    }
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn peft_plain_llama_hf_and_gguf() {
    check_hf_case("llama_plain");
    check_gguf_case("llama_plain");
}

#[test]
fn peft_rslora_rank_and_alpha_patterns() {
    check_hf_case("llama_rslora_patterns");
    check_gguf_case("llama_rslora_patterns");
}

#[test]
fn peft_embedding_lora_and_modules_to_save() {
    check_hf_case("llama_embed_mts");
    check_gguf_case("llama_embed_mts");
}

#[test]
fn peft_dora() {
    check_hf_case("llama_dora");
    check_gguf_case("llama_dora");
}

#[test]
fn peft_two_adapters_with_scales() {
    check_hf_case("llama_two_scaled");
    check_gguf_case("llama_two_scaled");
}

#[test]
fn peft_lora_qwen3_and_gemma3() {
    for case in ["qwen3_all", "gemma3_all"] {
        check_hf_case(case);
        check_gguf_case(case);
    }
}

#[test]
fn peft_lora_bias_qwen2() {
    check_hf_case("qwen2_bias");
    check_gguf_case("qwen2_bias");
}

/// Command R (with q/k norms) and Command R7B: every Llama-named module, mapped without a
/// Q/K permutation.
#[test]
fn peft_command_r_and_cohere2_all_modules() {
    for case in ["command_r_all", "cohere2_all"] {
        check_hf_case(case);
        check_gguf_case(case);
    }
}

#[test]
fn peft_phi3_fused_qkv_gate_up() {
    check_hf_case("phi3_fused");
    check_gguf_case("phi3_fused");
}

/// The F32 GGUF base made by llmtool convert from the llama fixture.
fn llama_f32_gguf(name: &str) -> PathBuf {
    let p = tmp(name);
    llmtool_ok(&["convert", root().join("fixtures/models/llama").to_str().unwrap(), p.to_str().unwrap(), "-q"]);
    p
}

/// A llama.cpp GGUF LoRA merged like llama-export-lora (scale 1 and 0.5), and like PEFT.
#[test]
fn gguf_adapter_matches_llama_export_lora() {
    let base = llama_f32_gguf("export-base.gguf");
    let adapter = case_dir("llama_plain").join("adapter.gguf");
    for (scale, judge_file) in [("1", "export_lora.safetensors"), ("0.5", "export_lora_s05.safetensors")] {
        let out = tmp(&format!("export-{scale}.gguf"));
        llmtool_ok(&[
            "lora",
            "merge",
            "--base",
            base.to_str().unwrap(),
            "--adapter",
            adapter.to_str().unwrap(),
            "--scale",
            scale,
            out.to_str().unwrap(),
            "-q",
        ]);
        let ours = Model::open(&out).unwrap();
        let judge = SafetensorsSet::open_file(&case_dir("llama_plain").join(judge_file)).unwrap();
        assert_eq!(judge.tensors().len(), 14);
        for t in judge.tensors() {
            let info = ours.tensors.tensor_info(&t.name).unwrap().clone();
            let got = f32s(info.ty, &ours.tensors.tensor_bytes(&t.name).unwrap(), info.n_elements().unwrap() as usize);
            assert_close(&format!("export-lora x{scale} {}", t.name), &got, &st_f32(&judge, &t.name), TOL);
        }
        std::fs::remove_file(&out).unwrap();
    }
    // The same adapter in PEFT form gives the same model (PEFT's judge, through the map).
    let out = tmp("export-vs-peft.gguf");
    llmtool_ok(&[
        "lora",
        "merge",
        "--base",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        out.to_str().unwrap(),
        "-q",
    ]);
    let out2 = tmp("peft-on-gguf.gguf");
    run_merge(case_args("llama_plain", Some(&base)), &out2, &[]);
    let (a, b) = (Model::open(&out).unwrap(), Model::open(&out2).unwrap());
    for info in a.tensors.tensor_infos() {
        let n = info.n_elements().unwrap() as usize;
        let x = f32s(info.ty, &a.tensors.tensor_bytes(&info.name).unwrap(), n);
        let y = f32s(info.ty, &b.tensors.tensor_bytes(&info.name).unwrap(), n);
        assert_close(&format!("gguf vs peft adapter {}", info.name), &x, &y, TOL);
    }
    for p in [&base, &out, &out2] {
        std::fs::remove_file(p).unwrap();
    }
}

/// A Q8_0 base: touched tensors stay Q8_0 and hold PEFT's values to within two quantization
/// steps (the base's own rounding plus the re-quantization); untouched tensors byte-identical.
#[test]
fn quantized_base_keeps_types() {
    let f32_base = llama_f32_gguf("q-base-f32.gguf");
    let q = tmp("q-base-q8.gguf");
    llmtool_ok(&["quantize", f32_base.to_str().unwrap(), q.to_str().unwrap(), "--type", "Q8_0", "--pure", "-q"]);
    let out = tmp("q-merged.gguf");
    run_merge(case_args("llama_plain", Some(&q)), &out, &[]);
    let base = Model::open(&q).unwrap();
    let ours = Model::open(&out).unwrap();
    let hf = Model::open(&root().join("fixtures/models/llama")).unwrap();
    let config = &hf.hf.as_ref().unwrap().files.config;
    let expected = SafetensorsSet::open_file(&case_dir("llama_plain").join("expected.safetensors")).unwrap();
    let mut touched = 0;
    for t in expected.tensors() {
        let m = hf.arch.hf_to_gguf_tensor(&t.name, config).unwrap().unwrap();
        let info = llmtool_formats::TensorInfo::from_shape(&m.name, GgmlType::F32, &t.shape);
        let (_, bytes) = apply_fix(&m.fix, &info, expected.tensor_data(&t.name).unwrap()).unwrap();
        let n = info.n_elements().unwrap() as usize;
        let judge = f32s(GgmlType::F32, &bytes, n);
        let o = ours.tensors.tensor_info(&m.name).unwrap();
        assert_eq!(o.ty, GgmlType::Q8_0, "{}", m.name);
        assert_ne!(&*ours.tensors.tensor_bytes(&m.name).unwrap(), &*base.tensors.tensor_bytes(&m.name).unwrap());
        let got = f32s(o.ty, &ours.tensors.tensor_bytes(&m.name).unwrap(), n);
        let amax = judge.iter().fold(0f32, |a, x| a.max(x.abs()));
        let worst = got.iter().zip(&judge).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 2.0 * amax / 127.0, "{}: max error {worst} vs amax {amax}", m.name);
        touched += 1;
    }
    assert_eq!(touched, 14);
    for info in base.tensors.tensor_infos() {
        assert_eq!(ours.tensors.tensor_info(&info.name).unwrap().ty, info.ty);
        if !expected
            .tensors()
            .iter()
            .any(|t| hf.arch.hf_to_gguf_tensor(&t.name, config).unwrap().unwrap().name == info.name)
        {
            assert_eq!(
                &*ours.tensors.tensor_bytes(&info.name).unwrap(),
                &*base.tensors.tensor_bytes(&info.name).unwrap()
            );
        }
    }
    // DoRA needs exact base weights: refused on a quantized base, naming the tensor.
    let bad = tmp("q-dora.gguf");
    let mut args = case_args("llama_dora", Some(&q));
    args.push(bad.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = llmtool(&refs);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("DoRA") && err.contains("Q8_0") && err.contains("blk."), "{err}");
    assert!(!bad.exists());
    for p in [&f32_base, &q, &out] {
        std::fs::remove_file(p).unwrap();
    }
}

/// A Q8_0 base merged to a float output (HF dir; GGUF with `--outtype f32`): the touched
/// tensors are PEFT's `merge_and_unload` of the *dequantized* base — deq(W) + ΔW with PEFT's
/// ΔW (expected − base, both f32) — not a re-quantization, whose error is a quantization step.
#[test]
fn quantized_base_float_output_is_exact() {
    let f32_base = llama_f32_gguf("qf-base-f32.gguf");
    let q = tmp("qf-base-q8.gguf");
    llmtool_ok(&["quantize", f32_base.to_str().unwrap(), q.to_str().unwrap(), "--type", "Q8_0", "--pure", "-q"]);
    // The dequantized base in HF layout (the judge's W).
    let deq_dir = tmp("qf-deq");
    llmtool_ok(&["convert", "--quiet", q.to_str().unwrap(), deq_dir.to_str().unwrap(), "--outtype", "f32"]);
    let deq = SafetensorsSet::open_file(&deq_dir.join("model.safetensors")).unwrap();
    let base = SafetensorsSet::open_file(&root().join("fixtures/models/llama/model.safetensors")).unwrap();
    let expected = SafetensorsSet::open_file(&case_dir("llama_plain").join("expected.safetensors")).unwrap();
    let changed: Vec<String> =
        case_json("llama_plain")["changed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    let hf_out = tmp("qf-merged-hf");
    run_merge(case_args("llama_plain", Some(&q)), &hf_out, &[]);
    let gguf_out = tmp("qf-merged-f32.gguf");
    run_merge(case_args("llama_plain", Some(&q)), &gguf_out, &["--outtype", "f32"]);
    let gguf_as_hf = tmp("qf-merged-gguf-hf");
    llmtool_ok(&["convert", "--quiet", gguf_out.to_str().unwrap(), gguf_as_hf.to_str().unwrap()]);
    for out in [&hf_out, &gguf_as_hf] {
        let ours = SafetensorsSet::open_file(&out.join("model.safetensors")).unwrap();
        for t in deq.tensors() {
            let name = t.name.as_str();
            let got = st_f32(&ours, name);
            let w = st_f32(&deq, name);
            if changed.iter().any(|c| c == name) {
                let judge: Vec<f32> = st_f32(&expected, name)
                    .iter()
                    .zip(st_f32(&base, name))
                    .zip(&w)
                    .map(|((e, b), wq)| wq + (e - b))
                    .collect();
                // f32 rounding of ΔW taken as a difference of two f32 values: a few 1e-7.
                assert_close(&format!("{} {name}", out.display()), &got, &judge, 1e-6);
                assert_ne!(got, w, "{name}: untouched");
            } else {
                assert_eq!(got, w, "{}: untouched {name} differs from the dequantized base", out.display());
            }
        }
    }
    for p in [&f32_base, &q, &gguf_out] {
        std::fs::remove_file(p).unwrap();
    }
    for d in [&hf_out, &gguf_as_hf, &deq_dir] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Copies an adapter dir with its config edited, and returns the merge's stderr (it must fail).
fn bad_adapter(case: &str, base_arch: &str, edit: impl Fn(&mut Value)) -> String {
    let dir = tmp(&format!("bad-{case}"));
    std::fs::create_dir_all(&dir).unwrap();
    let src = case_dir(case).join("adapter");
    std::fs::copy(src.join("adapter_model.safetensors"), dir.join("adapter_model.safetensors")).unwrap();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("adapter_config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).unwrap();
    let out = tmp("bad-out");
    let base = root().join("fixtures/models").join(base_arch);
    let o = llmtool(&[
        "lora",
        "merge",
        "--base",
        base.to_str().unwrap(),
        "--adapter",
        dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(!out.exists(), "a failed merge left an output");
    std::fs::remove_dir_all(&dir).unwrap();
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_adapters_are_refused_clearly() {
    let e = bad_adapter("llama_plain", "llama", |c| c["r"] = 8.into());
    assert!(e.contains("adapter_model.safetensors") && e.contains("rank mismatch") && e.contains("r = 8"), "{e}");
    let e = bad_adapter("llama_plain", "llama", |c| c["use_qalora"] = true.into());
    assert!(e.contains("adapter_config.json") && e.contains("use_qalora"), "{e}");
    let e = bad_adapter("llama_plain", "llama", |c| c["some_future_switch"] = 3.into());
    assert!(e.contains("some_future_switch"), "{e}");
    let e = bad_adapter("llama_plain", "llama", |c| c["fan_in_fan_out"] = true.into());
    assert!(e.contains("fan_in_fan_out") && e.contains("Conv1D"), "{e}");
    // phi3's fused qkv_proj does not exist in a llama base
    let e = bad_adapter("phi3_fused", "llama", |_| {});
    assert!(e.contains("adapter_model.safetensors") && (e.contains("qkv_proj") || e.contains("gate_up_proj")), "{e}");
    // lora_bias needs a base bias: the llama base has none
    let e = bad_adapter("qwen2_bias", "llama", |_| {});
    assert!(e.contains("_proj.bias") && e.contains(".bias', which is not in the base"), "{e}");
    // an adapter for other shapes (SmolLM2's GGUF LoRA on the tiny llama)
    let base = llama_f32_gguf("bad-shape-base.gguf");
    let out = tmp("bad-shape.gguf");
    let adapter = root().join("fixtures/lora/smollm2-r2/adapter.gguf");
    let o = llmtool(&[
        "lora",
        "merge",
        "--base",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("adapter.gguf") && e.contains("shape mismatch") && e.contains("576"),
        "{e}"
    );
    std::fs::remove_file(&base).unwrap();
    // scales must pair with adapters
    let o = llmtool(&[
        "lora",
        "merge",
        "--base",
        "x",
        "--adapter",
        "a",
        "--adapter",
        "b",
        "--scale",
        "1",
        "/tmp/never.gguf",
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("one scale per adapter"));
}

/// The SmolLM2 adapter on the real Q4_1 model with --eval-text: JSON report, finite PPLs.
#[test]
fn smollm2_adapter_on_real_model_with_eval() {
    let model = common::real_model();
    let text = common::wiki_text();
    let out = tmp("smollm2-lora.gguf");
    let o = llmtool_ok(&[
        "lora",
        "merge",
        "--base",
        model.to_str().unwrap(),
        "--adapter",
        root().join("fixtures/lora/smollm2-r2").to_str().unwrap(),
        out.to_str().unwrap(),
        "--eval-text",
        text.to_str().unwrap(),
        "--eval-chunks",
        "2",
        "--eval-ctx",
        "128",
        "--json",
        "-q",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("--json prints one JSON object");
    let base_ppl = v["inputs"][0]["ppl"].as_f64().unwrap();
    let ppl = v["result"]["ppl"].as_f64().unwrap();
    assert!(base_ppl.is_finite() && ppl.is_finite() && ppl > 1.0, "{v}");
    assert!(ppl != base_ppl, "the adapter changed nothing: {v}");
    assert!((ppl / base_ppl - 1.0).abs() < 0.5, "the adapter changed perplexity wildly: {v}");
    // The same adapter as a GGUF LoRA (Q rows permuted by the generator for 9 heads) gives
    // the very same file: the HF → GGUF map and the GGUF reader agree.
    let out2 = tmp("smollm2-lora-gguf-adapter.gguf");
    llmtool_ok(&[
        "lora",
        "merge",
        "--base",
        model.to_str().unwrap(),
        "--adapter",
        root().join("fixtures/lora/smollm2-r2/adapter.gguf").to_str().unwrap(),
        out2.to_str().unwrap(),
        "-q",
    ]);
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&out2).unwrap(), "PEFT and GGUF adapters differ");
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&out2).unwrap();
}

/// Separate q/k/v and gate/up LoRAs on Phi-3 land on the row ranges of the fused tensors:
/// judged by PEFT's merge of the equivalent fused adapter.
#[test]
fn peft_phi3_split_parts_onto_fused() {
    check_hf_case("phi3_split");
    check_gguf_case("phi3_split");
}

/// Rope factor tensors (llama3 `rope_freqs.weight`) pass through a LoRA merge unchanged —
/// from an HF base (computed from config.json) and from llama.cpp's GGUF — and an HF output
/// gets them back as config.json's rope_scaling. The llama fixture's adapter fits llama31
/// (same shapes).
#[test]
fn rope_factor_tensors_pass_through_unchanged() {
    let reference = root().join("fixtures/llama_cpp/llama31.gguf");
    let want = Model::open(&reference).unwrap().tensors.tensor_bytes("rope_freqs.weight").unwrap().into_owned();
    for (what, base) in [("HF", root().join("fixtures/models/llama31")), ("GGUF", reference.clone())] {
        let out = tmp(&format!("rope-{what}.gguf"));
        run_merge(case_args("llama_plain", Some(&base)), &out, &[]);
        let m = Model::open(&out).unwrap();
        let info = m.tensors.tensor_info("rope_freqs.weight").expect("rope_freqs.weight kept").clone();
        assert_eq!(info.ty, GgmlType::F32, "{what}");
        assert!(m.tensors.tensor_bytes("rope_freqs.weight").unwrap() == want, "{what}: rope_freqs.weight changed");
        // the adapter did apply
        let q0 = Model::open(&base).unwrap().tensors.tensor_bytes("blk.0.attn_q.weight").unwrap().into_owned();
        assert!(m.tensors.tensor_bytes("blk.0.attn_q.weight").unwrap() != q0, "{what}: adapter not applied");
        let _ = std::fs::remove_file(&out);
    }
    let out = tmp("rope-hf-out");
    run_merge(case_args("llama_plain", Some(&reference)), &out, &[]);
    let cfg: Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["rope_scaling"]["rope_type"], "llama3", "{cfg}");
    assert_eq!(cfg["rope_scaling"]["original_max_position_embeddings"], 64);
    let _ = std::fs::remove_dir_all(&out);
}
