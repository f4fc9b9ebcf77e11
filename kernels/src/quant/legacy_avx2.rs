//! AVX2 row kernels for Q4_0, Q4_1, Q5_0 and Q5_1 (x86_64, chosen at run time by the
//! formats' `quantize_row_fast`), byte-identical to the scalar references in `q4_0.rs` …
//! `q5_1.rs` — and through them to ggml `quantize_row_q*_ref`:
//!
//! - the block statistics are exact whatever the order: the largest magnitude, minimum and
//!   maximum are exact f32 comparisons (NaN lanes are skipped like the reference's `<`/`>`,
//!   because `max_ps(v, acc)` returns `acc` when `v` is NaN); the sign of the element of
//!   largest magnitude is taken from the first element reaching it (a mask of equal lanes),
//!   and a minimum or maximum of ±0 (whose sign only the reference's first-wins order
//!   fixes) falls back to the scalar `min_max`;
//! - d, 1/d and the f16 conversions are the same scalar code as the reference;
//! - each quant is the same IEEE operations lane by lane (`x·id + c`, or `(x − min)·id +
//!   0.5`: a multiply then an add, never fused), then `(v as i32).clamp(0, top)` as
//!   `trunc(min(max(v, 0), top))` — equal for every float, NaN → 0 and ±∞ included.

use super::{inverse, min_max};
use half::f16;
use std::arch::x86_64::*;

/// How one format maps x to a quant: `(x − min)·id + add` (affine) or `x·id + add`.
#[derive(Clone, Copy)]
struct Map {
    id: f32,
    min: Option<f32>,
    add: f32,
    top: f32,
}

/// Loads the 32 values of one block.
#[target_feature(enable = "avx2")]
fn load_block(x: &[f32]) -> [__m256; 4] {
    assert!(x.len() >= 32);
    // SAFETY: `x` holds at least 32 f32 (asserted), read as four unaligned 8-lane vectors.
    std::array::from_fn(|k| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) })
}

#[target_feature(enable = "avx2")]
fn hmax(v: __m256) -> f32 {
    let m4 = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps::<0b01>(m2, m2)))
}

#[target_feature(enable = "avx2")]
fn hmin(v: __m256) -> f32 {
    let m4 = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m2 = _mm_min_ps(m4, _mm_movehl_ps(m4, m4));
    _mm_cvtss_f32(_mm_min_ss(m2, _mm_shuffle_ps::<0b01>(m2, m2)))
}

/// The reference's `signed_absmax`: the first element of largest magnitude, 0 if none.
#[target_feature(enable = "avx2")]
fn signed_absmax(x: &[f32], v: &[__m256; 4]) -> f32 {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let abs = v.map(|v| _mm256_and_ps(v, abs_mask));
    let mut acc = _mm256_setzero_ps();
    for a in abs {
        acc = _mm256_max_ps(a, acc);
    }
    let amax = hmax(acc);
    if amax == 0.0 {
        return 0.0;
    }
    let target = _mm256_set1_ps(amax);
    let mut mask = 0u32;
    for (k, a) in abs.iter().enumerate() {
        mask |= (_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(*a, target)) as u32) << (8 * k);
    }
    x[mask.trailing_zeros() as usize]
}

/// The reference's `min_max` (NaN skipped, the first of tied ±0 kept).
#[target_feature(enable = "avx2")]
fn block_min_max(x: &[f32], v: &[__m256; 4]) -> (f32, f32) {
    let (mut mn, mut mx) = (_mm256_set1_ps(f32::MAX), _mm256_set1_ps(-f32::MAX));
    for &v in v {
        mn = _mm256_min_ps(v, mn);
        mx = _mm256_max_ps(v, mx);
    }
    let (min, max) = (hmin(mn), hmax(mx));
    if min == 0.0 || max == 0.0 {
        return min_max(&x[..32]);
    }
    (min, max)
}

