//! IQ4_NL quantizer, as llama.cpp writes model files: ggml `quantize_iq4_nl` with no
//! importance matrix, i.e. `quantize_row_iq4_nl_impl(QK4_NL, 32, …, kvalues_iq4nl, NULL,
//! ntry = 7)` with weights x². (ggml's `quantize_row_iq4_nl_ref` passes ntry = −1 instead,
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

/// One block with weights x² or from the importance weights `qw`; `simd` selects the AVX2
/// search (16 candidate scales per pass, same bytes).
fn quantize_iq4_nl(x: &[f32], qw: Option<&[f32]>, simd: bool) -> BlockIQ4_NL {
    let x: &[f32; 32] = x.try_into().expect("a block of 32");
    let w: [f32; 32] = match qw {
        Some(qw) => importance(qw, x, sum_squares(x) * (2.0f32 / 32.0)),
        None => squares(x),
    };
    #[cfg(target_arch = "x86_64")]
    if simd && super::k_search::simd_available() {
        // SAFETY: the CPU supports AVX2 (checked by `simd_available`).
        return unsafe { quantize_avx2(x, &w) };
    }
    let _ = simd;
    search(
        x,
        &w,
        |x, w, ids| {
            let fits: [(f32, f32); 16] = std::array::from_fn(|k| fit(x, w, ids[k]));
            (fits.map(|f| f.0), fits.map(|f| f.1))
        },
        |x, id| std::array::from_fn(|j| best_index(id * x[j])),
    )
}

/// ggml `quantize_iq4_nl_impl` (ntry = 7) with weights `w`, the fits of the 16 candidate
/// inverse scales and the final indices computed by `fits` and `indices` (scalar or AVX2:
/// the same values either way).
#[inline(always)]
fn search(
    x: &[f32; 32],
    w: &[f32; 32],
    fits: impl FnOnce(&[f32; 32], &[f32; 32], &[f32; 16]) -> ([f32; 16], [f32; 16]),
    indices: impl FnOnce(&[f32; 32], f32) -> [u8; 32],
) -> BlockIQ4_NL {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let v0 = KVALUES_IQ4NL[0] as f32;
    let mut d = 0.0f32;
    if amax >= GROUP_MAX_EPS {
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
        d = if sumq2[0] > 0.0 { sumqx[0] / sumq2[0] } else { 0.0 };
        let mut best = d * sumqx[0];
        for k in 1..16 {
            if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best * sumq2[k] {
                d = sumqx[k] / sumq2[k];
                best = d * sumqx[k];
            }
        }
    }
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let l = indices(x, id);
    let qs = std::array::from_fn(|j| l[j] | (l[j + 16] << 4));
    BlockIQ4_NL { d: f16::from_f32(d), qs }
}

/// [`search`] with the 16 fits and the final indices computed 8 lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_avx2(x: &[f32; 32], w: &[f32; 32]) -> BlockIQ4_NL {
    use super::q3_iq4_avx2::{iq4_fits, iq4_indices};
    // The closures inherit this function's AVX2 target feature.
    search(x, w, |x, w, ids| iq4_fits(x, w, ids), |x, id| iq4_indices(x, id))
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
