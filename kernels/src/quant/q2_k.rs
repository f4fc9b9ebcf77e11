//! Q2_K quantizer, ggml `quantize_row_q2_K_ref`: per 16 elements `make_qkx2_quants`
//! (nmax 3, weights |x|, absolute errors), then the 16 scales and minimums as 4-bit
//! integers against their maxima (d = max_scale / 15, dmin = max_min / 15), then the quants
//! again from the rounded scales: q = clamp(nearest_int((x + dmin·m) / (d·sc)), 0, 3).
//!
//! With an importance matrix, ggml `quantize_row_q2_K_impl`: weights
//! qw·sqrt(σ² + x²) (σ² = Σx²/256 over the super-block), `make_qkx3_quants` (nmax 3,
//! rmin −0.9, rdelta 0.05, 36 steps, squared errors), then the scales and the minimums each
//! by `make_qp_quants` (nmax 15) weighted by the sub-blocks' weight sums; the same
//! requantization.

use super::k_search::{importance, make_qkx2_quants, make_qp_quants, nearest_int, sum_squares, Qkx2};
use super::pack_2bit;
use super::weighted::{each_block, QuantizeWeighted};
use super::QuantizeBlock;
use crate::dequant::BlockQ2_K;
use half::f16;

impl QuantizeBlock for BlockQ2_K {
    fn quantize(x: &[f32]) -> Self {
        quantize_q2_k(x, false)
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        super::k_row_fast(src, out, |x| quantize_q2_k(x, true))
    }
}

/// One block; `simd` selects the SIMD scale search (same bytes).
fn quantize_q2_k(x: &[f32], simd: bool) -> BlockQ2_K {
    let p = Qkx2 { nmax: 3, rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: true };
    let mut l = [0u8; 256];
    let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let weights: [f32; 16] = std::array::from_fn(|i| xs[i].abs());
        (scales[j], mins[j]) = make_qkx2_quants(&p, xs, &weights, &mut l[16 * j..16 * j + 16], simd);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let mut packed = [0u8; 16];
    let d = if max_scale > 0.0 {
        let iscale = 15.0f32 / max_scale;
        for (o, &s) in packed.iter_mut().zip(&scales) {
            // ggml assigns the int to a uint8_t: it wraps.
            *o = nearest_int(iscale * s) as u8;
        }
        f16::from_f32(max_scale / 15.0)
    } else {
        f16::from_f32(0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = 15.0f32 / max_min;
        for (o, &m) in packed.iter_mut().zip(&mins) {
            *o |= (nearest_int(iscale * m) << 4) as u8;
        }
        f16::from_f32(max_min / 15.0)
    } else {
        f16::from_f32(0.0)
    };
    requantize(x, &mut l, packed, d, dmin)
}

/// The quants again from the stored scales (sub-blocks of scale 0 keep the search's), then
/// the block.
fn requantize(x: &[f32], l: &mut [u8; 256], packed: [u8; 16], d: f16, dmin: f16) -> BlockQ2_K {
    for (j, &sc) in packed.iter().enumerate() {
        let dj = d.to_f32() * (sc & 0xF) as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * (sc >> 4) as f32;
        for (o, &v) in l[16 * j..16 * j + 16].iter_mut().zip(&x[16 * j..16 * j + 16]) {
            *o = nearest_int((v + dm) / dj).clamp(0, 3) as u8;
        }
    }
    BlockQ2_K { scales: packed, qs: pack_2bit(l), d, dmin }
}

impl QuantizeWeighted for BlockQ2_K {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        each_block::<Self>(x, qw, out, |x, qw| quantize_q2_k_weighted(x, qw, simd));
    }
}

/// One block with importance weights `qw` (ggml `quantize_row_q2_K_impl`).
fn quantize_q2_k_weighted(x: &[f32], qw: &[f32], simd: bool) -> BlockQ2_K {
    let p = Qkx2 { nmax: 3, rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };
    let sigma2 = sum_squares(x) / 256.0;
    let mut l = [0u8; 256];
    let (mut scales, mut mins, mut sw) = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 16]);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let weights: [f32; 16] = importance(&qw[16 * j..16 * j + 16], xs, sigma2);
        for &w in &weights {
            sw[j] += w;
        }
        (scales[j], mins[j]) = make_qkx2_quants(&p, xs, &weights, &mut l[16 * j..16 * j + 16], simd);
    }
    let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
    let d = f16::from_f32(make_qp_quants(15, &scales, &mut ls, &sw));
    let dmin = f16::from_f32(make_qp_quants(15, &mins, &mut lm, &sw));
    let packed = std::array::from_fn(|j| ls[j] | (lm[j] << 4));
    requantize(x, &mut l, packed, d, dmin)
}
