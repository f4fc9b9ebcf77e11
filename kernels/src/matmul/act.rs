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
//! `clamp(-128, 127)` reproduces). Q8_K has no x86-specific quantizer in ggml
//! (`quantize_row_q8_K` calls `quantize_row_q8_K_ref`), so the crate's reference Q8_K quantizer
//! is used as is.

use crate::dequant::BlockQ8_0;
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

/// One 32-element block the AVX2 way: (f32 d, quants).
fn q8_block(x: &[f32]) -> (f32, [i8; 32]) {
    let max = amax(x);
    let d = max / 127.0;
    let id = if max != 0.0 { 127.0 / max } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(x) {
        // _mm256_round_ps(NEAREST) then _mm256_cvtps_epi32 then saturating packs.
        let r = round_half_even(v * id);
        *q = if r.is_nan() { i8::MIN } else { r.clamp(-128.0, 127.0) as i8 };
    }
    (d, qs)
}

/// ggml x86 `quantize_row_q8_0` (AVX2 path), scalar: `x` → `out` (`x.len() == 32·out.len()`).
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (b, o) in x.chunks_exact(32).zip(out) {
        let (d, qs) = q8_block(b);
        *o = BlockQ8_0 { d: f16::from_f32(d), qs };
    }
}

/// ggml x86 `quantize_row_q8_1` (AVX2 path), scalar: `x` → `out` (`x.len() == 32·out.len()`).
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (b, o) in x.chunks_exact(32).zip(out) {
        let (d, qs) = q8_block(b);
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        *o = BlockQ8_1 { d: f16::from_f32(d), s: f16::from_f32(d * sum as f32), qs };
    }
}

/// Runs a row quantizer over `x` in parallel chunks of whole blocks.
pub(crate) fn quantize_par<B: bytemuck::Pod + Send>(x: &[f32], f: fn(&[f32], &mut [B])) -> Vec<B> {
    use rayon::prelude::*;
    const CHUNK_BLOCKS: usize = 256;
    let mut out = vec![B::zeroed(); x.len() / 32];
    out.par_chunks_mut(CHUNK_BLOCKS).zip(x.par_chunks(CHUNK_BLOCKS * 32)).for_each(|(o, xs)| f(xs, o));
    out
}
