//! AVX2 versions of the candidate-scale loops of `make_qkx2_quants` (Q2_K, Q4_K, Q5_K) and
//! `make_qx_quants` (Q6_K), bit-identical to the scalar ones in `k_search.rs`.
//!
//! Each of the 8 lanes of a vector evaluates one candidate inverse scale, accumulating over
//! the elements in the reference's order with the reference's IEEE operations (multiply
//! then add, never fused), so lane k's sums, scale, minimum and error equal the scalar ones
//! for that candidate bit for bit. The choice among candidates is then made lane by lane
//! in the reference's order by scalar code. `make_qkx2_quants` has one sequential
//! dependency: a winning candidate replaces `min`, which the later candidates use; so after
//! a win the lanes past it are discarded and evaluated again from the next candidate
//! (wins are few: about 2 of the 16–21 candidates per sub-block). The quants of the winner
//! are recomputed with its inverse scale and minimum, as the reference stored them.

use super::k_search::{nearest_int, Qkx2};
use std::arch::x86_64::*;

/// ggml `nearest_int` lane by lane: the same f32 addition and bit operations.
#[target_feature(enable = "avx2")]
pub(super) fn nearest_int_v(v: __m256) -> __m256i {
    let b = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12_582_912.0)));
    _mm256_sub_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x007f_ffff)), _mm256_set1_epi32(0x0040_0000))
}

/// `nearest_int(iscale · v).clamp(lo, hi)` as f32, per lane.
#[target_feature(enable = "avx2")]
fn quant_v(iscale: __m256, v: f32, lo: i32, hi: i32) -> __m256 {
    let l = nearest_int_v(_mm256_mul_ps(iscale, _mm256_set1_ps(v)));
    _mm256_cvtepi32_ps(_mm256_min_epi32(_mm256_max_epi32(l, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi)))
}

pub(super) fn to_array(v: __m256) -> [f32; 8] {
    // SAFETY: both are 32 bytes of plain data.
    unsafe { std::mem::transmute::<__m256, [f32; 8]>(v) }
}

/// The reference's state entering the candidate loop of `make_qkx2_quants`.
pub(super) struct Qkx2State {
    pub max: f32,
    pub min: f32,
    pub scale: f32,
    pub best_error: f32,
    pub sum_w: f32,
    pub sum_x: f32,
}

/// The candidate loop `for is in 0..=nstep` of `make_qkx2_quants`; updates `s` and `l_out`
/// exactly as the reference does.
#[target_feature(enable = "avx2")]
pub(super) fn qkx2_candidates(p: &Qkx2, x: &[f32], weights: &[f32], s: &mut Qkx2State, l_out: &mut [u8]) {
    let n = x.len();
    let nmax = p.nmax as f32;
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let (sum_w, sum_x) = (_mm256_set1_ps(s.sum_w), _mm256_set1_ps(s.sum_x));
    let mut winner = None;
    let mut is0 = 0;
    while is0 <= p.nstep {
        let min = s.min;
        let lanes: [f32; 8] =
            std::array::from_fn(|k| (p.rmin + p.rdelta * (is0 + k as i32) as f32 + nmax) / (s.max - min));
        // SAFETY: `lanes` is 8 f32.
        let iscale = unsafe { _mm256_loadu_ps(lanes.as_ptr()) };
        let (mut sum_l, mut sum_l2, mut sum_xl) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        for i in 0..n {
            let l = quant_v(iscale, x[i] - min, 0, p.nmax);
            let wl = _mm256_mul_ps(_mm256_set1_ps(weights[i]), l);
            sum_l = _mm256_add_ps(sum_l, wl);
            sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, l));
            sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, _mm256_set1_ps(x[i])));
        }
        let d = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
        let mut this_scale = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)), d);
        let mut this_min = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)), d);
        let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(this_min, _mm256_setzero_ps());
        this_min = _mm256_blendv_ps(this_min, _mm256_setzero_ps(), positive);
        this_scale = _mm256_blendv_ps(this_scale, _mm256_div_ps(sum_xl, sum_l2), positive);
        let mut cur_error = _mm256_setzero_ps();
        for i in 0..n {
            let l = quant_v(iscale, x[i] - min, 0, p.nmax);
            let diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(this_scale, l), this_min), _mm256_set1_ps(x[i]));
            let e = if p.use_mad { _mm256_and_ps(diff, abs_mask) } else { _mm256_mul_ps(diff, diff) };
            cur_error = _mm256_add_ps(cur_error, _mm256_mul_ps(_mm256_set1_ps(weights[i]), e));
        }
        let (d, this_scale, this_min, cur_error) =
            (to_array(d), to_array(this_scale), to_array(this_min), to_array(cur_error));
        let count = ((p.nstep - is0 + 1) as usize).min(8);
        let mut next = is0 + count as i32;
        for k in 0..count {
            if d[k] > 0.0 && cur_error[k] < s.best_error {
                s.best_error = cur_error[k];
                s.scale = this_scale[k];
                s.min = this_min[k];
                winner = Some((lanes[k], min));
                // The later lanes used the old minimum: evaluate them again.
                next = is0 + k as i32 + 1;
                break;
            }
        }
        is0 = next;
    }
    if let Some((iscale, min)) = winner {
        for (o, &v) in l_out.iter_mut().zip(x) {
            *o = nearest_int(iscale * (v - min)).clamp(0, p.nmax) as u8;
        }
    }
}

/// The loop over `is` in −9..=9 (not 0) of `make_qx_quants(rmse_type = 1)` with `weights`,
/// entered with the first fit's `scale` and `best`; updates them and `l_out` exactly as the
/// reference.
#[target_feature(enable = "avx2")]
pub(super) fn qx_candidates(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    max: f32,
    scale: &mut f32,
    best: &mut f32,
    l_out: &mut [i8],
) {
    const IS: [i32; 18] = [-9, -8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    let mut winner = None;
    for batch in IS.chunks(8) {
        let lanes: [f32; 8] =
            std::array::from_fn(|k| -(nmax as f32 + 0.1f32 * batch.get(k).copied().unwrap_or(0) as f32) / max);
        // SAFETY: `lanes` is 8 f32.
        let iscale = unsafe { _mm256_loadu_ps(lanes.as_ptr()) };
        let (mut sumlx, mut suml2) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (&v, &w) in x.iter().zip(weights) {
            let l = quant_v(iscale, v, -nmax, nmax - 1);
            let w = _mm256_set1_ps(w);
            // The reference's `w * v * l` and `w * l * l`, left to right.
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w, _mm256_set1_ps(v)), l));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w, l), l));
        }
        let (sumlx, suml2) = (to_array(sumlx), to_array(suml2));
        for k in 0..batch.len() {
            if suml2[k] > 0.0 && sumlx[k] * sumlx[k] > *best * suml2[k] {
                *scale = sumlx[k] / suml2[k];
                *best = *scale * sumlx[k];
                winner = Some(lanes[k]);
            }
        }
    }
    if let Some(iscale) = winner {
        for (o, &v) in l_out.iter_mut().zip(x) {
            *o = (nearest_int(iscale * v).clamp(-nmax, nmax - 1) + nmax) as i8;
        }
    }
}
