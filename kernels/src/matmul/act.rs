//! Activation quantizers: f32 rows → the `vec_dot_type` ggml pairs with a weight type.
//!
//! Q8_0 and Q8_1 follow what ggml-cpu RUNS on x86 with AVX2 (`ggml-cpu/arch/x86/quants.c`
//! `quantize_row_q8_0` / `quantize_row_q8_1`), which differs from the portable
//! `quantize_row_q8_0_ref` in `ggml-quants.c`:
//! - the multiplier is `127 / amax` (the reference uses `1 / d` with `d = amax / 127`),
//! - rounding is `_mm256_round_ps(_MM_ROUND_NEAREST)`: nearest, ties to EVEN (the reference
//!   uses `roundf`, ties away from zero),
//! - Q8_1's `s` is `f16(d · Σq)` with the f32 `d` (not the f16-rounded one).
//!
//! The scalar functions here are written to equal that AVX2 code bit for bit (every step is
//! one IEEE f32 operation in the same order; the int32 → int16 → int8 packs saturate, which
//! `clamp(-128, 127)` reproduces; even `_mm256_cvtps_epi32`'s `i32::MIN` for out-of-range
//! values, reached when a subnormal amax makes 127/amax overflow, is reproduced). The AVX2
//! transcription runs where available; tests check the two give the same bytes. Q8_K has no x86-specific quantizer in ggml
//! (`quantize_row_q8_K` calls `quantize_row_q8_K_ref`): the crate's reference Q8_K quantizer
//! is the spec, and [`quantize_q8_k_fast`] its AVX2 transcription (same IEEE operations per
//! element, same integer bit tricks; tested byte for byte against it).

use crate::dequant::{BlockQ8_0, BlockQ8_K};
use half::f16;

/// ggml `block_q8_1`: f16 scale `d`, f16 `s = d · Σ qs`, 32 signed quants (36 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d · Σ qs` (with the unrounded f32 `d`).
    pub s: f16,
    /// Quants.
    pub qs: [i8; 32],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);

/// max |x| over a block, as the AVX2 code reduces it (`_mm256_max_ps` of `andnot(-0.0, x)`);
/// for non-NaN inputs the max is order independent.
fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, &v| if v.abs() > m { v.abs() } else { m })
}

/// Round to nearest, ties to even, for |v| < 2²² (here |v| ≤ 127.5): adding and
/// subtracting 1.5·2²³ leaves no fraction bits and IEEE addition rounds half to even. Same
/// result as `f32::round_ties_even`, which on baseline x86-64 (no SSE4.1) is a libm call.
#[inline(always)]
fn round_half_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// `_mm256_cvtps_epi32` of an already integral value: out of the i32 range or NaN gives the
/// "integer indefinite" `i32::MIN` (reached when amax is subnormal and 127/amax overflows).
fn cvt_i32(r: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// One 32-element block the AVX2 way: (f32 d, quants, wrapping Σ of the int32 values before
/// the saturating packs — ggml's `hsum_i32_8` for Q8_1's `s`).
fn q8_block(x: &[f32]) -> (f32, [i8; 32], i32) {
    let max = amax(x);
    let d = max / 127.0;
    let id = if max != 0.0 { 127.0 / max } else { 0.0 };
    let mut qs = [0i8; 32];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        // _mm256_round_ps(NEAREST), _mm256_cvtps_epi32, then the saturating int32 → int16 →
        // int8 packs.
        let i = cvt_i32(round_half_even(v * id));
        sum = sum.wrapping_add(i);
        *q = i.clamp(-128, 127) as i8;
    }
    (d, qs, sum)
}

/// ggml x86 `quantize_row_q8_0` (AVX2 path), scalar: `x` → `out` (`x.len() == 32·out.len()`).
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (b, o) in x.chunks_exact(32).zip(out) {
        let (d, qs, _) = q8_block(b);
        *o = BlockQ8_0 { d: f16::from_f32(d), qs };
    }
}

/// ggml x86 `quantize_row_q8_1` (AVX2 path), scalar: `x` → `out` (`x.len() == 32·out.len()`).
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (b, o) in x.chunks_exact(32).zip(out) {
        let (d, qs, sum) = q8_block(b);
        *o = BlockQ8_1 { d: f16::from_f32(d), s: f16::from_f32(d * sum as f32), qs };
    }
}

/// Runs a row quantizer over `x` in parallel chunks of whole blocks.
pub(crate) fn quantize_par<B: bytemuck::Pod + Send>(x: &[f32], block: usize, f: fn(&[f32], &mut [B])) -> Vec<B> {
    use rayon::prelude::*;
    // About 8 K values per task.
    let chunk_blocks = (8192 / block).max(1);
    let mut out = vec![B::zeroed(); x.len() / block];
    out.par_chunks_mut(chunk_blocks).zip(x.par_chunks(chunk_blocks * block)).for_each(|(o, xs)| f(xs, o));
    out
}

/// Q8_K rows (ggml `quantize_row_q8_K_ref`, the crate's reference quantizer), with an AVX2
/// transcription when the CPU has it (same bytes).
pub(crate) fn quantize_q8_k_fast(x: &[f32], out: &mut [BlockQ8_K]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        for (b, o) in x.chunks_exact(256).zip(out) {
            // SAFETY: AVX2 detected; `b` holds 256 values.
            *o = unsafe { avx2::q8_k_block(b) };
        }
        return;
    }
    for (b, o) in x.chunks_exact(256).zip(out) {
        *o = <BlockQ8_K as crate::quant::QuantizeBlock>::quantize(b);
    }
}

