//! IQ4_XS quantizer: ggml `quantize_iq4_xs`, i.e. `quantize_row_iq4_nl_impl(QK_K, 32, …,
//! kvalues_iq4nl, quant_weights, ntry = 7)` per super-block of 256, with importance weights
//! or without (weights x²; also what `quantize_row_iq4_xs_ref` and llama-quantize without an
//! imatrix run).
//!
//! Each block of 32 gets IQ4_NL's scale search (`iq4_nl.rs`, shared); the 8 scales are then
//! quantized to 6 bits against d = −max_scale / 32 (max_scale = the scale of largest
//! magnitude, with its sign; stored as f16), l = nearest(scale / d) clamped to −32..=31, and
//! the indices recomputed from the f32 d·l. All in f32, C's order, no fused multiply-adds.

use super::iq4_nl::{block_scale, indices, pack_nibbles, sigma2, weights};
use super::k_search::nearest_int;
use super::QuantizeBlock;
use crate::dequant::BlockIQ4_XS;
use crate::dequant::QuantBlock;
use half::f16;

impl QuantizeBlock for BlockIQ4_XS {
    fn quantize(x: &[f32]) -> Self {
        quantize_iq4_xs(x, None, false)
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        super::k_row_fast(src, out, |x| quantize_iq4_xs(x, None, true))
    }
}

/// ggml `quantize_iq4_xs` for one row (a [`super::RowFn`]): `qw` holds one weight per value
/// of `x`, or is `None`.
pub(super) fn quantize_row(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    let (n, size) = (BlockIQ4_XS::BLOCK_SIZE, std::mem::size_of::<BlockIQ4_XS>());
    for (ibl, (xb, o)) in x.chunks_exact(n).zip(out.chunks_exact_mut(size)).enumerate() {
        let qw = qw.map(|w| &w[n * ibl..n * ibl + n]);
        o.copy_from_slice(bytemuck::bytes_of(&quantize_iq4_xs(xb, qw, true)));
    }
}

/// One super-block of 256 with optional importance weights (256); `simd` selects the AVX2
/// search (same bytes).
fn quantize_iq4_xs(x: &[f32], qw: Option<&[f32]>, simd: bool) -> BlockIQ4_XS {
    let sigma2 = if qw.is_some() { sigma2(x) } else { 0.0 };
    let block = |ib: usize| -> &[f32; 32] { x[32 * ib..32 * ib + 32].try_into().expect("256 values") };
    let mut scales = [0.0f32; 8];
    let (mut amax_scale, mut max_scale) = (0.0f32, 0.0f32);
    for (ib, scale) in scales.iter_mut().enumerate() {
        let w = weights(block(ib), qw.map(|w| &w[32 * ib..32 * ib + 32]), sigma2);
        *scale = block_scale(block(ib), &w, simd);
        if scale.abs() > amax_scale {
            amax_scale = scale.abs();
            max_scale = *scale;
        }
    }
    let d = -max_scale / 32.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = BlockIQ4_XS { d: f16::from_f32(d), scales_h: [0; 2], scales_l: [0; 4], qs: [0; 128] };
    let mut scales_h = 0u16;
    for (ib, &scale) in scales.iter().enumerate() {
        let l = nearest_int(id * scale).clamp(-32, 31);
        let dl = d * l as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        out.qs[16 * ib..16 * ib + 16].copy_from_slice(&pack_nibbles(&indices(block(ib), idl, simd)));
        let l = (l + 32) as u8;
        out.scales_l[ib / 2] |= (l & 0xF) << (4 * (ib % 2));
        scales_h |= ((l >> 4) as u16) << (2 * ib);
    }
    out.scales_h = scales_h.to_le_bytes();
    out
}
