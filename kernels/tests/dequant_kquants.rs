//! K-quant, i-quant, ternary and MXFP4 dequantization: bitwise against gguf-py
//! (`gguf.quants.dequantize`, llama.cpp's numpy reference) and scalar vs parallel.
//! gguf-py 0.19 has no Q8_K class, so Q8_K is checked against hand-computed values.

mod common;

use common::{assert_bits_eq, dequantized as ours, judge, read_f32, Rng};
use llmtool_kernels::dequant::{dequantize_parallel, dequantize_reference, has_block_codec};
use llmtool_kernels::GgmlType::{self, *};

/// Types gguf-py dequantizes, with the byte offsets of their f16 scale fields
/// (ggml `ggml-common.h` layouts). IQ1_M has no plain f16 field (see `random_blocks`).
const JUDGED: [(GgmlType, &[usize]); 17] = [
    (Q2_K, &[80, 82]),
    (Q3_K, &[108]),
    (Q4_K, &[0, 2]),
    (Q5_K, &[0, 2]),
    (Q6_K, &[208]),
    (IQ4_NL, &[0]),
    (IQ4_XS, &[0]),
    (TQ1_0, &[52]),
    (TQ2_0, &[64]),
    (MXFP4, &[]), // every E8M0 byte is a finite power of two
    (IQ2_XXS, &[0]),
    (IQ2_XS, &[0]),
    (IQ2_S, &[0]),
    (IQ3_XXS, &[0]),
    (IQ3_S, &[0]),
    (IQ1_S, &[0]),
    (IQ1_M, &[]),
];

fn f16_offsets(ty: GgmlType) -> &'static [usize] {
    JUDGED.iter().find(|(t, _)| *t == ty).map_or(&[], |(_, o)| o)
}

/// Random blocks with finite scales: random bytes, then the f16 scale fields overwritten
/// with random finite f16 bit patterns (Q8_K: its f32 `d` with a finite value in ±2^±20;
/// IQ1_M: the four top nibbles of its scale words, which together form the f16).
fn random_blocks(ty: GgmlType, n_blocks: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let size = ty.type_size();
    let mut buf = vec![0u8; n_blocks * size];
    rng.fill(&mut buf);
    for block in buf.chunks_exact_mut(size) {
        for &o in f16_offsets(ty) {
            block[o..o + 2].copy_from_slice(&rng.finite_f16_bits().to_le_bytes());
        }
        if ty == Q8_K {
            let d = (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 2f32.powi(rng.next_u32() as i32 % 41 - 20);
            block[..4].copy_from_slice(&d.to_le_bytes());
        }
        if ty == IQ1_M {
            let d = rng.finite_f16_bits();
            for k in 0..4 {
                let o = 48 + 2 * k;
                let w = u16::from_le_bytes([block[o], block[o + 1]]) & 0x0FFF | ((d >> (4 * k)) & 0xF) << 12;
                block[o..o + 2].copy_from_slice(&w.to_le_bytes());
            }
        }
    }
    buf
}

#[test]
fn random_blocks_equal_gguf_py_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    for (i, &(ty, _)) in JUDGED.iter().enumerate() {
        // 1 and 33 blocks: scalar path; 4100 blocks: above PARALLEL_MIN_BLOCKS, parallel.
        for n_blocks in [1usize, 33, 4100] {
            let src = random_blocks(ty, n_blocks, 77 + i as u64 * 13 + n_blocks as u64);
            let inp = dir.path().join(format!("{ty}-{n_blocks}.bin"));
            let out = dir.path().join(format!("{ty}-{n_blocks}.f32"));
            std::fs::write(&inp, &src).unwrap();
            judge("dequant.py", &["blocks", ty.name(), inp.to_str().unwrap(), out.to_str().unwrap()]);
            let theirs = read_f32(&out);
            // Finite scales rule out NaN (MXFP4's largest exponents do overflow to ±inf, as in
            // ggml; those are compared bitwise too); a constant output would prove nothing.
            assert!(!theirs.iter().any(|v| v.is_nan()), "{ty}: judge produced NaN");
            assert!(theirs.iter().any(|&v| v != theirs[0]), "{ty}: judge output is constant");
            assert_bits_eq(&format!("{ty} × {n_blocks} blocks"), &ours(ty, &src), &theirs);
            let mut reference = vec![f32::NAN; theirs.len()];
            dequantize_reference(ty, &src, &mut reference).unwrap();
            assert_bits_eq(&format!("{ty} × {n_blocks} blocks, scalar"), &reference, &theirs);
        }
    }
}

#[test]
fn parallel_equals_scalar_on_odd_block_counts() {
    for ty in JUDGED.iter().map(|&(t, _)| t).chain([Q8_K]) {
        for n_blocks in [1usize, 33, 4097] {
            let src = random_blocks(ty, n_blocks, n_blocks as u64 + ty.id() as u64);
            let n = n_blocks * ty.block_size();
            let mut reference = vec![0f32; n];
            dequantize_reference(ty, &src, &mut reference).unwrap();
            for chunk in [1usize, 7, 1024] {
                let mut par = vec![f32::NAN; n];
                dequantize_parallel(ty, &src, &mut par, chunk).unwrap();
                assert_bits_eq(&format!("{ty} {n_blocks} blocks, chunk {chunk}"), &par, &reference);
            }
        }
    }
}

#[test]
fn unaligned_input_decodes_like_aligned() {
    for ty in JUDGED.iter().map(|&(t, _)| t).chain([Q8_K]) {
        let src = random_blocks(ty, 9, 5);
        let mut shifted = vec![0u8; src.len() + 1];
        shifted[1..].copy_from_slice(&src);
        let unaligned = &shifted[1..];
        let n = 9 * ty.block_size();
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        dequantize_reference(ty, &src, &mut a).unwrap();
        dequantize_parallel(ty, unaligned, &mut b, 2).unwrap();
        assert_bits_eq(&format!("{ty} unaligned"), &b, &a);
    }
}

/// gguf-py has no Q8_K: check ggml `dequantize_row_q8_K` (y = d · q) on a block built by
/// hand, with d a power of two so every product is exact and computable independently.
#[test]
fn q8_k_hand_computed_block() {
    let d = 0.25f32;
    let mut block = d.to_le_bytes().to_vec();
    let qs: Vec<i8> = (0..256).map(|i| (i - 128) as i8).collect();
    block.extend(qs.iter().map(|&q| q as u8));
    block.extend([0xAAu8; 32]); // bsums: ignored by dequantization
    assert_eq!(block.len(), Q8_K.type_size());
    let y = ours(Q8_K, &block);
    for (i, &v) in y.iter().enumerate() {
        assert_eq!(v, (i as f32 - 128.0) / 4.0, "element {i}");
    }
}

#[test]
fn every_type_here_has_a_codec() {
    for &(ty, _) in &JUDGED {
        assert!(has_block_codec(ty), "{ty}");
    }
    assert!(has_block_codec(Q8_K));
}
