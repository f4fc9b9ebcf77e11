//! Importance-weighted quantization (`quant::quantize_rows`, ggml `ggml_quantize_chunk`)
//! against llama.cpp, byte for byte.
//!
//! `tests/data/weighted_input.f32` (8 rows × 768: weight-like rows and the awkward blocks of
//! the K-quant fixture — zeros, constants, outliers, tiny, large, integers — and a zero row)
//! and `weighted_imatrix.f32` (768 weights: exp(normal), some zeros) come from
//! `tests/judges/weighted_input.py`; the expected bytes from llama-cpp-python 0.3.36's
//! vendored `ggml-quants.c` built without FMA contraction, with and without the imatrix:
//!
//! ```text
//! G=/opt/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp/ggml D=kernels/tests/data
//! T="Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL"
//! python3 kernels/tests/judges/weighted_input.py $D
//! python3 kernels/tests/judges/kquant_llamacpp.py rows $G $D/weighted_input.f32 768 \
//!     $D/weighted_imatrix.f32 $D/weighted_expected_imatrix $T
//! python3 kernels/tests/judges/kquant_llamacpp.py rows $G $D/weighted_input.f32 768 - \
//!     $D/weighted_expected_none $T
//! ```
//!
//! Both the fast path (parallel rows, SIMD searches) and the scalar reference are compared;
//! the ignored `matches_llamacpp_live` redoes it on fresh random rows.

mod common;

use common::{data_dir, judge, quantized_rows, read_f32, Rng};
use llmtool_kernels::quant::{quantize_rows, quantize_rows_reference};
use llmtool_kernels::{GgmlType, KernelError};

const N_PER_ROW: usize = 768;

const TYPES: [GgmlType; 10] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
];

fn rows_reference(ty: GgmlType, x: &[f32], n_per_row: usize, imatrix: Option<&[f32]>) -> Vec<u8> {
    let mut out = Vec::new();
    quantize_rows_reference(ty, x, n_per_row, imatrix, &mut out).unwrap();
    out
}

/// Equal bytes, or a report of the first differing blocks with their row and block index.
fn assert_blocks_eq(what: &str, ty: GgmlType, ours: &[u8], theirs: &[u8], n_per_row: usize) {
    assert_eq!(ours.len(), theirs.len(), "{what} {ty}: byte length");
    let size = ty.type_size();
    let per_row = n_per_row / ty.block_size();
    let bad: Vec<String> = ours
        .chunks_exact(size)
        .zip(theirs.chunks_exact(size))
        .enumerate()
        .filter(|(_, (o, t))| o != t)
        .map(|(b, (o, t))| format!("row {} block {}\n ours  {o:02x?}\n judge {t:02x?}", b / per_row, b % per_row))
        .collect();
    assert!(bad.is_empty(), "{what} {ty}: {} blocks differ:\n{}", bad.len(), bad[..bad.len().min(3)].join("\n"));
}

/// The fixture rows against llama.cpp's bytes, fast path and reference.
fn check_fixture(ty: GgmlType, with_imatrix: bool) {
    let x = read_f32(&data_dir().join("weighted_input.f32"));
    let imatrix = read_f32(&data_dir().join("weighted_imatrix.f32"));
    assert_eq!((x.len(), imatrix.len()), (8 * N_PER_ROW, N_PER_ROW));
    let (name, qw) = if with_imatrix { ("imatrix", Some(&imatrix[..])) } else { ("none", None) };
    let want = std::fs::read(data_dir().join(format!("weighted_expected_{name}.{ty}.bin"))).unwrap();
    assert_blocks_eq("reference", ty, &rows_reference(ty, &x, N_PER_ROW, qw), &want, N_PER_ROW);
    assert_blocks_eq("fast", ty, &quantized_rows(ty, &x, N_PER_ROW, qw), &want, N_PER_ROW);
}

macro_rules! fixture_tests {
    ($($m:ident: $ty:expr),* $(,)?) => {$(
        mod $m {
            #[test]
            fn with_imatrix_matches_llamacpp() {
                super::check_fixture($ty, true);
            }

            #[test]
            fn without_imatrix_matches_llamacpp() {
                super::check_fixture($ty, false);
            }
        }
    )*};
}

fixture_tests! {
    q4_0: llmtool_kernels::GgmlType::Q4_0,
    q4_1: llmtool_kernels::GgmlType::Q4_1,
    q5_0: llmtool_kernels::GgmlType::Q5_0,
    q5_1: llmtool_kernels::GgmlType::Q5_1,
    q2_k: llmtool_kernels::GgmlType::Q2_K,
    q3_k: llmtool_kernels::GgmlType::Q3_K,
    q4_k: llmtool_kernels::GgmlType::Q4_K,
    q5_k: llmtool_kernels::GgmlType::Q5_K,
    q6_k: llmtool_kernels::GgmlType::Q6_K,
    iq4_nl: llmtool_kernels::GgmlType::IQ4_NL,
}

