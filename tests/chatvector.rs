//! `llmtool chatvector` end to end: every output tensor against an independent f64
//! computation of T + Σ ratio·(C − B) from the inputs read by the `safetensors` crate (HF
//! dirs) or decoded GGUF tensors; skips, vocabulary mismatches, the token map, the chat
//! template, saved vectors, quantized targets, errors, and the real SmolLM2.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::variant::{perturbed, read_hf, write_variant, Rng};
use common::{llmtool, llmtool_ok, real_model, root};
use llmtool_formats::gguf::{write_gguf, GgufFile, GgufHeader};
use llmtool_formats::{GgmlType, MetaValue, TensorInfo};
use safetensors::{Dtype, SafeTensors};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join("chatvec-tests").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture(arch: &str) -> PathBuf {
    root().join("fixtures/models").join(arch)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A GGUF file's tensors decoded to f64: name → (type, ne, values).
fn read_gguf(path: &Path) -> BTreeMap<String, (GgmlType, Vec<u64>, Vec<f64>)> {
    let f = GgufFile::open(path).unwrap();
    let mut out = BTreeMap::new();
    for t in &f.tensors {
        let n = t.n_elements().unwrap() as usize;
        let mut v = vec![0f32; n];
        llmtool_kernels::convert::to_f32(t.ty, f.tensor_data(&t.name).unwrap(), &mut v).unwrap();
        out.insert(t.name.clone(), (t.ty, t.ne.clone(), v.into_iter().map(f64::from).collect()));
    }
    out
}

/// `|out − expected|` within a few f32 roundings of the terms' magnitude.
fn assert_close(name: &str, i: usize, out: f64, exp: f64, scale: f64) {
    let tol = 4.0 * f32::EPSILON as f64 * scale + 1e-30;
    assert!((out - exp).abs() <= tol, "{name}[{i}]: got {out}, expected {exp} (tolerance {tol})");
}

/// B, C (= B perturbed) and T (= B perturbed differently) of the llama fixture as HF dirs.
fn hf_triplet(dir: &Path, seed: u64) -> (PathBuf, PathBuf, PathBuf) {
    hf_triplet_of("llama", dir, seed)
}

/// [`hf_triplet`] of any fixture architecture.
fn hf_triplet_of(arch: &str, dir: &Path, seed: u64) -> (PathBuf, PathBuf, PathBuf) {
    let (b, c, t) = (dir.join("base"), dir.join("chat"), dir.join("target"));
    perturbed(&fixture(arch), &b, seed, 0.01);
    perturbed(&b, &c, seed + 1, 0.05);
    perturbed(&b, &t, seed + 2, 0.05);
    (b, c, t)
}

/// Expected T + Σ r·(C − B) for one tensor (all given in the same layout).
fn expected(t: &[f64], vectors: &[(f64, &[f64], &[f64])]) -> (Vec<f64>, Vec<f64>) {
    let mut e = t.to_vec();
    let mut scale: Vec<f64> = t.iter().map(|x| x.abs()).collect();
    for &(r, c, b) in vectors {
        for i in 0..e.len() {
            e[i] += r * (c[i] - b[i]);
            scale[i] += r.abs() * (c[i].abs() + b[i].abs());
        }
    }
    (e, scale)
}

#[test]
fn hf_to_hf_exact_math_with_default_skips() {
    // qwen3, gemma3: the q/k norms (and gemma3's four norms per layer) follow the same rule
    // command_r, cohere2: LayerNorms, parallel blocks
    for arch in ["llama", "qwen3", "gemma3", "command_r", "cohere2"] {
        hf_math(arch);
    }
}

fn hf_math(arch: &str) {
    let dir = tmp(&format!("hf_math_{arch}"));
    let (b, c, t) = hf_triplet_of(arch, &dir, 11);
    let out = dir.join("out");
    llmtool_ok(&["chatvector", "--base", s(&b), "--chat", s(&c), "--target", s(&t), "--ratio", "0.7", s(&out), "-q"]);
    let (bt, ct, tt, ot) = (read_hf(&b), read_hf(&c), read_hf(&t), read_hf(&out));
    assert_eq!(ot.keys().collect::<Vec<_>>(), tt.keys().collect::<Vec<_>>());
    for (name, (shape, vals)) in &ot {
        assert_eq!(shape, &tt[name].0, "{name}");
        if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
            assert_eq!(vals, &tt[name].1, "{name} is skipped by default: the target's");
            continue;
        }
        let (e, mut sc) = expected(&tt[name].1, &[(0.7, &ct[name].1, &bt[name].1)]);
        // gemma3's norms are computed on as stored in GGUF form, w + 1: each of the four
        // values carries an offset of magnitude 1 in its f32 roundings
        if arch == "gemma3" && name.ends_with("norm.weight") {
            sc.iter_mut().for_each(|x| *x += 4.0);
        }
        assert_ne!(vals, &tt[name].1, "{name} changed");
        for i in 0..e.len() {
            assert_close(name, i, vals[i], e[i], sc[i]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// GGUF inputs (converted with `llmtool convert`, F32 stays F32) → GGUF output; two vectors
/// with their own ratios; embeddings un-skipped, norms and one layer's MLP (HF-name glob) skipped.
#[test]
fn gguf_two_vectors_skips_and_hf_globs() {
    let dir = tmp("gguf_two");
    let (b, c, t) = hf_triplet(&dir, 21);
    let c2 = dir.join("chat2");
    perturbed(&b, &c2, 99, 0.03);
    let g = |p: &Path| {
        let o = p.with_extension("gguf");
        llmtool_ok(&["convert", s(p), s(&o), "-q"]);
        o
    };
    let (bg, cg, c2g, tg) = (g(&b), g(&c), g(&c2), g(&t));
    let out = dir.join("out.gguf");
    llmtool_ok(&[
        "chatvector",
        "--base",
        s(&bg),
        "--chat",
        s(&cg),
        "--base",
        s(&bg),
        "--chat",
        s(&c2g),
        "--ratio",
        "0.5",
        "--ratio",
        "-0.25",
        "--target",
        s(&tg),
        "--no-default-skips",
        "--skip-norms",
        "--skip",
        "model.layers.1.mlp.*",
        s(&out),
        "-q",
    ]);
    let (bt, ct, c2t, tt, ot) = (read_gguf(&bg), read_gguf(&cg), read_gguf(&c2g), read_gguf(&tg), read_gguf(&out));
    assert_eq!(ot.len(), tt.len());
    let mut changed = 0;
    for (name, (ty, ne, vals)) in &ot {
        assert_eq!((ty, ne), (&tt[name].0, &tt[name].1), "{name}: type and shape kept");
        if name.contains("norm") || name.starts_with("blk.1.ffn_") {
            assert_eq!(vals, &tt[name].2, "{name} is skipped");
            continue;
        }
        let (e, sc) = expected(&tt[name].2, &[(0.5, &ct[name].2, &bt[name].2), (-0.25, &c2t[name].2, &bt[name].2)]);
        for i in 0..e.len() {
            assert_close(name, i, vals[i], e[i], sc[i]);
        }
        changed += 1;
    }
    // 2 layers × 7 matrices, minus layer 1's 3 MLP matrices, plus token_embd and output.
    assert_eq!(changed, 2 * 7 - 3 + 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// B has the fixture's 379 vocabulary rows, C 384, T 390: rows 379.. of T stay T's; the
/// token map gives row 385 vector row 5 and row 2 vector row 7.
#[test]
fn vocab_mismatch_rows_and_token_map() {
    let dir = tmp("vocab");
    let (b0, c0, t0) = hf_triplet(&dir, 31);
    let grow = |src: &Path, dst: &Path, rows: usize, seed: u64| {
        let mut rng = Rng(seed);
        write_variant(
            src,
            dst,
            |name, shape, vals| {
                if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
                    let extra = (rows - shape[0]) * shape[1];
                    vals.extend((0..extra).map(|_| 0.1 * rng.unit()));
                    shape[0] = rows;
                }
            },
            |cfg| cfg["vocab_size"] = rows.into(),
        )
    };
    let (c, t) = (dir.join("chat384"), dir.join("target390"));
    grow(&c0, &c, 384, 1);
    grow(&t0, &t, 390, 2);
    let b = b0;
    let out = dir.join("out");
    let mut args = vec!["chatvector", "--base", s(&b), "--chat", s(&c), "--target", s(&t), "--ratio", "1.5"];
    args.extend(["--no-default-skips", "--token-map", "385=5", "--token-map", "2=7", s(&out), "-q"]);
    llmtool_ok(&args);
    let (bt, ct, tt, ot) = (read_hf(&b), read_hf(&c), read_hf(&t), read_hf(&out));
    for name in ["model.embed_tokens.weight", "lm_head.weight"] {
        let (shape, vals) = &ot[name];
        assert_eq!(shape, &vec![390, 64], "{name}: the target's rows");
        let n = 64;
        for row in 0..390 {
            let src = match row {
                385 => Some(5),
                2 => Some(7),
                r if r < 379 => Some(r),
                _ => None,
            };
            for k in 0..n {
                let i = row * n + k;
                let tv = tt[name].1[i];
                match src {
                    None => assert_eq!(vals[i], tv, "{name} row {row} is beyond the shared vocabulary"),
                    Some(s) => {
                        let (cv, bv) = (ct[name].1[s * n + k], bt[name].1[s * n + k]);
                        let e = tv + 1.5 * (cv - bv);
                        assert_close(name, i, vals[i], e, tv.abs() + 1.5 * (cv.abs() + bv.abs()));
                    }
                }
            }
        }
    }
    // A map entry beyond the vector's rows is an error naming it.
    let o = llmtool(&[
        "chatvector",
        "--base",
        s(&b),
        "--chat",
        s(&c),
        "--target",
        s(&t),
        "--no-default-skips",
        "--token-map",
        "1=380",
        s(&dir.join("bad")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("1=380") && err.contains("379 rows"), "{err}");
    assert!(!dir.join("bad").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn template_from_chat_copies_template_and_eos() {
    let dir = tmp("template");
    let (b, c, t) = hf_triplet(&dir, 41);
    let mut tc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.join("tokenizer_config.json")).unwrap()).unwrap();
    tc["chat_template"] = "{% for m in messages %}CHAT {{ m.content }}{% endfor %}".into();
    tc["eos_token"] = "<|endoftext|>".into();
    std::fs::write(c.join("tokenizer_config.json"), serde_json::to_vec(&tc).unwrap()).unwrap();
    let _ = std::fs::remove_file(c.join("chat_template.jinja"));
    let out = dir.join("out.gguf");
    let plain = dir.join("plain.gguf");
    let base_args = ["chatvector", "--base", s(&b), "--chat", s(&c), "--target", s(&t), "-q"];
    llmtool_ok(&[&base_args[..], &["--template-from", "chat", s(&out)]].concat());
    llmtool_ok(&[&base_args[..], &[s(&plain)]].concat());
    let chat = llmtool::model::Model::open(&c).unwrap();
    let (o, p) = (GgufFile::open(&out).unwrap(), GgufFile::open(&plain).unwrap());
    let tpl = "tokenizer.chat_template";
    let eos = "tokenizer.ggml.eos_token_id";
    assert_eq!(chat.metadata.get_str(tpl), Some("{% for m in messages %}CHAT {{ m.content }}{% endfor %}"));
    assert_eq!(o.metadata.get_str(tpl), chat.metadata.get_str(tpl));
    assert_eq!(o.metadata.get_u64(eos), Some(0));
    assert_ne!(p.metadata.get_str(tpl), o.metadata.get_str(tpl), "without the flag T's template stays");
    assert_eq!(p.metadata.get_u64(eos), Some(2));
    // Tensors are unaffected by the flag.
    for info in &o.tensors {
        assert_eq!(o.tensor_data(&info.name), p.tensor_data(&info.name), "{}", info.name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn extract_then_apply_equals_direct() {
    let dir = tmp("extract");
    let (b, c, t) = hf_triplet(&dir, 51);
    let v = dir.join("v.safetensors");
    llmtool_ok(&["chatvector", "extract", "--base", s(&b), "--chat", s(&c), s(&v), "--skip-norms", "-q"]);
    // The vector: C − B under GGUF names, skipped tensors left out, sources recorded.
    let bytes = std::fs::read(&v).unwrap();
    let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
    let md = md.metadata().clone().unwrap();
    assert_eq!(md["chatvector.architecture"], "llama");
    assert_eq!(md["chatvector.base"], s(&b));
    assert_eq!(md["chatvector.chat"], s(&c));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    assert!(names.iter().all(|n| !n.contains("norm") && n != "token_embd.weight" && n != "output.weight"));
    assert_eq!(names.len(), 14);
    // ffn_down is not permuted: compare with the HF tensors directly.
    let (bt, ct) = (read_hf(&b), read_hf(&c));
    let view = st.tensor("blk.1.ffn_down.weight").unwrap();
    assert_eq!(view.dtype(), Dtype::F32);
    let hf = "model.layers.1.mlp.down_proj.weight";
    assert_eq!(view.shape(), &bt[hf].0[..]);
    for (i, ch) in view.data().chunks_exact(4).enumerate() {
        let got = f32::from_le_bytes(ch.try_into().unwrap()) as f64;
        let e = ct[hf].1[i] - bt[hf].1[i];
        assert_close(hf, i, got, e, ct[hf].1[i].abs() + bt[hf].1[i].abs());
    }
    // Applying the saved vector gives exactly the direct result.
    let (direct, saved) = (dir.join("direct.gguf"), dir.join("saved.gguf"));
    llmtool_ok(&["chatvector", "--base", s(&b), "--chat", s(&c), "--target", s(&t), "--skip-norms", s(&direct), "-q"]);
    llmtool_ok(&["chatvector", "--vector", s(&v), "--target", s(&t), s(&saved), "-q"]);
    let (d, sv) = (GgufFile::open(&direct).unwrap(), GgufFile::open(&saved).unwrap());
    assert_eq!(d.tensors, sv.tensors);
    for info in &d.tensors {
        assert_eq!(d.tensor_data(&info.name), sv.tensor_data(&info.name), "{}", info.name);
    }
    // Mixed: a saved vector and a pair, ratio per vector; f16 vector storage.
    let v16 = dir.join("v16.safetensors");
    llmtool_ok(&["chatvector", "extract", "--base", s(&b), "--chat", s(&c), s(&v16), "--outtype", "f16", "-q"]);
    let b16 = std::fs::read(&v16).unwrap();
    let st16 = SafeTensors::deserialize(&b16).unwrap();
    assert!(st16.tensors().iter().all(|(_, t)| t.dtype() == Dtype::F16));
    let mixed = dir.join("mixed");
    let mut args = vec!["chatvector", "--vector", s(&v16), "--base", s(&b), "--chat", s(&c)];
    args.extend(["--ratio", "0.5", "--ratio", "0.25", "--target", s(&t), s(&mixed), "-q"]);
    llmtool_ok(&args);
    let (tt, ot) = (read_hf(&t), read_hf(&mixed));
    let v16t: BTreeMap<String, Vec<f64>> = st16
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect()))
        .collect();
    // Pair first (0.5), then the saved vector (0.25), on a tensor without a layout fix.
    let e: Vec<f64> = (0..tt[hf].1.len())
        .map(|i| tt[hf].1[i] + 0.5 * (ct[hf].1[i] - bt[hf].1[i]) + 0.25 * v16t["blk.1.ffn_down.weight"][i])
        .collect();
    for (i, (&o, &e)) in ot[hf].1.iter().zip(&e).enumerate() {
        assert_close(hf, i, o, e, tt[hf].1[i].abs() + ct[hf].1[i].abs() + bt[hf].1[i].abs());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Q8_0 target (`llmtool quantize`): output tensor types are the target's; skipped
/// tensors are its bytes; changed ones are within one Q8_0 step of the f64 result.
#[test]
fn quantized_target_keeps_types() {
    let dir = tmp("q8");
    let (b, c, t) = hf_triplet(&dir, 61);
    let tq = dir.join("t.q8_0.gguf");
    llmtool_ok(&["quantize", s(&t), s(&tq), "--type", "Q8_0", "-q"]);
    let (bg, cg) = (dir.join("b.gguf"), dir.join("c.gguf"));
    llmtool_ok(&["convert", s(&b), s(&bg), "-q"]);
    llmtool_ok(&["convert", s(&c), s(&cg), "-q"]);
    let out = dir.join("out.gguf");
    llmtool_ok(&[
        "chatvector",
        "--base",
        s(&bg),
        "--chat",
        s(&cg),
        "--target",
        s(&tq),
        "--ratio",
        "0.8",
        s(&out),
        "-q",
    ]);
    let (tf, of) = (GgufFile::open(&tq).unwrap(), GgufFile::open(&out).unwrap());
    assert_eq!(tf.tensors, of.tensors, "names, types and shapes kept");
    assert!(tf.tensors.iter().any(|t| t.ty == GgmlType::Q8_0));
    let (bt, ct, tt, ot) = (read_gguf(&bg), read_gguf(&cg), read_gguf(&tq), read_gguf(&out));
    for info in &tf.tensors {
        let name = &info.name;
        if name == "token_embd.weight" || name == "output.weight" {
            assert_eq!(tf.tensor_data(name), of.tensor_data(name), "{name}: skipped, byte-identical");
            continue;
        }
        let (e, sc) = expected(&tt[name].2, &[(0.8, &ct[name].2, &bt[name].2)]);
        let o = &ot[name].2;
        if info.ty == GgmlType::Q8_0 {
            for (bi, blk) in e.chunks(32).enumerate() {
                let amax = blk.iter().fold(0f64, |m, x| m.max(x.abs()));
                // One Q8_0 step (amax/127) plus the f16 rounding of the block scale.
                let tol = amax / 127.0 * 0.5 + amax * 2f64.powi(-10) + 1e-9;
                for (k, &ev) in blk.iter().enumerate() {
                    let i = bi * 32 + k;
                    assert!((o[i] - ev).abs() <= tol, "{name}[{i}]: {} vs {ev} (tol {tol})", o[i]);
                }
            }
        } else {
            for i in 0..e.len() {
                assert_close(name, i, o[i], e[i], sc[i]);
            }
        }
    }
    // A quantized chat model is dequantized per tensor: T + r·(deq(Cq) − B) in f32.
    let (cq, tg, out2) = (dir.join("c.q8_0.gguf"), dir.join("t.gguf"), dir.join("out2.gguf"));
    llmtool_ok(&["quantize", s(&c), s(&cq), "--type", "Q8_0", "-q"]);
    llmtool_ok(&["convert", s(&t), s(&tg), "-q"]);
    llmtool_ok(&[
        "chatvector",
        "--base",
        s(&bg),
        "--chat",
        s(&cq),
        "--target",
        s(&tg),
        "--ratio",
        "0.8",
        s(&out2),
        "-q",
    ]);
    let (cqt, tgt, o2t) = (read_gguf(&cq), read_gguf(&tg), read_gguf(&out2));
    assert!(cqt.values().any(|t| t.0 == GgmlType::Q8_0));
    for (name, (ty, _, o)) in &o2t {
        assert_eq!(*ty, tgt[name].0, "{name}: the target's type");
        if name == "token_embd.weight" || name == "output.weight" {
            continue;
        }
        let (e, sc) = expected(&tgt[name].2, &[(0.8, &cqt[name].2, &bt[name].2)]);
        for i in 0..e.len() {
            assert_close(name, i, o[i], e[i], sc[i]);
        }
    }
    // --outtype f16: matrices F16, vectors F32.
    let o16 = dir.join("out16.gguf");
    llmtool_ok(&[
        "chatvector",
        "--base",
        s(&bg),
        "--chat",
        s(&cg),
        "--target",
        s(&tq),
        "--outtype",
        "f16",
        s(&o16),
        "-q",
    ]);
    let f16 = GgufFile::open(&o16).unwrap();
    for t in &f16.tensors {
        let want = if t.ne.len() >= 2 { GgmlType::F16 } else { GgmlType::F32 };
        assert_eq!(t.ty, want, "{}", t.name);
    }
    assert_eq!(f16.metadata.get_u64("general.file_type"), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = llmtool(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} should fail");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn errors_name_the_tensor_and_write_nothing() {
    let dir = tmp("errors");
    let (b, c, t) = hf_triplet(&dir, 71);
    let bad_shape = dir.join("bad_shape");
    write_variant(
        &c,
        &bad_shape,
        |name, shape, vals| {
            if name == "model.layers.0.mlp.up_proj.weight" {
                shape[0] += 1;
                vals.extend(std::iter::repeat_n(0.0, shape[1]));
            }
        },
        |_| {},
    );
    let missing = dir.join("missing");
    let src = read_hf(&b);
    std::fs::create_dir_all(&missing).unwrap();
    write_variant(&b, &missing, |_, _, _| {}, |_| {});
    // Drop one tensor from the copy.
    {
        let bytes = std::fs::read(missing.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let keep: Vec<(String, safetensors::tensor::TensorView)> =
            st.tensors().into_iter().filter(|(n, _)| n != "model.layers.1.self_attn.o_proj.weight").collect();
        safetensors::serialize_to_file(keep, None, &dir.join("tmp.safetensors")).unwrap();
        std::fs::rename(dir.join("tmp.safetensors"), missing.join("model.safetensors")).unwrap();
    }
    assert!(src.contains_key("model.layers.1.self_attn.o_proj.weight"));
    let out = dir.join("out.gguf");
    let o = s(&out);
    fails_with(
        &["chatvector", "--base", s(&b), "--chat", s(&bad_shape), "--target", s(&t), o],
        &["blk.0.ffn_up.weight", "[129, 64]", "[128, 64]"],
    );
    fails_with(
        &["chatvector", "--base", s(&missing), "--chat", s(&c), "--target", s(&t), o],
        &["blk.1.attn_output.weight", "missing"],
    );
    fails_with(&["chatvector", "--base", s(&b), "--target", s(&t), o], &["1 --base and 0 --chat"]);
    fails_with(
        &["chatvector", "--base", s(&b), "--chat", s(&c), "--ratio", "1", "--ratio", "2", "--target", s(&t), o],
        &["2 --ratio values for 1 vectors"],
    );
    fails_with(&["chatvector", "--target", s(&t), o], &["no vector"]);
    fails_with(
        &["chatvector", "--vector", s(&dir.join("nope.safetensors")), "--target", s(&t), o],
        &["nope.safetensors"],
    );
    fails_with(
        &["chatvector", "--base", s(&b), "--chat", s(&c), "--target", s(&t), "--token-map", "x", o],
        &["--token-map x"],
    );
    fails_with(
        &["chatvector", "--base", s(&b), "--chat", s(&c), "--target", s(&t), "--token-map", "1=2", o],
        &["--token-map", "--no-default-skips"],
    );
    fails_with(&["chatvector", "extract", "--base", s(&b), "--chat", s(&c), s(&dir.join("v.bin"))], &[".safetensors"]);
    // A qwen2 target for a llama vector.
    let v = dir.join("v.safetensors");
    llmtool_ok(&["chatvector", "extract", "--base", s(&b), "--chat", s(&c), s(&v), "-q"]);
    fails_with(&["chatvector", "--vector", s(&v), "--target", s(&fixture("qwen2")), o], &["'llama'", "'qwen2'"]);
    assert!(!out.exists(), "nothing written on errors");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real SmolLM2 as F16 (B = T), C = B + a small seeded perturbation: T + 1·(C − B) = C
/// within f16 rounding (embeddings skipped by default stay B's); `--eval-text` reports JSON.
#[test]
fn real_smollm2_ratio_one_gives_chat() {
    let model = real_model();
    let dir = tmp("real");
    let b = dir.join("b.f16.gguf");
    llmtool_ok(&["convert", s(&model), s(&b), "--outtype", "f16", "-q"]);
    let c = dir.join("c.f16.gguf");
    {
        let f = GgufFile::open(&b).unwrap();
        let mut rng = Rng(2310_04799);
        let mut data: Vec<Vec<u8>> = Vec::new();
        for t in &f.tensors {
            let bytes = f.tensor_data(&t.name).unwrap();
            data.push(match t.ty {
                GgmlType::F16 => bytes
                    .chunks_exact(2)
                    .flat_map(|ch| {
                        let x = half::f16::from_le_bytes([ch[0], ch[1]]).to_f32();
                        half::f16::from_f32(x + 0.01 * rng.unit() as f32).to_le_bytes()
                    })
                    .collect(),
                _ => bytes.to_vec(),
            });
        }
        let infos: Vec<TensorInfo> = f.tensors.clone();
        let mut md = f.metadata.clone();
        md.insert("general.name", MetaValue::String("perturbed".into()));
        let header = GgufHeader::new(md, infos).unwrap();
        let mut w = std::io::BufWriter::new(std::fs::File::create(&c).unwrap());
        write_gguf(&mut w, &header, |i, _| Ok(std::borrow::Cow::Borrowed(&data[i][..])), |_| {}).unwrap();
    }
    let out = dir.join("out.gguf");
    // The first lines of WikiText-2 (tokenizing the whole file for each of the four models
    // would dominate the test); two 128-token windows keep it around a minute.
    let full = std::fs::read_to_string(common::wiki_text()).unwrap();
    let text = dir.join("wiki-head.txt");
    std::fs::write(&text, full.lines().take(200).collect::<Vec<_>>().join("\n")).unwrap();
    let o = llmtool_ok(&[
        "chatvector",
        "--base",
        s(&b),
        "--chat",
        s(&c),
        "--target",
        s(&b),
        "--ratio",
        "1",
        s(&out),
        "--eval-text",
        s(&text),
        "--eval-chunks",
        "2",
        "--eval-ctx",
        "128",
        "--json",
        "-q",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints one JSON object");
    assert_eq!(report["pass"], "chatvector");
    assert_eq!(report["reference"], "target");
    assert_eq!(report["inputs"].as_array().unwrap().len(), 3);
    let ppl = report["result"]["ppl"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0, "{report}");
    let (bf, cf, of) = (GgufFile::open(&b).unwrap(), GgufFile::open(&c).unwrap(), GgufFile::open(&out).unwrap());
    assert_eq!(of.tensors, bf.tensors);
    for t in &of.tensors {
        let od = of.tensor_data(&t.name).unwrap();
        if t.name == "token_embd.weight" {
            assert_eq!(od, bf.tensor_data(&t.name).unwrap(), "skipped by default");
            continue;
        }
        let cd = cf.tensor_data(&t.name).unwrap();
        if t.ty != GgmlType::F16 {
            assert_eq!(od, cd, "{}", t.name);
            continue;
        }
        for (i, (x, y)) in od.chunks_exact(2).zip(cd.chunks_exact(2)).enumerate() {
            let (x, y) = (half::f16::from_le_bytes([x[0], x[1]]), half::f16::from_le_bytes([y[0], y[1]]));
            // b + (c − b) in f32 is c unless the difference rounds; allow one f16 step.
            let ulp = (y.to_f32().abs() * 2f32.powi(-10)).max(2f32.powi(-24));
            assert!((x.to_f32() - y.to_f32()).abs() <= ulp, "{}[{i}]: {x} vs {y}", t.name);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
