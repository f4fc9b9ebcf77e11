//! AVX2 versions of the Q3_K search (`make_q3_quants`, 8 sub-blocks at once) and of the
//! IQ4_NL scale search (the 16 candidate inverse scales at once), bit-identical to the
//! scalar ones in `k_search.rs` and `iq4_nl.rs`.
//!
//! `make_q3_quants`'s refinement is sequential within a sub-block (each change updates the
//! sums the next element uses) but the 16 sub-blocks of a Q3_K block are independent, so
//! lane k runs sub-block k's whole algorithm: the same f32 operations in the same order,
//! never fused, with the scalar branches as lane masks (a lane that changed nothing in a
//! pass stops, as the scalar loop's `break`). IQ4_NL's candidates are independent sums, so
//! lane k accumulates candidate k's sums in the reference's order; the choice among them
//! stays scalar, in the reference's order.

use super::k_search::GROUP_MAX_EPS;
use super::k_search_avx2::{nearest_int_v, to_array};
use crate::dequant::KVALUES_IQ4NL;
use std::arch::x86_64::*;

/// `make_q3_quants(4, …)` for the 8 sub-blocks of 16 in `x` (128 values): writes their
/// quants to `l_out` and returns their scales, as the scalar function does for each.
#[target_feature(enable = "avx2")]
pub(super) fn make_q3_quants_x8(x: &[f32], l_out: &mut [i8]) -> [f32; 8] {
    const NMAX: i32 = 4;
    // Element i of every sub-block, lane k = sub-block k.
    let xt: [__m256; 16] = std::array::from_fn(|i| {
        let col: [f32; 8] = std::array::from_fn(|k| x[16 * k + i]);
        // SAFETY: `col` is 8 f32.
        unsafe { _mm256_loadu_ps(col.as_ptr()) }
    });
    let maxes: [(f32, f32); 8] = std::array::from_fn(|k| {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in &x[16 * k..16 * k + 16] {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        (max, amax)
    });
    let max_v: [f32; 8] = std::array::from_fn(|k| maxes[k].0);
    // SAFETY: `max_v` is 8 f32.
    let max = unsafe { _mm256_loadu_ps(max_v.as_ptr()) };
    let (lo, hi) = (_mm256_set1_epi32(-NMAX), _mm256_set1_epi32(NMAX - 1));
    let quant = |v: __m256| _mm256_min_epi32(_mm256_max_epi32(nearest_int_v(v), lo), hi);
    let iscale = _mm256_div_ps(_mm256_set1_ps(-(NMAX as f32)), max);
    let mut l = [_mm256_setzero_si256(); 16];
    let (mut sumlx, mut suml2) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in 0..16 {
        let v = xt[i];
        l[i] = quant(_mm256_mul_ps(iscale, v));
        let lf = _mm256_cvtepi32_ps(l[i]);
        let w = _mm256_mul_ps(v, v);
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w, v), lf));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w, lf), lf));
    }
    let zero = _mm256_setzero_ps();
    let mut active = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for _ in 0..5 {
        let mut changed = _mm256_setzero_ps();
        for i in 0..16 {
            let v = xt[i];
            let w = _mm256_mul_ps(v, v);
            let cur = _mm256_cvtepi32_ps(l[i]);
            let slx = _mm256_sub_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(w, v), cur));
            let c1 = _mm256_cmp_ps::<_CMP_GT_OQ>(slx, zero);
            let sl2 = _mm256_sub_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w, cur), cur));
            let new_l = quant(_mm256_div_ps(_mm256_mul_ps(v, sl2), slx));
            let c2 = _mm256_xor_ps(
                _mm256_castsi256_ps(_mm256_cmpeq_epi32(new_l, l[i])),
                _mm256_castsi256_ps(_mm256_set1_epi32(-1)),
            );
            let nl = _mm256_cvtepi32_ps(new_l);
            let slx = _mm256_add_ps(slx, _mm256_mul_ps(_mm256_mul_ps(w, v), nl));
            let sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(w, nl), nl));
            let c3 = _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(sl2, zero),
                _mm256_cmp_ps::<_CMP_GT_OQ>(
                    _mm256_mul_ps(_mm256_mul_ps(slx, slx), suml2),
                    _mm256_mul_ps(_mm256_mul_ps(sumlx, sumlx), sl2),
                ),
            );
            let upd = _mm256_and_ps(_mm256_and_ps(active, c1), _mm256_and_ps(c2, c3));
            l[i] = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(l[i]), _mm256_castsi256_ps(new_l), upd));
            sumlx = _mm256_blendv_ps(sumlx, slx, upd);
            suml2 = _mm256_blendv_ps(suml2, sl2, upd);
            changed = _mm256_or_ps(changed, upd);
        }
        active = _mm256_and_ps(active, changed);
        if _mm256_movemask_ps(active) == 0 {
            break;
        }
    }
    let (sumlx, suml2) = (to_array(sumlx), to_array(suml2));
    let l: [[i32; 8]; 16] = l.map(|v| {
        // SAFETY: both are 32 bytes of plain data.
        unsafe { std::mem::transmute::<__m256i, [i32; 8]>(v) }
    });
    std::array::from_fn(|k| {
        let out = &mut l_out[16 * k..16 * k + 16];
        if maxes[k].1 < GROUP_MAX_EPS {
            out.fill(0);
            return 0.0;
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = (l[i][k] + NMAX) as i8;
        }
        if suml2[k] > 0.0 {
            sumlx[k] / suml2[k]
        } else {
            0.0
        }
    })
}

