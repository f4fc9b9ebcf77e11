//! IQ4_NL quantizer, as llama.cpp writes model files: ggml `quantize_iq4_nl` with no
//! importance matrix, i.e. `quantize_row_iq4_nl_impl(QK4_NL, 32, …, kvalues_iq4nl, NULL,
//! ntry = 7)` with weights x². The per-32 search is shared with IQ4_XS (`iq4_xs.rs`, the
//! same function with super-block 256). (ggml's `quantize_row_iq4_nl_ref` passes ntry = −1 instead,
//! keeps the indices of the first scale and leaves them uninitialised for an all-zero block;
//! llama-quantize never uses it.)
//!
//! Per 32 elements: d₀ = max / 127 (max = the element of largest magnitude, with its sign),
//! indices = the nearest codebook entry of x / d₀ (ggml `best_index_int8`); then the
//! weighted least-squares scale of those indices and of the ones for the 15 inverse scales
//! (itry − 127) / max, itry = −7..=7, keeping the best fit; d is stored as f16 and the
//! indices are recomputed from the f32 d. All in f32, C's order, no fused multiply-adds.
//!
//! With an importance matrix (`quantize_iq4_nl` with `quant_weights`) the same search runs
//! with weights qw·sqrt(σ² + x²), σ² = Σx² · (2/32) over the block.

use super::k_search::{importance, squares, sum_squares, GROUP_MAX_EPS};
use super::weighted::{each_block, QuantizeWeighted};
use super::QuantizeBlock;
use crate::dequant::{BlockIQ4_NL, KVALUES_IQ4NL};
use half::f16;

const NTRY: i32 = 7;

