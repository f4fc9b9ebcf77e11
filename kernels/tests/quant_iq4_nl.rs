//! IQ4_NL quantizer against llama.cpp: `tests/data/kquant_expected.IQ4_NL.bin` holds the
//! bytes of ggml's `quantize_iq4_nl` (no importance matrix — what llama-quantize writes) for
//! the blocks of `tests/data/kquant_input.f32`, made by `tests/judges/kquant_llamacpp.py
//! fixture` from llama-cpp-python 0.3.36's vendored `ggml-quants.c` built without FMA
//! contraction; the ignored `matches_llamacpp_live` redoes it on fresh inputs. Plus round
//! trips through our (gguf-py-judged) dequantizer.

mod common;

use common::{data_dir, judge, read_f32, Rng};
use llmtool_kernels::dequant::dequantize_reference;
use llmtool_kernels::quant::{can_quantize, quantize, quantize_parallel, quantize_reference};
use llmtool_kernels::GgmlType;

const TY: GgmlType = GgmlType::IQ4_NL;

fn reference(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    quantize_reference(TY, x, &mut out).unwrap();
    out
}

fn assert_blocks_eq(what: &str, ours: &[u8], theirs: &[u8], x: &[f32]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: byte length");
    let bad: Vec<String> = ours
        .chunks_exact(18)
        .zip(theirs.chunks_exact(18))
        .enumerate()
        .filter(|(_, (o, t))| o != t)
        .map(|(b, (o, t))| format!("block {b}\n ours  {o:02x?}\n judge {t:02x?}\n x {:?}", &x[32 * b..32 * b + 32]))
        .collect();
    assert!(bad.is_empty(), "{what}: {} blocks differ:\n{}", bad.len(), bad[..bad.len().min(3)].join("\n"));
}

#[test]
fn iq4_nl_is_quantizable() {
    assert!(can_quantize(TY));
}

#[test]
fn matches_llamacpp_fixture() {
    let x = read_f32(&data_dir().join("kquant_input.f32"));
    let want = std::fs::read(data_dir().join("kquant_expected.IQ4_NL.bin")).unwrap();
    assert_eq!(want.len(), x.len() / 32 * 18);
    assert_blocks_eq("llama.cpp fixture", &reference(&x), &want, &x);
    let mut fast = Vec::new();
    quantize(TY, &x, &mut fast).unwrap();
    assert!(fast == want, "quantize vs fixture");
}

fn normal(rng: &mut Rng) -> f32 {
    let u1 = (rng.next_u32() as f64 + 1.0) / (u32::MAX as f64 + 2.0);
    let u2 = rng.next_u32() as f64 / u32::MAX as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Fresh inputs against llama.cpp built from source: set LLAMA_CPP_GGML_DIR to a llama.cpp
/// `ggml` directory (with `src/ggml-quants.c`) and run with `--ignored`.
#[test]
#[ignore = "needs a llama.cpp source tree in LLAMA_CPP_GGML_DIR and gcc"]
fn matches_llamacpp_live() {
    let ggml = std::env::var("LLAMA_CPP_GGML_DIR").expect("set LLAMA_CPP_GGML_DIR to llama.cpp's ggml directory");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(31);
    let mut x: Vec<f32> = Vec::new();
    for b in 0..20_000 {
        let scale = [0.02f32, 1.0, 1e-3, 1e4, 1e-14][b % 5];
        let kind = b / 5 % 4;
        x.extend((0..32).map(|i| {
            let v = normal(&mut rng) * scale;
            match kind {
                0 => v,
                1 => v.abs(),
                2 => (v * 4.0 / scale).round() * scale / 4.0, // ties
                _ => {
                    if i % 3 == 0 {
                        0.0
                    } else {
                        v
                    }
                }
            }
        }));
    }
    let inp = dir.path().join("live.f32");
    std::fs::write(&inp, x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let prefix = dir.path().join("live");
    judge("kquant_llamacpp.py", &["quantize", &ggml, inp.to_str().unwrap(), prefix.to_str().unwrap(), "IQ4_NL"]);
    let want = std::fs::read(dir.path().join("live.IQ4_NL.bin")).unwrap();
    assert_blocks_eq("llama.cpp live", &reference(&x), &want, &x);
}

#[test]
fn zero_block_has_zero_scale_and_middle_indices() {
    // ggml: scale 0, then every index = best_index_int8(0 · x) = 8 (the value 1 is nearest 0).
    for z in [0.0f32, -0.0] {
        let bytes = reference(&[z; 32]);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert!(bytes[2..].iter().all(|&b| b == 0x88), "{bytes:02x?}");
    }
}

#[test]
fn roundtrip_error_is_below_q4_0() {
    let mut rng = Rng(77);
    let x: Vec<f32> = (0..32 * 2000).map(|_| normal(&mut rng) * 0.02).collect();
    let err = |ty: GgmlType| {
        let mut q = Vec::new();
        quantize_reference(ty, &x, &mut q).unwrap();
        let mut y = vec![0f32; x.len()];
        dequantize_reference(ty, &q, &mut y).unwrap();
        (x.iter().zip(&y).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    };
    let (nl, q4) = (err(TY), err(GgmlType::Q4_0));
    eprintln!("rmse IQ4_NL {nl:.3e}, Q4_0 {q4:.3e}");
    // Same 4.5 bits per weight; the non-linear codebook fits normal weights better.
    assert!(nl < q4, "IQ4_NL rmse {nl} not below Q4_0's {q4}");
}

#[test]
fn parallel_equals_reference() {
    let mut rng = Rng(3);
    let x: Vec<f32> = (0..32 * 4099).map(|_| normal(&mut rng)).collect();
    let want = reference(&x);
    for chunk in [1, 7, 1024] {
        let mut par = Vec::new();
        quantize_parallel(TY, &x, &mut par, chunk).unwrap();
        assert!(par == want, "chunk {chunk}");
    }
}
