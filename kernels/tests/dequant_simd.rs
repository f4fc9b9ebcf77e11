//! The fast dequantization path (AVX2 kernels where the CPU has them, rayon chunks) against
//! the scalar per-block reference (`dequantize_reference`, never SIMD), bit for bit: odd
//! block counts (1, 31, 33, 1023, 4097), ragged last chunks, unaligned input, random bytes
//! (any f16 scales: subnormal, ±∞, NaN), proptest, and the real model's tensors. On an AVX2
//! machine `has_simd` is asserted first, so a kernel that departs from the reference fails
//! here. (The reference itself is judged against gguf-py in `dequant.rs` and
//! `dequant_kquants.rs`.)

mod common;

use common::{judge, real_model, Rng};
use llmtool_kernels::dequant::{dequantize, dequantize_parallel, dequantize_reference, has_simd};
use llmtool_kernels::GgmlType;
use proptest::prelude::*;

const SIMD_TYPES: [GgmlType; 10] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Equal bits, or both NaN: Rust leaves the payload of a NaN produced from a NaN operand
/// unspecified (the compiler may swap the operands of a multiply), so only NaN-ness is
/// compared there. Names the first difference.
fn assert_same(what: &str, ty: GgmlType, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what} {ty}: length");
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    if let Some(i) = (0..got.len()).find(|&i| !same(got[i], want[i])) {
        panic!(
            "{what} {ty}: element {i} (block {}): fast {} ({:#010x}), reference {} ({:#010x})",
            i / ty.block_size(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

/// Fast serial, fast parallel (several chunk sizes) and unaligned input vs the reference.
fn check(what: &str, ty: GgmlType, src: &[u8]) {
    let n = src.len() / ty.type_size() * ty.block_size();
    let mut want = vec![f32::NAN; n];
    dequantize_reference(ty, src, &mut want).unwrap();
    let mut got = vec![f32::NAN; n];
    dequantize(ty, src, &mut got).unwrap();
    assert_same(&format!("{what} dequantize"), ty, &got, &want);
    for chunk in [1, 3, 1000] {
        let mut got = vec![f32::NAN; n];
        dequantize_parallel(ty, src, &mut got, chunk).unwrap();
        assert_same(&format!("{what} chunk {chunk}"), ty, &got, &want);
    }
    let mut shifted = vec![0u8; src.len() + 1];
    shifted[1..].copy_from_slice(src);
    let mut got = vec![f32::NAN; n];
    dequantize(ty, &shifted[1..], &mut got).unwrap();
    assert_same(&format!("{what} unaligned"), ty, &got, &want);
}

#[test]
fn simd_kernels_run_on_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        for ty in SIMD_TYPES {
            assert!(has_simd(ty), "{ty}: no SIMD kernel on an AVX2 CPU");
        }
        return;
    }
    eprintln!("no AVX2: the fast path is the scalar one");
}

/// Random bytes; with `finite`, every f16 field is overwritten with a finite value.
fn random_blocks(ty: GgmlType, n_blocks: usize, seed: u64, finite: bool) -> Vec<u8> {
    let mut rng = Rng(seed);
    let size = ty.type_size();
    let mut buf = vec![0u8; n_blocks * size];
    rng.fill(&mut buf);
    if finite {
        let f16_at: &[usize] = match ty {
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
            GgmlType::Q2_K => &[80, 82],
            GgmlType::Q3_K => &[108],
            GgmlType::Q6_K => &[208],
            _ => unreachable!(),
        };
        for block in buf.chunks_exact_mut(size) {
            for &at in f16_at {
                block[at..at + 2].copy_from_slice(&rng.finite_f16_bits().to_le_bytes());
            }
        }
    }
    buf
}

#[test]
fn odd_block_counts_random_blocks() {
    for ty in SIMD_TYPES {
        for n_blocks in [1usize, 31, 33, 1023, 4097] {
            for finite in [true, false] {
                let src = random_blocks(ty, n_blocks, n_blocks as u64 * 7 + finite as u64, finite);
                check(&format!("{n_blocks} blocks finite={finite}"), ty, &src);
            }
        }
    }
}

#[test]
fn finite_scales_are_bit_identical_and_finite() {
    // Strict bits (no NaN allowance needed): finite scales give finite values.
    for ty in SIMD_TYPES {
        let src = random_blocks(ty, 257, 99, true);
        let n = 257 * ty.block_size();
        let (mut want, mut got) = (vec![0f32; n], vec![0f32; n]);
        dequantize_reference(ty, &src, &mut want).unwrap();
        dequantize(ty, &src, &mut got).unwrap();
        assert!(want.iter().all(|v| v.is_finite()), "{ty}: reference not finite");
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{ty}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn random_bytes_equal_reference(seed in any::<u64>(), n_blocks in 1usize..50, which in 0usize..10) {
        let ty = SIMD_TYPES[which];
        check("proptest", ty, &random_blocks(ty, n_blocks, seed, false));
    }
}

#[test]
fn real_model_tensors_equal_reference() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let names = ["token_embd.weight", "blk.0.attn_k.weight", "blk.29.ffn_down.weight"];
    let mut args = vec!["model", model.to_str().unwrap(), dir.path().to_str().unwrap()];
    args.extend(names);
    judge("dequant.py", &args);
    let manifest = std::fs::read_to_string(dir.path().join("manifest.tsv")).unwrap();
    let mut seen = Vec::new();
    for line in manifest.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let ty = GgmlType::from_name(f[1]).unwrap();
        let raw = std::fs::read(dir.path().join(format!("{}.raw", f[0]))).unwrap();
        check(f[0], ty, &raw);
        seen.push(ty);
    }
    for ty in [GgmlType::Q8_0, GgmlType::Q4_1] {
        assert!(seen.contains(&ty), "no {ty} tensor compared");
    }
}