/// ggml `best_index_int8(16, kvalues_iq4nl, x)`: the index of the nearest codebook value,
/// the upper one on ties; a NaN lands on index 15 (every comparison is false).
fn best_index(x: f32) -> u8 {
    let v = |i: usize| KVALUES_IQ4NL[i] as f32;
    if x <= v(0) {
        return 0;
    }
    if x >= v(15) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < v(mav) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - v(mu - 1) < v(mu) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// The weighted sums Σ w·q·x and Σ w·q² of the indices chosen with inverse scale `id`.
fn fit(x: &[f32; 32], w: &[f32; 32], id: f32) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for (&v, &w) in x.iter().zip(w) {
        let q = KVALUES_IQ4NL[best_index(id * v) as usize] as f32;
        sumqx += w * q * v;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

impl QuantizeBlock for BlockIQ4_NL {
    fn quantize(x: &[f32]) -> Self {
        quantize_iq4_nl(x, None, false)
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        super::k_row_fast(src, out, |x| quantize_iq4_nl(x, None, true))
    }
}

impl QuantizeWeighted for BlockIQ4_NL {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        each_block::<Self>(x, qw, out, |x, qw| quantize_iq4_nl(x, Some(qw), simd));
    }
}

/// One IQ4_NL block (`quantize_row_iq4_nl_impl(32, 32, …)`) with importance weights `qw`
/// (32) or none; `simd` selects the AVX2 search (same bytes).
fn quantize_iq4_nl(x: &[f32], qw: Option<&[f32]>, simd: bool) -> BlockIQ4_NL {
    let x: &[f32; 32] = x.try_into().expect("a block of 32");
    let w = weights(x, qw, if qw.is_some() { sigma2(x) } else { 0.0 });
    let d = block_scale(x, &w, simd);
    let l = indices(x, if d != 0.0 { 1.0 / d } else { 0.0 }, simd);
    BlockIQ4_NL { d: f16::from_f32(d), qs: pack_nibbles(&l) }
}

/// ggml `quantize_row_iq4_nl_impl`'s `sigma2`: 2·Σx²/n over the super-block, in C's order.
pub(super) fn sigma2(x: &[f32]) -> f32 {
    sum_squares(x) * (2.0 / x.len() as f32)
}

/// The weights of one block of 32: `qw[j]·√(sigma2 + x[j]²)` with importance weights, x[j]²
/// without (ggml `quantize_row_iq4_nl_impl`).
pub(super) fn weights(x: &[f32; 32], qw: Option<&[f32]>, sigma2: f32) -> [f32; 32] {
    match qw {
        Some(qw) => importance(qw, x, sigma2),
        None => squares(x),
    }
}

/// Element j and j + 16 of each 32 in one byte (low, high nibble).
pub(super) fn pack_nibbles(l: &[u8; 32]) -> [u8; 16] {
    std::array::from_fn(|j| l[j] | (l[j + 16] << 4))
}

/// The scale of one block of 32 with weights `w`: ggml `quantize_row_iq4_nl_impl`'s search
/// with ntry = 7; 0 when |max| < `GROUP_MAX_EPS`. `simd` selects the AVX2 fits.
pub(super) fn block_scale(x: &[f32; 32], w: &[f32; 32], simd: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd && super::k_search::simd_available() {
        // SAFETY: the CPU supports AVX2 (checked by `simd_available`).
        return unsafe { block_scale_avx2(x, w) };
    }
    let _ = simd;
    search(x, w, |x, w, ids| {
        let fits: [(f32, f32); 16] = std::array::from_fn(|k| fit(x, w, ids[k]));
        (fits.map(|f| f.0), fits.map(|f| f.1))
    })
}

/// `best_index(id · x[j])` for the 32 values (AVX2 if `simd` and the CPU has it).
pub(super) fn indices(x: &[f32; 32], id: f32, simd: bool) -> [u8; 32] {
    #[cfg(target_arch = "x86_64")]
    if simd && super::k_search::simd_available() {
        // SAFETY: the CPU supports AVX2 (checked by `simd_available`).
        return unsafe { super::q3_iq4_avx2::iq4_indices(x, id) };
    }
    let _ = simd;
    std::array::from_fn(|j| best_index(id * x[j]))
}

/// ggml `quantize_row_iq4_nl_impl`'s per-block search (ntry = 7) with the fits of the 16
/// candidate inverse scales computed by `fits` (scalar or AVX2: the same values either way).
#[inline(always)]
fn search(
    x: &[f32; 32],
    w: &[f32; 32],
    fits: impl FnOnce(&[f32; 32], &[f32; 32], &[f32; 16]) -> ([f32; 16], [f32; 16]),
) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let v0 = KVALUES_IQ4NL[0] as f32;
    // ggml: first `d = -max/values[0]; id = 1/d;`, then id = (itry + values[0])/max for
    // itry = −NTRY..=NTRY.
    let ids: [f32; 16] = std::array::from_fn(|k| {
        if k == 0 {
            1.0 / (-max / v0)
        } else {
            (k as i32 - 1 - NTRY + KVALUES_IQ4NL[0] as i32) as f32 / max
        }
    });
    let (sumqx, sumq2) = fits(x, w, &ids);
    let mut d = if sumq2[0] > 0.0 { sumqx[0] / sumq2[0] } else { 0.0 };
    let mut best = d * sumqx[0];
    for k in 1..16 {
        if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best * sumq2[k] {
            d = sumqx[k] / sumq2[k];
            best = d * sumqx[k];
        }
    }
    d
}

/// [`search`] with the 16 fits computed 8 lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn block_scale_avx2(x: &[f32; 32], w: &[f32; 32]) -> f32 {
    use super::q3_iq4_avx2::iq4_fits;
    // The closure inherits this function's AVX2 target feature.
    search(x, w, |x, w, ids| iq4_fits(x, w, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_index_picks_nearest_and_upper_on_ties() {
        assert_eq!(best_index(-1000.0), 0);
        assert_eq!(best_index(1000.0), 15);
        assert_eq!(best_index(0.0), 8); // |0 − (−10)| = 10 > |1 − 0|
        assert_eq!(best_index(-4.5), 8); // tie between −10 and 1: the upper one
        assert_eq!(best_index(-4.6), 7);
        assert_eq!(best_index(f32::NAN), 15);
        for (i, &v) in KVALUES_IQ4NL.iter().enumerate() {
            assert_eq!(best_index(v as f32) as usize, i);
        }
    }
}