/// The IQ4_NL codebook as two vectors of 8 (entries 0–7, 8–15).
#[target_feature(enable = "avx2")]
fn codebook() -> (__m256, __m256) {
    let v: [f32; 16] = KVALUES_IQ4NL.map(|k| k as f32);
    // SAFETY: `v` is 16 f32.
    unsafe { (_mm256_loadu_ps(v.as_ptr()), _mm256_loadu_ps(v.as_ptr().add(8))) }
}

/// Codebook entry `idx` (0..=15) per lane, as f32.
#[target_feature(enable = "avx2")]
fn lookup(book: (__m256, __m256), idx: __m256i) -> __m256 {
    let high = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
    _mm256_blendv_ps(_mm256_permutevar8x32_ps(book.0, idx), _mm256_permutevar8x32_ps(book.1, idx), high)
}

/// `iq4_nl::best_index` per lane: strictly between the end values, ml = the number of
/// entries 1..=14 ≤ x, so v(ml) ≤ x < v(ml + 1) (the binary search's mu − 1 and mu), then
/// the same comparison `x − v(mu−1) < v(mu) − x`; x ≤ v(0) → 0, x ≥ v(15) or NaN → 15.
#[target_feature(enable = "avx2")]
fn best_index_v(book: (__m256, __m256), x: __m256) -> __m256i {
    let mut ml = _mm256_setzero_si256();
    for &k in &KVALUES_IQ4NL[1..15] {
        let le = _mm256_cmp_ps::<_CMP_LE_OQ>(_mm256_set1_ps(k as f32), x);
        ml = _mm256_sub_epi32(ml, _mm256_castps_si256(le));
    }
    let mu = _mm256_add_epi32(ml, _mm256_set1_epi32(1));
    let (vl, vu) = (lookup(book, ml), lookup(book, mu));
    let lower = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_sub_ps(x, vl), _mm256_sub_ps(vu, x));
    let idx = _mm256_add_epi32(mu, _mm256_castps_si256(lower));
    let first = _mm256_cmp_ps::<_CMP_LE_OQ>(x, _mm256_set1_ps(KVALUES_IQ4NL[0] as f32));
    let last = _mm256_cmp_ps::<_CMP_NLT_UQ>(x, _mm256_set1_ps(KVALUES_IQ4NL[15] as f32));
    let idx = _mm256_andnot_si256(_mm256_castps_si256(first), idx);
    _mm256_blendv_epi8(idx, _mm256_set1_epi32(15), _mm256_castps_si256(last))
}

/// `iq4_nl::fit` for 16 inverse scales at once: (Σ w·q·x, Σ w·q²) per candidate.
#[target_feature(enable = "avx2")]
pub(super) fn iq4_fits(x: &[f32; 32], w: &[f32; 32], ids: &[f32; 16]) -> ([f32; 16], [f32; 16]) {
    let book = codebook();
    let (mut sumqx, mut sumq2) = ([0.0f32; 16], [0.0f32; 16]);
    for half in 0..2 {
        // SAFETY: `ids` has 16 f32.
        let id = unsafe { _mm256_loadu_ps(ids.as_ptr().add(8 * half)) };
        let (mut sx, mut s2) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (&v, &wi) in x.iter().zip(w) {
            let v = _mm256_set1_ps(v);
            let q = lookup(book, best_index_v(book, _mm256_mul_ps(id, v)));
            let wq = _mm256_mul_ps(_mm256_set1_ps(wi), q);
            sx = _mm256_add_ps(sx, _mm256_mul_ps(wq, v));
            s2 = _mm256_add_ps(s2, _mm256_mul_ps(wq, q));
        }
        sumqx[8 * half..8 * half + 8].copy_from_slice(&to_array(sx));
        sumq2[8 * half..8 * half + 8].copy_from_slice(&to_array(s2));
    }
    (sumqx, sumq2)
}

/// `best_index(id · x[j])` for the 32 values.
#[target_feature(enable = "avx2")]
pub(super) fn iq4_indices(x: &[f32; 32], id: f32) -> [u8; 32] {
    let book = codebook();
    let mut out = [0u8; 32];
    for (c, o) in x.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
        // SAFETY: `c` is 8 f32.
        let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
        let idx = best_index_v(book, _mm256_mul_ps(_mm256_set1_ps(id), v));
        // SAFETY: both are 32 bytes of plain data.
        let idx = unsafe { std::mem::transmute::<__m256i, [i32; 8]>(idx) };
        for (o, i) in o.iter_mut().zip(idx) {
            *o = i as u8;
        }
    }
    out
}
