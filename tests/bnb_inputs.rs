//! bitsandbytes checkpoints as inputs (issue 16 item 6), against bitsandbytes itself: the
//! fixtures in fixtures/bnb/ were written by transformers' `save_pretrained` of the tiny
//! llama quantized with bitsandbytes (NF4, FP4, NF4 + double quantization, LLM.int8), and
//! fixtures/bnb/expected/<case>.safetensors holds bitsandbytes' own dequantization of every
//! quantized weight and transformers' logits of the dequantized model
//! (fixtures/bnb/gen_bnb_fixtures.py). No torch needed here.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{llmtool, llmtool_ok, root};
use llmtool::infer::InferModel;
use llmtool::model::Model;
use llmtool_formats::hf::{BnbQuant, HfDir, HfWeights};
use safetensors::{Dtype, SafeTensors};

/// (case, quant type, double quant, dtype it dequantizes to)
const CASES: [(&str, BnbQuant, bool, Dtype); 4] = [
    ("nf4", BnbQuant::Nf4, false, Dtype::F32),
    ("fp4", BnbQuant::Fp4, false, Dtype::BF16),
    ("nf4_dq", BnbQuant::Nf4, true, Dtype::F16),
    ("int8", BnbQuant::Int8, false, Dtype::F32),
];
/// The 14 Linear weights of the 2-layer llama (q, k, v, o, gate, up, down); lm_head is
/// left unquantized by transformers, like the embeddings and norms.
const N_QUANTIZED: usize = 14;
const TOL_LOGITS: f32 = 1e-4;

