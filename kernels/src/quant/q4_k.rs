//! Q4_K quantizer, ggml `quantize_row_q4_K_ref`, and the scale search it shares with Q5_K:
//! per 32 elements `make_qkx2_quants` with weights av_x + |x| (av_x = the sub-block's RMS),
//! then the 8 scales and 8 minimums as 6-bit integers against their maxima
//! (d = max_scale / 63, dmin = max_min / 63), then the quants again from the rounded
//! scales: q = clamp(nearest_int((x + dmin·m) / (d·sc)), 0, nmax).

use super::k_search::{make_qkx2_quants, nearest_int, Qkx2};
use super::QuantizeBlock;
use crate::dequant::k_quants::K_SCALE_SIZE;
use crate::dequant::BlockQ4_K;
use half::f16;

/// The scales of a Q4_K/Q5_K super-block and its quants `L[i] ∈ [0, p.nmax]`, in order.
pub(super) struct K4Scales {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub l: [u8; 256],
}

pub(super) fn quantize_k4(x: &[f32], p: &Qkx2, simd: bool) -> K4Scales {
    let mut l = [0u8; 256];
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|i| av_x + xs[i].abs());
        (scales[j], mins[j]) = make_qkx2_quants(p, xs, &weights, &mut l[32 * j..32 * j + 32], simd);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; K_SCALE_SIZE];
    let (mut ls_all, mut lm_all) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        // ggml stores nearest_int into a uint8_t (wrapping) before capping at 63.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        (ls_all[j], lm_all[j]) = (ls, lm);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    for j in 0..8 {
        // ggml reads them back with `get_scale_min_k4`, which returns these 6-bit values.
        let (sc, m) = (ls_all[j], lm_all[j]);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            // ggml keeps the quants of the search for such a sub-block.
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for (o, &v) in l[32 * j..32 * j + 32].iter_mut().zip(&x[32 * j..32 * j + 32]) {
            *o = nearest_int((v + dm) / dj).clamp(0, p.nmax) as u8;
        }
    }
    K4Scales { d, dmin, scales: packed, l }
}

impl QuantizeBlock for BlockQ4_K {
    fn quantize(x: &[f32]) -> Self {
        quantize_q4_k(x, false)
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        super::k_row_fast(src, out, |x| quantize_q4_k(x, true))
    }
}

/// One block; `simd` selects the SIMD scale search (same bytes).
fn quantize_q4_k(x: &[f32], simd: bool) -> BlockQ4_K {
    let p = Qkx2 { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
    let k = quantize_k4(x, &p, simd);
    let mut qs = [0u8; 128];
    for (g, q) in qs.chunks_exact_mut(32).enumerate() {
        let l = &k.l[64 * g..64 * g + 64];
        for i in 0..32 {
            q[i] = l[i] | (l[i + 32] << 4);
        }
    }
    BlockQ4_K { d: k.d, dmin: k.dmin, scales: k.scales, qs }
}