/// The 32 quants of a block as bytes, in element order.
#[target_feature(enable = "avx2")]
fn quants(v: &[__m256; 4], m: Map) -> __m256i {
    let (id, add, top, zero) =
        (_mm256_set1_ps(m.id), _mm256_set1_ps(m.add), _mm256_set1_ps(m.top), _mm256_setzero_ps());
    let q = v.map(|v| {
        let x = match m.min {
            Some(min) => _mm256_sub_ps(v, _mm256_set1_ps(min)),
            None => v,
        };
        let p = _mm256_add_ps(_mm256_mul_ps(x, id), add);
        // max_ps(p, 0) is 0 for a NaN p (the second operand), like Rust's `NaN as i32`.
        _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(p, zero), top))
    });
    // i32 → i16 → i8 packs interleave the 128-bit lanes; the permute restores order.
    let a = _mm256_packs_epi32(q[0], q[1]);
    let b = _mm256_packs_epi32(q[2], q[3]);
    _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Byte j = element j (low nibble) | element j + 16 (high nibble); values masked to 4 bits.
#[target_feature(enable = "avx2")]
fn nibbles(q: __m256i) -> [u8; 16] {
    let low4 = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(_mm256_castsi256_si128(q), low4);
    let hi = _mm_and_si128(_mm256_extracti128_si256::<1>(q), low4);
    // Each byte is < 16, so the 16-bit shift moves no bit across a byte.
    let packed = _mm_or_si128(lo, _mm_slli_epi16::<4>(hi));
    let mut out = [0u8; 16];
    // SAFETY: `out` is 16 bytes, written as one unaligned vector.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), packed) };
    out
}

/// Bit i = bit 4 of quant i (quants < 32: the shift by 3 keeps each byte's bits in it).
#[target_feature(enable = "avx2")]
fn fifth_bits(q: __m256i) -> [u8; 4] {
    (_mm256_movemask_epi8(_mm256_slli_epi16::<3>(q)) as u32).to_le_bytes()
}

/// Q4_0 (18-byte blocks): d = max / −8, q = x·id + 8.5.
#[target_feature(enable = "avx2")]
pub(super) fn quantize_row_q4_0(src: &[f32], out: &mut [u8]) {
    for (x, o) in src.chunks_exact(32).zip(out.chunks_exact_mut(18)) {
        let v = load_block(x);
        let d = signed_absmax(x, &v) / -8.0;
        let q = quants(&v, Map { id: inverse(d), min: None, add: 8.5, top: 15.0 });
        o[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        o[2..].copy_from_slice(&nibbles(q));
    }
}

/// Q4_1 (20-byte blocks): d = (max − min) / 15, q = (x − min)·id + 0.5.
#[target_feature(enable = "avx2")]
pub(super) fn quantize_row_q4_1(src: &[f32], out: &mut [u8]) {
    for (x, o) in src.chunks_exact(32).zip(out.chunks_exact_mut(20)) {
        let v = load_block(x);
        let (min, max) = block_min_max(x, &v);
        let d = (max - min) / 15.0;
        let q = quants(&v, Map { id: inverse(d), min: Some(min), add: 0.5, top: 15.0 });
        o[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        o[2..4].copy_from_slice(&f16::from_f32(min).to_le_bytes());
        o[4..].copy_from_slice(&nibbles(q));
    }
}

/// Q5_0 (22-byte blocks): d = max / −16, q = x·id + 16.5.
#[target_feature(enable = "avx2")]
pub(super) fn quantize_row_q5_0(src: &[f32], out: &mut [u8]) {
    for (x, o) in src.chunks_exact(32).zip(out.chunks_exact_mut(22)) {
        let v = load_block(x);
        let d = signed_absmax(x, &v) / -16.0;
        let q = quants(&v, Map { id: inverse(d), min: None, add: 16.5, top: 31.0 });
        o[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        o[2..6].copy_from_slice(&fifth_bits(q));
        o[6..].copy_from_slice(&nibbles(q));
    }
}

/// Q5_1 (24-byte blocks): d = (max − min) / 31, q = (x − min)·id + 0.5.
#[target_feature(enable = "avx2")]
pub(super) fn quantize_row_q5_1(src: &[f32], out: &mut [u8]) {
    for (x, o) in src.chunks_exact(32).zip(out.chunks_exact_mut(24)) {
        let v = load_block(x);
        let (min, max) = block_min_max(x, &v);
        let d = (max - min) / 31.0;
        let q = quants(&v, Map { id: inverse(d), min: Some(min), add: 0.5, top: 31.0 });
        o[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        o[2..4].copy_from_slice(&f16::from_f32(min).to_le_bytes());
        o[4..8].copy_from_slice(&fifth_bits(q));
        o[8..].copy_from_slice(&nibbles(q));
    }
}