fn normal(rng: &mut Rng) -> f32 {
    let u1 = (rng.next_u32() as f64 + 1.0) / (u32::MAX as f64 + 2.0);
    let u2 = rng.next_u32() as f64 / u32::MAX as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// `n_rows` rows of `n_per_row`: scales from 1e-6 to 1e4 by row, some exact zeros, integer
/// rows (ties in the searches); and importance weights exp(1.5·normal) with some zeros.
fn random_rows(seed: u64, n_rows: usize, n_per_row: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng(seed);
    let mut x = Vec::with_capacity(n_rows * n_per_row);
    for r in 0..n_rows {
        let scale = [0.02f32, 1.0, 1e-3, 1e4, 1e-6, 0.05][r % 6];
        for i in 0..n_per_row {
            let v = normal(&mut rng) * scale;
            x.push(match r / 6 % 4 {
                0 => v,
                1 if i % 5 == 0 => 0.0,
                2 => (v * 4.0 / scale).round() * scale / 4.0,
                3 => v.abs(),
                _ => v,
            });
        }
    }
    let qw = (0..n_per_row).map(|i| if i % 97 == 5 { 0.0 } else { (1.5 * normal(&mut rng)).exp() }).collect();
    (x, qw)
}

#[test]
fn fast_path_equals_scalar_reference() {
    let (x, qw) = random_rows(11, 48, 512);
    for ty in TYPES {
        for w in [Some(&qw[..]), None] {
            let what = format!("SIMD vs scalar, imatrix {}", w.is_some());
            assert_blocks_eq(&what, ty, &quantized_rows(ty, &x, 512, w), &rows_reference(ty, &x, 512, w), 512);
        }
    }
}

#[test]
fn parallel_rows_equal_rows_one_at_a_time() {
    let (x, qw) = random_rows(12, 40, 256);
    for ty in TYPES {
        let mut one_by_one = Vec::new();
        for row in x.chunks_exact(256) {
            quantize_rows(ty, row, 256, Some(&qw), &mut one_by_one).unwrap();
        }
        assert_blocks_eq(
            "parallel vs one row at a time",
            ty,
            &quantized_rows(ty, &x, 256, Some(&qw)),
            &one_by_one,
            256,
        );
    }
}

#[test]
fn wrong_imatrix_length_errors_and_appends_nothing() {
    let x = vec![0.5f32; 2 * 512];
    for ty in TYPES {
        for found in [511, 513, 256, 0] {
            let mut out = vec![7u8, 9];
            let qw = vec![1.0f32; found];
            let err = quantize_rows(ty, &x, 512, Some(&qw), &mut out);
            assert_eq!(err, Err(KernelError::ImatrixLength { ty, n_per_row: 512, found }));
            assert_eq!(quantize_rows_reference(ty, &x, 512, Some(&qw), &mut out), err);
            assert_eq!(out, [7, 9], "{ty}: a failed call appends nothing");
        }
    }
}

#[test]
fn appends_after_existing_bytes() {
    let (x, qw) = random_rows(13, 2, 256);
    for ty in TYPES {
        let mut out = vec![1u8, 2, 3];
        quantize_rows(ty, &x, 256, Some(&qw), &mut out).unwrap();
        assert_eq!(&out[..3], [1, 2, 3]);
        assert!(out[3..] == quantized_rows(ty, &x, 256, Some(&qw)), "{ty}");
    }
}

#[test]
fn imatrix_changes_the_result() {
    // A real check that the weights are used: with uneven weights some blocks differ from
    // the unweighted quantization.
    let (x, qw) = random_rows(14, 6, 512);
    for ty in TYPES {
        assert!(quantized_rows(ty, &x, 512, Some(&qw)) != quantized_rows(ty, &x, 512, None), "{ty}: imatrix ignored");
    }
}

/// Fresh random rows against llama.cpp built from source: set LLAMA_CPP_GGML_DIR to a
/// llama.cpp `ggml` directory (with `src/ggml-quants.c`) and run with `--ignored`.
#[test]
#[ignore = "needs a llama.cpp source tree in LLAMA_CPP_GGML_DIR and gcc"]
fn matches_llamacpp_live() {
    let ggml = std::env::var("LLAMA_CPP_GGML_DIR").expect("set LLAMA_CPP_GGML_DIR to llama.cpp's ggml directory");
    let dir = tempfile::tempdir().unwrap();
    let n_per_row = 1536;
    let (x, qw) = random_rows(31, 240, n_per_row);
    let write = |name: &str, v: &[f32]| {
        let path = dir.path().join(name);
        std::fs::write(&path, v.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (inp, imx) = (write("live.f32", &x), write("live_imatrix.f32", &qw));
    let prefix = dir.path().join("live").to_str().unwrap().to_string();
    let names: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
    let mut args = vec!["rows", &ggml, &inp, "1536", &imx, &prefix];
    args.extend(names.iter().map(|s| s.as_str()));
    judge("kquant_llamacpp.py", &args);
    for ty in TYPES {
        let want = std::fs::read(format!("{prefix}.{ty}.bin")).unwrap();
        assert_blocks_eq("llama.cpp live", ty, &quantized_rows(ty, &x, n_per_row, Some(&qw)), &want, n_per_row);
        assert_blocks_eq(
            "llama.cpp live (reference)",
            ty,
            &rows_reference(ty, &x, n_per_row, Some(&qw)),
            &want,
            n_per_row,
        );
    }
}
