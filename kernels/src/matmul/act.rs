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

/// One 32-element block the AVX2 way: (f32 d, quants).
fn q8_block(x: &[f32]) -> (f32, [i8; 32]) {
    let max = amax(x);
    let d = max / 127.0;
    let id = if max != 0.0 { 127.0 / max } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(x) {
        // _mm256_round_ps(NEAREST) then _mm256_cvtps_epi32 then saturating packs.
        let r = (v * id).round_ties_even();
        *q = if r.is_nan() { i8::MIN } else { r.clamp(-128.0, 127.0) as i8 };
    }
    (d, qs)
}

/// ggml x86 `quantize_row_q8_0` (AVX2 path), scalar. `x.len()` must be a multiple of 32.
pub fn quantize_row_q8_0(x: &[f32], out: &mut Vec<BlockQ8_0>) {
    for b in x.chunks_exact(32) {
        let (d, qs) = q8_block(b);
        out.push(BlockQ8_0 { d: f16::from_f32(d), qs });
    }
}

/// ggml x86 `quantize_row_q8_1` (AVX2 path), scalar. `x.len()` must be a multiple of 32.
pub fn quantize_row_q8_1(x: &[f32], out: &mut Vec<BlockQ8_1>) {
    for b in x.chunks_exact(32) {
        let (d, qs) = q8_block(b);
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        out.push(BlockQ8_1 { d: f16::from_f32(d), s: f16::from_f32(d * sum as f32), qs });
    }
}
