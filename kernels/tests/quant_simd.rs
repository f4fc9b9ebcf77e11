//! The fast quantization path (AVX2 kernels where the CPU has them, rayon chunks) against
//! the scalar reference (`quantize_reference`, which never uses SIMD), byte for byte: odd
//! block counts (1, 31, 33, 1023, 4097 — the last over the parallel threshold), chunk sizes
//! that leave a ragged last chunk, special values, random bit patterns (proptest) and a
//! real-model tensor. On an AVX2 machine the tests first assert that the SIMD kernels are
//! the ones running (`has_simd`), so they fail if a kernel departs from the reference.
//! The reference itself is judged elsewhere (`quant_legacy.rs` against gguf-py,
//! `quant_kquants.rs` against llama.cpp).

mod common;

use common::{judge, read_f32, real_model, Rng};
use llmtool_kernels::quant::{has_simd, quantize, quantize_parallel, quantize_reference};
use llmtool_kernels::GgmlType;
use proptest::prelude::*;

/// The types with a SIMD quantizer on x86_64 (AVX2): row kernels for the legacy formats.
const SIMD_TYPES: [GgmlType; 5] = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1];
/// K-quants whose scale searches have SIMD loops (256-element blocks): candidate scales per
/// vector, or for Q3_K 8 sub-blocks' `make_q3_quants` per vector.
const K_SIMD_TYPES: [GgmlType; 5] = [GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K];
/// 32-element formats with a SIMD scale search (IQ4_NL: 16 candidate scales per block).
const SEARCH_SIMD_TYPES: [GgmlType; 1] = [GgmlType::IQ4_NL];

fn reference(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    quantize_reference(ty, x, &mut out).unwrap();
    out
}

/// Asserts the serial fast path and the parallel path (chunks of `chunks` blocks) equal the
/// reference, naming the first differing block.
fn assert_fast_eq_reference(what: &str, ty: GgmlType, x: &[f32], chunks: &[usize]) {
    let want = reference(ty, x);
    let mut runs = Vec::new();
    let mut fast = Vec::new();
    quantize(ty, x, &mut fast).unwrap();
    runs.push(("quantize".to_string(), fast));
    for &c in chunks {
        let mut par = Vec::new();
        quantize_parallel(ty, x, &mut par, c).unwrap();
        runs.push((format!("chunk {c}"), par));
    }
    let size = ty.type_size();
    for (how, got) in runs {
        assert_eq!(got.len(), want.len(), "{what} {ty} {how}: length");
        if let Some(b) = (0..want.len() / size).find(|&b| got[b * size..][..size] != want[b * size..][..size]) {
            let xs = &x[b * ty.block_size()..][..ty.block_size()];
            panic!(
                "{what} {ty} {how}: block {b} differs\n fast {:02x?}\n ref  {:02x?}\n x {xs:?}",
                &got[b * size..][..size],
                &want[b * size..][..size]
            );
        }
    }
}

#[test]
fn simd_kernels_run_on_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        for ty in SIMD_TYPES.into_iter().chain(K_SIMD_TYPES).chain(SEARCH_SIMD_TYPES) {
            assert!(has_simd(ty), "{ty}: no SIMD kernel on an AVX2 CPU");
        }
        return;
    }
    eprintln!("no AVX2: the fast path is the scalar one");
}

fn normal(rng: &mut Rng) -> f32 {
    let u1 = (rng.next_u32() as f64 + 1.0) / (u32::MAX as f64 + 2.0);
    let u2 = rng.next_u32() as f64 / u32::MAX as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

#[test]
fn odd_block_counts_and_ragged_chunks() {
    for n_blocks in [1usize, 31, 33, 1023, 4097] {
        let mut rng = Rng(n_blocks as u64);
        let x: Vec<f32> = (0..n_blocks * 32).map(|_| normal(&mut rng) * 0.05).collect();
        for ty in SIMD_TYPES.into_iter().chain(SEARCH_SIMD_TYPES) {
            assert_fast_eq_reference(&format!("{n_blocks} blocks"), ty, &x, &[1, 3, 7, 1000]);
        }
    }
}

#[test]
fn k_quants_odd_block_counts_and_ragged_chunks() {
    for n_blocks in [1usize, 31, 33, 1023] {
        let mut rng = Rng(1000 + n_blocks as u64);
        let x: Vec<f32> = (0..n_blocks * 256)
            .map(|i| {
                let v = normal(&mut rng) * 0.02;
                // Some outliers and exact zeros, as in real weights.
                match i % 97 {
                    0 => v * 10.0,
                    1..=3 => 0.0,
                    _ => v,
                }
            })
            .collect();
        for ty in K_SIMD_TYPES {
            assert_fast_eq_reference(&format!("{n_blocks} blocks"), ty, &x, &[1, 5]);
        }
    }
}

/// Blocks of special values: zeros of both signs, constants, huge and tiny (subnormal)
/// magnitudes, one-signed blocks, ties in magnitude, ±∞ and NaN.
fn special_blocks() -> Vec<[f32; 32]> {
    let mut rng = Rng(5);
    let mut rand = |scale: f32| -> [f32; 32] { std::array::from_fn(|_| normal(&mut rng) * scale) };
    let mut b: Vec<[f32; 32]> = vec![
        [0.0; 32],
        [-0.0; 32],
        std::array::from_fn(|i| if i % 2 == 0 { 0.0 } else { -0.0 }),
        std::array::from_fn(|i| if i % 3 == 0 { -0.0 } else { 0.0 }),
        [0.75; 32],
        [-3.0; 32],
        [f32::MAX; 32],
        [-f32::MAX; 32],
        [f32::MIN_POSITIVE; 32],
        [1e-45; 32],
        [-1e-40; 32],
        std::array::from_fn(|i| {
            if i == 7 {
                2.0
            } else if i == 9 {
                -2.0
            } else {
                0.5
            }
        }),
        std::array::from_fn(|i| {
            if i == 7 {
                -2.0
            } else if i == 9 {
                2.0
            } else {
                0.5
            }
        }),
        std::array::from_fn(|i| i as f32 - 16.0),
        std::array::from_fn(|i| (i as f32 + 1.0) * 1e-39),
    ];
    let base = rand(1.0);
    b.push(base.map(|v| v.abs()));
    b.push(base.map(|v| -v.abs()));
    b.push(base.map(|v| v.abs() + 0.0).map(|v| if v < 0.3 { 0.0 } else { v })); // min 0, positive
    b.push(base.map(|v| if v.abs() < 0.3 { -0.0 } else { v.abs() })); // min −0
    b.push(rand(1e30));
    b.push(rand(1e-30));
    b.push(rand(1e-38));
    b.push(rand(3e38));
    for special in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        for at in [0, 13, 31] {
            let mut v = rand(1.0);
            v[at] = special;
            b.push(v);
        }
        b.push([special; 32]);
    }
    let mut v = rand(1.0);
    v[3] = f32::INFINITY;
    v[20] = f32::NEG_INFINITY;
    b.push(v);
    b
}