/// Q8_0 rows, with the AVX2 code when the CPU has it (same bytes as [`quantize_row_q8_0`]).
pub(crate) fn quantize_q8_0_fast(x: &[f32], out: &mut [BlockQ8_0]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        for (b, o) in x.chunks_exact(32).zip(out) {
            // SAFETY: AVX2 detected; `b` holds 32 values.
            let (d, qs, _) = unsafe { avx2::q8_block(b) };
            *o = BlockQ8_0 { d: f16::from_f32(d), qs };
        }
        return;
    }
    quantize_row_q8_0(x, out)
}

/// Q8_1 rows, with the AVX2 code when the CPU has it (same bytes as [`quantize_row_q8_1`]).
pub(crate) fn quantize_q8_1_fast(x: &[f32], out: &mut [BlockQ8_1]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        for (b, o) in x.chunks_exact(32).zip(out) {
            // SAFETY: AVX2 detected; `b` holds 32 values.
            let (d, qs, sum) = unsafe { avx2::q8_block(b) };
            *o = BlockQ8_1 { d: f16::from_f32(d), s: f16::from_f32(d * sum as f32), qs };
        }
        return;
    }
    quantize_row_q8_1(x, out)
}

/// The AVX2 block quantizer, transcribed from ggml `quantize_row_q8_0`/`q8_1` (x86).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// One block of 32: (f32 d, quants, Σ quants).
    ///
    /// # Safety
    /// AVX2 must be available; `x.len() >= 32`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8_block(x: &[f32]) -> (f32, [i8; 32], i32) {
        let p = x.as_ptr();
        let mut v =
            [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
        let sign = _mm256_set1_ps(-0.0);
        let mut m = _mm256_andnot_ps(sign, v[0]);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[1]));
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[2]));
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[3]));
        let mut m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        let max = _mm_cvtss_f32(m4);
        let d = max / 127.0;
        let id = if max != 0.0 { 127.0 / max } else { 0.0 };
        let mul = _mm256_set1_ps(id);
        let mut i = [_mm256_setzero_si256(); 4];
        for j in 0..4 {
            v[j] = _mm256_round_ps(_mm256_mul_ps(v[j], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            i[j] = _mm256_cvtps_epi32(v[j]);
        }
        // ggml: hsum_i32_8(i0 + i1 + i2 + i3), wrapping int32 adds.
        let s = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
        let s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        let s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
        let sum = _mm_cvtsi128_si32(s4);
        let a = _mm256_packs_epi32(i[0], i[1]);
        let b = _mm256_packs_epi32(i[2], i[3]);
        let q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let mut qs = [0i8; 32];
        _mm256_storeu_si256(qs.as_mut_ptr() as *mut __m256i, q);
        (d, qs, sum)
    }

    /// One Q8_K block, as the crate's reference (`quant/q8_k.rs`, ggml `quantize_row_q8_K_ref`):
    /// `max` = the first value of largest magnitude (strict `>` from 0, so NaN never wins),
    /// `iscale = −127 / max`, `q = min(127, nearest_int(iscale·x))` with ggml's magic-number
    /// `nearest_int` (bit for bit, even where `iscale` overflows) truncated to i8, `d = 1 / iscale`,
    /// `bsums` per 16.
    ///
    /// # Safety
    /// AVX2 must be available; `x.len() >= 256`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8_k_block(x: &[f32]) -> super::BlockQ8_K {
        let p = x.as_ptr();
        let sign = _mm256_set1_ps(-0.0);
        // max(|x|, m) keeps m when |x| is NaN, as the scalar `>` does.
        let mut m = _mm256_setzero_ps();
        for j in 0..32 {
            m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * j))), m);
        }
        let mut m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        let amax = _mm_cvtss_f32(m4);
        let mut out = super::BlockQ8_K { d: 0.0, qs: [0; 256], bsums: [0; 16] };
        if amax == 0.0 {
            return out;
        }
        let max = x[..256].iter().copied().find(|v| v.abs() == amax).expect("amax is one of the |x|");
        let iscale = -127.0f32 / max;
        let mul = _mm256_set1_ps(iscale);
        let magic = _mm256_set1_ps(12_582_912.0);
        let (mant, bias, top) =
            (_mm256_set1_epi32(0x007f_ffff), _mm256_set1_epi32(0x0040_0000), _mm256_set1_epi32(127));
        // Low byte of each i32 lane (the scalar `as i8` truncation), 4 per 128-bit half.
        let low = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1, -1,
        );
        for j in 0..32 {
            let v = _mm256_add_ps(_mm256_mul_ps(mul, _mm256_loadu_ps(p.add(8 * j))), magic);
            let n = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), mant), bias);
            let b = _mm256_shuffle_epi8(_mm256_min_epi32(n, top), low);
            let lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(b));
            let hi = _mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1));
            out.qs[8 * j..8 * j + 4].copy_from_slice(&lo.to_le_bytes().map(|b| b as i8));
            out.qs[8 * j + 4..8 * j + 8].copy_from_slice(&hi.to_le_bytes().map(|b| b as i8));
        }
        for (g, s) in out.bsums.iter_mut().enumerate() {
            *s = out.qs[16 * g..16 * g + 16].iter().map(|&q| q as i16).sum();
        }
        out.d = 1.0 / iscale;
        out
    }
}
