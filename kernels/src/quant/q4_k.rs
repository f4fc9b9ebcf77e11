//! Q4_K quantizer, ggml `quantize_row_q4_K_ref`, and the scale search it shares with Q5_K:
//! per 32 elements `make_qkx2_quants` with weights av_x + |x| (av_x = the sub-block's RMS),
//! then the 8 scales and 8 minimums as 6-bit integers against their maxima
//! (d = max_scale / 63, dmin = max_min / 63), then the quants again from the rounded
//! scales: q = clamp(nearest_int((x + dmin·m) / (d·sc)), 0, nmax).
//!
//! With an importance matrix see [`quantize_k4_weighted`] (ggml `quantize_row_q4_K_impl`).

use super::k_search::{importance, make_qkx2_quants, make_qp_quants, nearest_int, sum_squares, Qkx2};
use super::weighted::{each_block, QuantizeWeighted};
use super::QuantizeBlock;
use crate::dequant::k_quants::{scale_min_k4, K_SCALE_SIZE};
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
        let av_x = (sum_squares(xs) / 32.0).sqrt();
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
    // ggml stores nearest_int into a uint8_t (wrapping) before capping at 63.
    let ls = scales.map(|s| (nearest_int(inv_scale * s) as u8).min(63));
    let lm = mins.map(|m| (nearest_int(inv_min * m) as u8).min(63));
    let (d, dmin) = (f16::from_f32(max_scale / 63.0), f16::from_f32(max_min / 63.0));
    requantize_k4(x, p.nmax, l, pack_scales_k4(&ls, &lm), d, dmin)
}

/// ggml's packing of the 8 scales and 8 minimums of a Q4_K/Q5_K super-block into 12 bytes
/// (values above 63 lose their high bits as in ggml's `uint8_t` stores; see
/// `dequant::k_quants::scale_min_k4` for the layout).
fn pack_scales_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut packed = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        let (ls, lm) = (ls[j], lm[j]);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    packed
}

/// The quants again from the stored scales (read back with ggml `get_scale_min_k4`);
/// sub-blocks of scale 0 keep the search's quants, as in ggml.
fn requantize_k4(x: &[f32], nmax: i32, mut l: [u8; 256], scales: [u8; K_SCALE_SIZE], d: f16, dmin: f16) -> K4Scales {
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &scales);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for (o, &v) in l[32 * j..32 * j + 32].iter_mut().zip(&x[32 * j..32 * j + 32]) {
            *o = nearest_int((v + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    K4Scales { d, dmin, scales, l }
}

/// ggml `quantize_row_q4_K_impl` / `quantize_row_q5_K_impl` for one super-block with
/// importance weights `qw`: weights qw·sqrt(σ² + x²) (σ² = 2·Σx²/256), `make_qkx3_quants`
/// (rmin −0.9, rdelta 0.05, 36 steps, squared errors) per 32 elements, then the scales and
/// the minimums each by `make_qp_quants` (nmax 63) weighted by the sub-blocks' weight sums.
/// Q5_K caps the 6-bit values at 63 (`cap63`), Q4_K does not (they never exceed it unless
/// `make_qp_quants` wraps a negative quant).
pub(super) fn quantize_k4_weighted(x: &[f32], qw: &[f32], nmax: i32, cap63: bool, simd: bool) -> K4Scales {
    let p = Qkx2 { nmax, rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };
    let sigma2 = 2.0 * sum_squares(x) / 256.0;
    let mut l = [0u8; 256];
    let (mut scales, mut mins, mut sw) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let weights: [f32; 32] = importance(&qw[32 * j..32 * j + 32], xs, sigma2);
        for &w in &weights {
            sw[j] += w;
        }
        (scales[j], mins[j]) = make_qkx2_quants(&p, xs, &weights, &mut l[32 * j..32 * j + 32], simd);
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d = f16::from_f32(make_qp_quants(63, &scales, &mut ls, &sw));
    let dmin = f16::from_f32(make_qp_quants(63, &mins, &mut lm, &sw));
    if cap63 {
        (ls, lm) = (ls.map(|v| v.min(63)), lm.map(|v| v.min(63)));
    }
    requantize_k4(x, nmax, l, pack_scales_k4(&ls, &lm), d, dmin)
}

impl QuantizeBlock for BlockQ4_K {
    fn quantize(x: &[f32]) -> Self {
        quantize_q4_k(x, false)
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        super::k_row_fast(src, out, |x| quantize_q4_k(x, true))
    }
}

impl QuantizeWeighted for BlockQ4_K {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        each_block::<Self>(x, qw, out, |x, qw| block_q4_k(quantize_k4_weighted(x, qw, 15, false, simd)));
    }
}

/// One block; `simd` selects the SIMD scale search (same bytes).
fn quantize_q4_k(x: &[f32], simd: bool) -> BlockQ4_K {
    let p = Qkx2 { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
    block_q4_k(quantize_k4(x, &p, simd))
}

/// Packs the 4-bit quants: byte i of group g holds elements 64·g + i (low nibble) and
/// 64·g + 32 + i (high nibble).
fn block_q4_k(k: K4Scales) -> BlockQ4_K {
    let mut qs = [0u8; 128];
    for (g, q) in qs.chunks_exact_mut(32).enumerate() {
        let l = &k.l[64 * g..64 * g + 64];
        for i in 0..32 {
            q[i] = l[i] | (l[i + 32] << 4);
        }
    }
    BlockQ4_K { d: k.d, dmin: k.dmin, scales: k.scales, qs }
}