#[test]
fn special_values_equal_reference() {
    let blocks = special_blocks();
    let x: Vec<f32> = blocks.iter().flatten().copied().collect();
    for ty in SIMD_TYPES.into_iter().chain(SEARCH_SIMD_TYPES) {
        assert_fast_eq_reference("special", ty, &x, &[1, 5]);
    }
    // The same blocks, 8 at a time, as K-quant super-blocks (one padded with zeros).
    let mut xk = x.clone();
    xk.resize(x.len().div_ceil(256) * 256, 0.0);
    for ty in K_SIMD_TYPES {
        assert_fast_eq_reference("special", ty, &xk, &[1]);
    }
    // Q3_K also on raw random bit patterns (NaN, ±∞, subnormals inside sub-blocks).
    let mut rng = Rng(77);
    let xb: Vec<f32> = (0..256 * 16).map(|_| f32::from_bits(rng.next_u32())).collect();
    assert_fast_eq_reference("random bits", GgmlType::Q3_K, &xb, &[1]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any f32 bit patterns (NaN, ±∞, subnormals included), 1..=40 blocks.
    #[test]
    fn random_bit_patterns_equal_reference(bits in prop::collection::vec(any::<u32>(), 32..=32 * 40)) {
        let n = bits.len() / 32 * 32;
        let x: Vec<f32> = bits[..n].iter().map(|&b| f32::from_bits(b)).collect();
        for ty in SIMD_TYPES.into_iter().chain(SEARCH_SIMD_TYPES) {
            assert_fast_eq_reference("random bits", ty, &x, &[3]);
        }
    }

    /// Finite weight-like values with a random per-block scale and exact zeros.
    #[test]
    fn random_weights_equal_reference(
        vals in prop::collection::vec(-1.0f32..1.0, 32..=32 * 40),
        exp in -40i32..40,
        zero_every in 0usize..8,
    ) {
        let n = vals.len() / 32 * 32;
        let scale = 2f32.powi(exp);
        let x: Vec<f32> = vals[..n]
            .iter()
            .enumerate()
            .map(|(i, &v)| if zero_every > 0 && i % (zero_every + 1) == 0 { 0.0 } else { v * scale })
            .collect();
        for ty in SIMD_TYPES.into_iter().chain(SEARCH_SIMD_TYPES) {
            assert_fast_eq_reference("random weights", ty, &x, &[2]);
        }
    }

    /// K-quants: 1..=4 super-blocks of weight-like values at a random scale.
    #[test]
    fn k_quants_random_weights_equal_reference(
        vals in prop::collection::vec(-1.0f32..1.0, 256..=256 * 4),
        exp in -30i32..30,
        zero_every in 0usize..8,
    ) {
        let n = vals.len() / 256 * 256;
        let scale = 2f32.powi(exp);
        let x: Vec<f32> = vals[..n]
            .iter()
            .enumerate()
            .map(|(i, &v)| if zero_every > 0 && i % (zero_every + 1) == 0 { 0.0 } else { v * v * v * scale })
            .collect();
        for ty in K_SIMD_TYPES {
            assert_fast_eq_reference("random weights", ty, &x, &[1]);
        }
    }
}

#[test]
fn real_model_tensor_equal_reference() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let name = "blk.0.ffn_down.weight";
    judge("dequant.py", &["model", model.to_str().unwrap(), dir.path().to_str().unwrap(), name]);
    let x = read_f32(&dir.path().join(format!("{name}.f32")));
    assert!(x.len() >= 100_000 && x.len().is_multiple_of(256), "{name}: {} values", x.len());
    for ty in SIMD_TYPES.into_iter().chain([GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::IQ4_NL]) {
        assert_fast_eq_reference(name, ty, &x, &[64]);
    }
}
