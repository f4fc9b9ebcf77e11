//! Q6_K quantizer, ggml `quantize_row_q6_K_ref`: per 16 elements `make_qx_quants` (nmax 32,
//! x²-weighted), then the 16 sub-block scales as int8 against the one of largest magnitude
//! (iscale = −128 / max_scale, d = 1 / iscale), then the quants again from the rounded
//! scales: q = clamp(nearest_int(x / (d·sc)), −32, 31) + 32.
//!
//! With an importance matrix (ggml `quantize_row_q6_K_impl`) the only change is that
//! `make_qx_quants` weights the errors by the importance weights themselves instead of x²
//! (ggml leaves its `sqrtf(sigma2 + x²)` factor commented out for Q6_K).

use super::k_search::{make_qx_quants, nearest_int, squares, GROUP_MAX_EPS};
use super::weighted::QuantizeWeighted;
use super::QuantizeBlock;
use crate::dequant::BlockQ6_K;
use bytemuck::Zeroable;
use half::f16;

impl QuantizeBlock for BlockQ6_K {
    fn quantize(x: &[f32]) -> Self {
        quantize_q6_k(x, None, false)
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        super::k_row_fast(src, out, |x| quantize_q6_k(x, None, true))
    }
}

impl QuantizeWeighted for BlockQ6_K {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        super::weighted::each_block::<Self>(x, qw, out, |x, qw| quantize_q6_k(x, Some(qw), simd));
    }
}

/// One block with ggml's x² weights or the block's importance weights `qw`; `simd` selects
/// the SIMD scale search (same bytes).
fn quantize_q6_k(x: &[f32], qw: Option<&[f32]>, simd: bool) -> BlockQ6_K {
    let mut l = [0i8; 256];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for (ib, s) in scales.iter_mut().enumerate() {
        let xs = &x[16 * ib..16 * ib + 16];
        let x2: [f32; 16];
        let w = match qw {
            Some(qw) => &qw[16 * ib..16 * ib + 16],
            None => {
                x2 = squares(xs);
                &x2
            }
        };
        *s = make_qx_quants(32, xs, w, &mut l[16 * ib..16 * ib + 16], simd);
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = *s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        return BlockQ6_K::zeroed();
    }
    let iscale = -128.0f32 / max_scale;
    let d = f16::from_f32(1.0 / iscale);
    let sc: [i8; 16] = std::array::from_fn(|ib| nearest_int(iscale * scales[ib]).min(127) as i8);
    for (j, &s) in sc.iter().enumerate() {
        let dj = d.to_f32() * s as f32;
        if dj == 0.0 {
            continue;
        }
        for (o, &v) in l[16 * j..16 * j + 16].iter_mut().zip(&x[16 * j..16 * j + 16]) {
            *o = (nearest_int(v / dj).clamp(-32, 31) + 32) as i8;
        }
    }
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for h in 0..2 {
        let (lh, ql, qh) = (&l[128 * h..], &mut ql[64 * h..], &mut qh[32 * h..]);
        for i in 0..32 {
            let q = [0, 32, 64, 96].map(|o| lh[i + o] as u8);
            ql[i] = (q[0] & 0xF) | ((q[2] & 0xF) << 4);
            ql[i + 32] = (q[1] & 0xF) | ((q[3] & 0xF) << 4);
            qh[i] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
    BlockQ6_K { ql, qh, scales: sc, d }
}
