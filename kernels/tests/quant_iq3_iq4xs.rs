//! IQ4_XS, IQ3_XXS and IQ3_S quantizers against llama.cpp, byte for byte, with and without
//! an importance matrix (`quantize_rows`, i.e. ggml `ggml_quantize_chunk`).
//!
//! `tests/data/iq3_iq4xs_rows.f32` (18 rows × 512: weight-like rows and the nasty cases —
//! zeros, whole zero blocks of 32, ±0, constants, outliers, tiny, large, integers, sparse)
//! and `iq3_iq4xs_imatrix.f32` (exp(normal) with zeros) come from
//! `tests/judges/iq3_iq4xs_input.py tests/data`; the expected bytes from llama-cpp-python
//! 0.3.36's vendored `ggml-quants.c` built without FMA contraction:
//!
//! ```text
//! G=/opt/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml; D=tests/data
//! tests/judges/kquant_llamacpp.py rows $G $D/iq3_iq4xs_rows.f32 512 - $D/iq3_iq4xs_plain IQ4_XS IQ3_XXS IQ3_S
//! tests/judges/kquant_llamacpp.py rows $G $D/iq3_iq4xs_rows.f32 512 $D/iq3_iq4xs_imatrix.f32 $D/iq3_iq4xs_weighted IQ4_XS IQ3_XXS IQ3_S
//! ```
//!
//! The ignored `matches_llamacpp_live` redoes it on fresh random rows (set
//! LLAMA_CPP_GGML_DIR). Plus reconstruction errors through our dequantizers.

mod common;

use common::{assert_blocks_eq, data_dir, dequantized, judge, quantized_rows, read_f32, Rng};
use llmtool_kernels::quant::{can_quantize, quantize, quantize_reference, quantize_rows};
use llmtool_kernels::GgmlType;

const N_PER_ROW: usize = 512;
const TYPES: [GgmlType; 3] = [GgmlType::IQ4_XS, GgmlType::IQ3_XXS, GgmlType::IQ3_S];

fn check_fixture(ty: GgmlType) {
    let x = read_f32(&data_dir().join("iq3_iq4xs_rows.f32"));
    let imatrix = read_f32(&data_dir().join("iq3_iq4xs_imatrix.f32"));
    assert_eq!((x.len(), imatrix.len()), (18 * N_PER_ROW, N_PER_ROW));
    for (name, qw) in [("plain", None), ("weighted", Some(&imatrix[..]))] {
        let want = std::fs::read(data_dir().join(format!("iq3_iq4xs_{name}.{ty:?}.bin"))).unwrap();
        assert_blocks_eq(name, ty, &quantized_rows(ty, &x, N_PER_ROW, qw), &want);
    }
}

#[test]
fn iq4_xs_matches_llamacpp_fixture() {
    check_fixture(GgmlType::IQ4_XS);
}

#[test]
fn iq3_xxs_matches_llamacpp_fixture() {
    check_fixture(GgmlType::IQ3_XXS);
}

#[test]
fn iq3_s_matches_llamacpp_fixture() {
    check_fixture(GgmlType::IQ3_S);
}

#[test]
fn iq4_xs_block_quantizer_is_the_unweighted_row_quantizer() {
    // ggml's `quantize_row_iq4_xs_ref` is `quantize_iq4_xs` with no weights: our block
    // quantizer (scalar reference and SIMD/parallel path) gives the fixture's bytes too.
    let ty = GgmlType::IQ4_XS;
    assert!(can_quantize(ty));
    let x = read_f32(&data_dir().join("iq3_iq4xs_rows.f32"));
    let want = std::fs::read(data_dir().join("iq3_iq4xs_plain.IQ4_XS.bin")).unwrap();
    let (mut reference, mut fast) = (Vec::new(), Vec::new());
    quantize_reference(ty, &x, &mut reference).unwrap();
    quantize(ty, &x, &mut fast).unwrap();
    assert_blocks_eq("reference", ty, &reference, &want);
    assert_blocks_eq("fast", ty, &fast, &want);
}