fn case_dir(case: &str) -> PathBuf {
    root().join("fixtures/bnb").join(case)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The judge file of a case: name → (dtype, shape, bytes).
fn expected(case: &str) -> BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(root().join("fixtures/bnb/expected").join(format!("{case}.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec()))).collect()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn open_weights(dir: &Path) -> HfWeights {
    HfWeights::new(HfDir::open(dir).unwrap().weights).unwrap()
}

#[test]
fn every_dequantized_weight_equals_bitsandbytes_bit_for_bit() {
    for (case, quant, dq, dtype) in CASES {
        let w = open_weights(&case_dir(case));
        let want = expected(case);
        assert_eq!(w.bnb_tensors().len(), N_QUANTIZED, "{case}");
        for b in w.bnb_tensors() {
            assert_eq!((b.quant, b.double_quant, b.dtype), (quant, dq, dtype), "{case} {}", b.name);
            let (wdt, wshape, wbytes) = &want[&b.name];
            assert_eq!(*wdt, dtype, "{case} {}", b.name);
            assert_eq!(b.shape.iter().map(|&d| d as usize).collect::<Vec<_>>(), *wshape);
            let got = w.tensor_data(&b.name).unwrap();
            assert!(got.as_ref() == wbytes.as_slice(), "{case} {}: differs from bitsandbytes' dequantization", b.name);
        }
        // The view: quantized weights as float tensors, no companion tensors, every other
        // tensor as stored.
        let stored = w.stored();
        let n_bnb_in_judge = want.keys().filter(|k| *k != "logits" && *k != "input_ids").count();
        assert_eq!(n_bnb_in_judge, N_QUANTIZED);
        for t in w.tensors() {
            for suffix in [".absmax", ".quant_map", ".SCB", ".weight_format", "quant_state"] {
                assert!(!t.name.contains(suffix), "{case}: companion {} leaked", t.name);
            }
            if !want.contains_key(&t.name) {
                assert_eq!(stored.tensor(&t.name), Some(t), "{case}");
                assert_eq!(w.tensor_data(&t.name).unwrap().as_ref(), stored.tensor_data(&t.name).unwrap());
            }
        }
        // Same names as the unquantized llama fixture: 2 layers × 9 + embeddings, norm, lm_head.
        assert_eq!(w.tensors().len(), 21, "{case}");
    }
}

fn logits_of(path: &Path, ids: &[u32]) -> Vec<f32> {
    let model = Model::open(path).unwrap();
    let m = InferModel::load(&model).unwrap();
    let mut kv = m.new_cache(ids.len());
    m.forward(ids, &mut kv, 0).unwrap()
}

#[test]
fn gguf_f32_conversion_gives_the_dequantized_models_logits() {
    let tmp = tempfile::tempdir().unwrap();
    for (case, ..) in CASES {
        let want = expected(case);
        let ids: Vec<u32> =
            want["input_ids"].2.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32).collect();
        let logits = f32s(&want["logits"].2);
        let gguf = tmp.path().join(format!("{case}.gguf"));
        llmtool_ok(&["convert", s(&case_dir(case)), s(&gguf), "--outtype", "f32", "--quiet"]);
        let model = Model::open(&gguf).unwrap();
        let names: Vec<&str> = model.tensors.tensor_infos().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 21, "{case}: {names:?}");
        assert!(model.tensors.tensor_infos().iter().all(|t| t.ty == llmtool_formats::GgmlType::F32));
        drop(model);
        let got = logits_of(&gguf, &ids);
        assert_eq!(got.len(), logits.len());
        let d = got.iter().zip(&logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        eprintln!("{case}: GGUF F32 max |Δlogit| vs transformers on the dequantized model = {d:.3e}");
        assert!(d <= TOL_LOGITS, "{case}: max |Δlogit| = {d}");
    }
}

#[test]
fn perplexity_reads_a_bnb_dir_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("text.txt");
    std::fs::write(&text, "Hello world, the quick brown fox jumps over the lazy dog. ".repeat(8)).unwrap();
    let gguf = tmp.path().join("nf4.gguf");
    llmtool_ok(&["convert", s(&case_dir("nf4")), s(&gguf), "--quiet"]);
    let ppl = |m: &Path| {
        let out = llmtool_ok(&["perplexity", s(m), "--text", s(&text), "--ctx", "32", "--json", "-q"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["ppl"].as_f64().unwrap()
    };
    let (a, b) = (ppl(&case_dir("nf4")), ppl(&gguf));
    assert!(a.is_finite() && a > 1.0);
    assert_eq!(a, b, "the bnb dir and its GGUF conversion score the same");
}

#[test]
fn inspect_shows_the_bitsandbytes_types() {
    for (case, quant, dq, dtype) in CASES {
        let out = llmtool_ok(&["inspect", s(&case_dir(case)), "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ty = format!("{}{}", quant.name(), if dq { "+dq" } else { "" });
        let key = format!("{ty} → {dtype:?}");
        assert_eq!(v["bitsandbytes"]["tensors"], N_QUANTIZED, "{case}");
        assert_eq!(v["bitsandbytes"]["types"][&key], N_QUANTIZED, "{case}: {}", v["bitsandbytes"]);
        let q = v["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "blk.0.attn_q.weight").unwrap();
        assert_eq!(q["bitsandbytes"]["type"], ty.as_str());
        assert_eq!(q["bitsandbytes"]["hf_name"], "model.layers.0.self_attn.q_proj.weight");
        let ggml = match dtype {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            _ => "BF16",
        };
        assert_eq!(q["type"], ggml, "{case}: shown as what it dequantizes to");
        let stored = q["bitsandbytes"]["stored_bytes"].as_u64().unwrap();
        let elems = 64 * 64;
        match quant {
            // Packed codes + one f32 absmax per 64 + the 16-entry quant_map + the JSON blob.
            BnbQuant::Nf4 | BnbQuant::Fp4 if !dq => assert!(stored > elems / 2 + 64 * 4 && stored < elems / 2 + 600),
            BnbQuant::Nf4 | BnbQuant::Fp4 => assert!(stored > elems / 2 + 64 && stored < elems / 2 + 64 + 1400 + 200),
            BnbQuant::Int8 => assert_eq!(stored, elems + 64 * 4 + 1),
        }
        let emb = v["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "token_embd.weight").unwrap();
        assert!(emb.get("bitsandbytes").is_none(), "{case}: embeddings are not quantized");
        let text = String::from_utf8(llmtool_ok(&["inspect", s(&case_dir(case))]).stdout).unwrap();
        assert!(text.contains(&format!("bitsandbytes: {N_QUANTIZED} × {key}")), "{case}:\n{text}");
        assert!(text.contains(&format!("← bnb {ty}")), "{case}:\n{text}");
    }
}

/// A GGUF file's tensors: name → (type, bytes).
fn gguf_tensors(path: &Path) -> BTreeMap<String, (llmtool_formats::GgmlType, Vec<u8>)> {
    let m = Model::open(path).unwrap();
    m.tensors
        .tensor_infos()
        .iter()
        .map(|t| (t.name.clone(), (t.ty, m.tensors.tensor_bytes(&t.name).unwrap().into_owned())))
        .collect()
}

/// The F32 GGUF conversion of a case, the dequantized model in a plain file.
fn f32_gguf(dir: &Path, case: &str) -> PathBuf {
    let out = dir.join(format!("{case}-f32.gguf"));
    llmtool_ok(&["convert", s(&case_dir(case)), s(&out), "--outtype", "f32", "--quiet"]);
    out
}

#[test]
fn quantize_to_q8_0_equals_quantizing_the_dequantized_model() {
    let tmp = tempfile::tempdir().unwrap();
    for case in ["nf4", "int8"] {
        let from_bnb = tmp.path().join(format!("{case}-q8.gguf"));
        let from_f32 = tmp.path().join(format!("{case}-f32-q8.gguf"));
        llmtool_ok(&["quantize", "-q", s(&case_dir(case)), s(&from_bnb), "--type", "Q8_0"]);
        llmtool_ok(&["quantize", "-q", s(&f32_gguf(tmp.path(), case)), s(&from_f32), "--type", "Q8_0"]);
        let (a, b) = (gguf_tensors(&from_bnb), gguf_tensors(&from_f32));
        assert_eq!(a, b, "{case}");
        assert_eq!(a["blk.0.attn_q.weight"].0, llmtool_formats::GgmlType::Q8_0);
    }
}

#[test]
fn lora_merge_on_a_bnb_base_merges_into_the_dequantized_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let adapter = root().join("fixtures/lora/llama_plain/adapter");
    // With a float output the merged tensors are W + ΔW in f32 from either base, whatever
    // type the base's weights dequantize to (nf4: f32, nf4_dq and int8: f16).
    for case in ["nf4", "nf4_dq", "int8"] {
        let from_bnb = tmp.path().join(format!("{case}-lora.gguf"));
        let from_f32 = tmp.path().join(format!("{case}-f32-lora.gguf"));
        let base_f32 = f32_gguf(tmp.path(), case);
        for (base, out) in [(case_dir(case), &from_bnb), (base_f32, &from_f32)] {
            llmtool_ok(&[
                "lora",
                "merge",
                "--base",
                s(&base),
                "--adapter",
                s(&adapter),
                s(out),
                "--outtype",
                "f32",
                "-q",
            ]);
        }
        assert_eq!(gguf_tensors(&from_bnb), gguf_tensors(&from_f32), "{case}");
        // HF output from a bnb base: plain float tensors, no quantization_config.
        let hf = tmp.path().join(format!("{case}-lora-hf"));
        let case_path = case_dir(case);
        llmtool_ok(&["lora", "merge", "--base", s(&case_path), "--adapter", s(&adapter), s(&hf), "--to", "hf", "-q"]);
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(hf.join("config.json")).unwrap()).unwrap();
        assert!(cfg.get("quantization_config").is_none());
        assert!(open_weights(&hf).bnb_tensors().is_empty());
    }
}

#[test]
fn merge_and_chatvector_read_bnb_inputs_as_their_dequantized_models() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (nf4, nf4_dq) = (f32_gguf(d, "nf4"), f32_gguf(d, "nf4_dq"));
    let yaml = |a: &Path, b: &Path| {
        format!(
            "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 0.3}}\n  - model: {}\n    parameters: {{weight: 0.7}}\ndtype: float32\n",
            a.display(),
            b.display()
        )
    };
    let (cfg_bnb, cfg_f32) = (d.join("bnb.yml"), d.join("f32.yml"));
    std::fs::write(&cfg_bnb, yaml(&case_dir("nf4"), &case_dir("nf4_dq"))).unwrap();
    std::fs::write(&cfg_f32, yaml(&nf4, &nf4_dq)).unwrap();
    let (m_bnb, m_f32) = (d.join("m-bnb.gguf"), d.join("m-f32.gguf"));
    llmtool_ok(&["merge", "-q", s(&cfg_bnb), s(&m_bnb)]);
    llmtool_ok(&["merge", "-q", s(&cfg_f32), s(&m_f32)]);
    assert_eq!(gguf_tensors(&m_bnb), gguf_tensors(&m_f32), "merge");

    let target = root().join("fixtures/models/llama");
    let (c_bnb, c_f32) = (d.join("c-bnb.gguf"), d.join("c-f32.gguf"));
    let (b, c) = (case_dir("nf4"), case_dir("int8"));
    let int8 = f32_gguf(d, "int8");
    llmtool_ok(&["chatvector", "--base", s(&b), "--chat", s(&c), "--target", s(&target), s(&c_bnb), "-q"]);
    llmtool_ok(&["chatvector", "--base", s(&nf4), "--chat", s(&int8), "--target", s(&target), s(&c_f32), "-q"]);
    assert_eq!(gguf_tensors(&c_bnb), gguf_tensors(&c_f32), "chatvector");
}

#[test]
fn hf_output_is_dequantized_without_quantization_config() {
    let tmp = tempfile::tempdir().unwrap();
    for (case, ..) in CASES {
        let out = tmp.path().join(case);
        let run = llmtool_ok(&["convert", s(&case_dir(case)), s(&out)]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("14 bitsandbytes-quantized weights written dequantized; quantization_config removed"),
            "{stderr}"
        );
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert!(cfg.get("quantization_config").is_none());
        let w = open_weights(&out);
        assert!(w.bnb_tensors().is_empty());
        assert_eq!(w.stored().tensors().len(), 21, "{case}: no companion tensors written");
        let want = expected(case);
        for (name, (dtype, _, bytes)) in want.iter().filter(|(k, _)| *k != "logits" && *k != "input_ids") {
            let st = w.stored().tensor(name).unwrap();
            assert_eq!(st.dtype, *dtype, "{case} {name}");
            assert_eq!(w.stored().tensor_data(name).unwrap(), bytes.as_slice(), "{case} {name}");
        }
    }
}

// ---- malformed inputs ------------------------------------------------------------------

type Edit = fn(&mut BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>);

/// A copy of a bnb fixture whose model.safetensors is edited.
fn edited(dir: &Path, case: &str, edit: Edit) -> PathBuf {
    let src = case_dir(case);
    let dst = dir.join(format!("{case}-edited"));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec()))).collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, (dt, sh, b))| (n.clone(), safetensors::tensor::TensorView::new(*dt, sh.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &dst.join("model.safetensors")).unwrap();
    dst
}

const Q: &str = "model.layers.0.self_attn.q_proj.weight";

fn fails_with(dir: &Path, needles: &[&str]) {
    let out_path = dir.with_extension("gguf");
    for cmd in [vec!["inspect", s(dir)], vec!["convert", s(dir), s(&out_path)]] {
        let out = llmtool(&cmd);
        assert!(!out.status.success(), "{cmd:?} succeeded on a broken checkpoint");
        let err = String::from_utf8_lossy(&out.stderr);
        for n in needles {
            assert!(err.contains(n), "{cmd:?}: '{n}' not in:\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out_path.exists(), "no output from a failed run");
    }
}

#[test]
fn malformed_bnb_tensors_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let qs = format!("{Q}.quant_state.bitsandbytes__nf4");
    fails_with(
        &edited(d, "nf4", |t| {
            let k = format!("{Q}.quant_state.bitsandbytes__nf4");
            t.insert(k, (Dtype::U8, vec![5], b"{not ".to_vec()));
        }),
        &[&qs, "not valid JSON"],
    );
    fails_with(
        &edited(d, "nf4", |t| {
            let k = format!("{Q}.quant_state.bitsandbytes__nf4");
            let v = t.remove(&k).unwrap();
            t.insert(format!("{Q}.quant_state.bitsandbytes__af4"), v);
        }),
        &["bitsandbytes__af4", "unknown bitsandbytes quant type 'af4'"],
    );
    fails_with(
        &edited(d, "nf4", |t| {
            let k = format!("{Q}.quant_state.bitsandbytes__nf4");
            let text = r#"{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [64, 64], "extra": 1}"#;
            t.insert(k, (Dtype::U8, vec![text.len()], text.as_bytes().to_vec()));
        }),
        &[&qs, "unknown quant state key 'extra'"],
    );
    fails_with(
        &edited(d, "nf4", |t| {
            let k = format!("{Q}.quant_state.bitsandbytes__nf4");
            let text = r#"{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [4096, 4096]}"#;
            t.insert(k, (Dtype::U8, vec![text.len()], text.as_bytes().to_vec()));
        }),
        &[Q, "needs 8388608 bytes", "2048 bytes"],
    );
    fails_with(
        &edited(d, "nf4", |t| {
            let a = t.get_mut(&format!("{Q}.absmax")).unwrap();
            a.1 = vec![63];
            a.2.truncate(63 * 4);
        }),
        &[&format!("{Q}.absmax"), "expected 64 F32 values", "[63]"],
    );
    fails_with(
        &edited(d, "nf4", |t| {
            let w = t.get_mut(Q).unwrap();
            w.1 = vec![2047, 1];
            w.2.truncate(2047);
        }),
        &[Q, "needs 2048 bytes"],
    );
    fails_with(
        &edited(d, "nf4_dq", |t| {
            let a = t.get_mut(&format!("{Q}.nested_absmax")).unwrap();
            a.1 = vec![2];
            a.2.extend_from_slice(&[0; 4]);
        }),
        &[&format!("{Q}.nested_absmax"), "expected 1 F32 values"],
    );
    fails_with(
        &edited(d, "nf4", |t| {
            t.remove(&format!("{Q}.quant_state.bitsandbytes__nf4"));
        }),
        &[&format!("{Q}.absmax"), "companion tensor whose quantized weight is not here"],
    );
    fails_with(
        &edited(d, "int8", |t| {
            let k = "model.layers.1.mlp.down_proj.SCB";
            let a = t.get_mut(k).unwrap();
            a.1 = vec![32];
            a.2.truncate(32 * 4);
        }),
        &["model.layers.1.mlp.down_proj.SCB", "expected 64 F32 values"],
    );
}

/// Seeded random damage to one weight's quant state and companions: opening either refuses
/// the checkpoint with an error or accepts it, and then every weight dequantizes to the size
/// its info says — never a panic, never an allocation the bytes do not back.
#[test]
fn randomly_damaged_quant_states_are_refused_or_read_consistently() {
    let bytes = std::fs::read(case_dir("nf4_dq").join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let src: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec()))).collect();
    let key = format!("{Q}.quant_state.bitsandbytes__nf4");
    let fields = ["blocksize", "shape", "nested_blocksize", "nested_offset", "dtype", "quant_type", "nested_dtype"];
    let mut rng = common::variant::Rng(16);
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..400 {
        let mut t = src.clone();
        let mut qs: serde_json::Value = serde_json::from_slice(&t[&key].2).unwrap();
        let field = fields[rng.below(fields.len())];
        qs[field] = match rng.below(7) {
            0 => serde_json::json!(rng.below(5000)),
            1 => serde_json::json!([rng.below(200), rng.below(200)]),
            2 => serde_json::json!([u64::MAX, 4]),
            3 => serde_json::json!(-1),
            4 => serde_json::json!("float16"),
            5 => serde_json::json!(64),
            _ => serde_json::Value::Null,
        };
        let text = serde_json::to_vec(&qs).unwrap();
        t.insert(key.clone(), (Dtype::U8, vec![text.len()], text));
        if rng.below(3) == 0 {
            let part = ["", ".absmax", ".nested_absmax", ".nested_quant_map", ".quant_map"][rng.below(5)];
            let e = t.get_mut(&format!("{Q}{part}")).unwrap();
            let size = if e.0 == Dtype::F32 { 4 } else { 1 };
            let keep = rng.below(e.2.len() / size + 2);
            e.1 = vec![keep];
            e.2.resize(keep * size, 0);
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = t
            .iter()
            .map(|(n, (dt, sh, b))| (n.clone(), safetensors::tensor::TensorView::new(*dt, sh.clone(), b).unwrap()))
            .collect();
        let set =
            llmtool_formats::safetensors::SafetensorsSet::from_bytes(safetensors::serialize(views, None).unwrap())
                .unwrap();
        match HfWeights::new(set) {
            Err(e) => {
                assert!(e.to_string().contains("bitsandbytes tensor '"), "{e}");
                refused += 1;
            }
            Ok(w) => {
                for b in w.bnb_tensors() {
                    let n: u64 = b.shape.iter().product();
                    let size = if b.dtype == Dtype::F32 { 4 } else { 2 };
                    assert_eq!(w.tensor_data(&b.name).unwrap().len() as u64, n * size, "{}", b.name);
                }
                accepted += 1;
            }
        }
    }
    eprintln!("{refused} refused, {accepted} accepted");
    assert!(refused > 100 && accepted > 20, "{refused} refused, {accepted} accepted");
}

/// `bnb_4bit_quant_storage=torch.bfloat16` (used for FSDP) stores the same packed bytes as a
/// bf16 tensor of half as many elements; bitsandbytes reads them back with `A.view(torch.uint8)`.
#[test]
fn packed_weights_in_another_storage_dtype_are_read_as_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = edited(tmp.path(), "nf4", |t| {
        for (name, (dtype, shape, _)) in t.iter_mut() {
            if *dtype == Dtype::U8 && shape.len() == 2 && shape[1] == 1 && !name.contains("quant_state") {
                *dtype = Dtype::BF16;
                shape[0] /= 2;
            }
        }
    });
    let w = open_weights(&dir);
    assert_eq!(w.bnb_tensors().len(), N_QUANTIZED);
    assert_eq!(w.stored().tensor(Q).unwrap().dtype, Dtype::BF16);
    let want = expected("nf4");
    for b in w.bnb_tensors() {
        assert!(w.tensor_data(&b.name).unwrap().as_ref() == want[&b.name].2.as_slice(), "{}", b.name);
    }
}