fn normal(rng: &mut Rng) -> f32 {
    let u1 = (rng.next_u32() as f64 + 1.0) / (u32::MAX as f64 + 2.0);
    let u2 = rng.next_u32() as f64 / u32::MAX as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Σ w·(x − y)² / Σ w·x² over the rows (w = 1 when `imatrix` is None).
fn relative_error(x: &[f32], y: &[f32], imatrix: Option<&[f32]>) -> f64 {
    let (mut err, mut norm) = (0.0f64, 0.0f64);
    for (i, (&a, &b)) in x.iter().zip(y).enumerate() {
        let w = imatrix.map_or(1.0, |m| m[i % m.len()] as f64);
        err += w * ((a - b) as f64).powi(2);
        norm += w * (a as f64).powi(2);
    }
    err / norm
}

#[test]
fn reconstruction_error_is_sane_and_weights_help() {
    let mut rng = Rng(11);
    let n = 1536;
    let x: Vec<f32> = (0..64 * n).map(|_| normal(&mut rng) * 0.02).collect();
    let imatrix: Vec<f32> = (0..n).map(|_| (normal(&mut rng) * 1.5).exp()).collect();
    let err = |ty: GgmlType, qw: Option<&[f32]>, judged_by: Option<&[f32]>| {
        relative_error(&x, &dequantized(ty, &quantized_rows(ty, &x, n, qw)), judged_by)
    };
    let mut last = 0.0;
    // Fewer bits, more error: IQ4_XS (4.25 bpw) < IQ3_S (3.44) < IQ3_XXS (3.06), all far
    // below the signal (a quantizer that lost the values would give about 1).
    for ty in [GgmlType::IQ4_XS, GgmlType::IQ3_S, GgmlType::IQ3_XXS] {
        let plain = err(ty, None, None);
        let (weighted, unweighted) = (err(ty, Some(&imatrix), Some(&imatrix)), err(ty, None, Some(&imatrix)));
        eprintln!(
            "{ty:?}: relative squared error {plain:.4}; imatrix-weighted {unweighted:.4} without, {weighted:.4} with"
        );
        assert!(plain > last && plain < 0.1, "{ty:?} relative error {plain}");
        last = plain;
        // The importance matrix buys lower error where it says the error counts.
        assert!(weighted < 0.9 * unweighted, "{ty:?}: weighted {weighted} vs unweighted {unweighted}");
    }
}

#[test]
fn zero_rows_and_bad_lengths() {
    for ty in TYPES {
        let z = quantized_rows(ty, &[0.0; 512], 512, None);
        assert!(dequantized(ty, &z).iter().all(|&v| v == 0.0), "{ty:?}: zeros come back as zeros");
        let mut out = vec![1u8];
        assert!(quantize_rows(ty, &[0.0; 384], 384, None, &mut out).is_err(), "{ty:?}: rows not of 256");
        assert!(quantize_rows(ty, &[0.0; 512], 512, Some(&[1.0; 256]), &mut out).is_err(), "{ty:?}: imatrix length");
        assert_eq!(out, [1], "a failed call appends nothing");
    }
}

/// Fresh rows against llama.cpp built from source: set LLAMA_CPP_GGML_DIR to a llama.cpp
/// `ggml` directory (with `src/ggml-quants.c`) and run with `--ignored`.
#[test]
#[ignore = "needs a llama.cpp source tree in LLAMA_CPP_GGML_DIR and gcc"]
fn matches_llamacpp_live() {
    let ggml = std::env::var("LLAMA_CPP_GGML_DIR").expect("set LLAMA_CPP_GGML_DIR to llama.cpp's ggml directory");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(2026);
    let n = 1024;
    let mut x: Vec<f32> = Vec::new();
    for r in 0..400 {
        let scale = [0.02f32, 1.0, 1e-3, 1e4, 1e-9][r % 5];
        let kind = r / 5 % 4;
        x.extend((0..n).map(|i| {
            let v = normal(&mut rng) * scale;
            match kind {
                0 => v,
                1 => v.abs(),
                2 => (v * 4.0 / scale).round() * scale / 4.0, // ties
                _ => {
                    if i % 3 == 0 || (i / 32) % 7 == 3 {
                        0.0
                    } else {
                        v
                    }
                }
            }
        }));
    }
    let imatrix: Vec<f32> = (0..n).map(|i| if i % 37 == 0 { 0.0 } else { (normal(&mut rng) * 1.5).exp() }).collect();
    let write = |name: &str, v: &[f32]| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (inp, imat) = (write("live.f32", &x), write("imatrix.f32", &imatrix));
    let names = ["IQ4_XS", "IQ3_XXS", "IQ3_S"];
    for (tag, qw, imat_arg) in [("plain", None, "-"), ("weighted", Some(&imatrix[..]), imat.as_str())] {
        let prefix = dir.path().join(tag);
        let mut args = vec!["rows", &ggml, &inp, "1024", imat_arg, prefix.to_str().unwrap()];
        args.extend(names);
        judge("kquant_llamacpp.py", &args);
        for ty in TYPES {
            let want = std::fs::read(dir.path().join(format!("{tag}.{ty:?}.bin"))).unwrap();
            assert_blocks_eq(tag, ty, &quantized_rows(ty, &x, n, qw), &want);
        }
    }
}
