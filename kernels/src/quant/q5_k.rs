//! Q5_K quantizer, ggml `quantize_row_q5_K_ref`: Q4_K's search (see `q4_k.rs`) with 5-bit
//! quants (nmax 31, rmin −0.5, nstep 15); the fifth bit of element 32·j + i goes to bit j
//! of `qh[i]`. With an importance matrix, ggml `quantize_row_q5_K_impl`: the weighted
//! search of Q4_K (`q4_k::quantize_k4_weighted`) with nmax 31.

use super::k_search::Qkx2;
use super::q4_k::{quantize_k4, quantize_k4_weighted, K4Scales};
use super::weighted::{each_block, QuantizeWeighted};
use super::QuantizeBlock;
use crate::dequant::BlockQ5_K;

impl QuantizeBlock for BlockQ5_K {
    fn quantize(x: &[f32]) -> Self {
        quantize_q5_k(x, false)
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        super::k_row_fast(src, out, |x| quantize_q5_k(x, true))
    }
}

/// One block; `simd` selects the SIMD scale search (same bytes).
fn quantize_q5_k(x: &[f32], simd: bool) -> BlockQ5_K {
    let p = Qkx2 { nmax: 31, rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: false };
    block_q5_k(quantize_k4(x, &p, simd))
}

impl QuantizeWeighted for BlockQ5_K {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        each_block::<Self>(x, qw, out, |x, qw| block_q5_k(quantize_k4_weighted(x, qw, 31, true, simd)));
    }
}

/// Packs the 5-bit quants: low nibbles like Q4_K, the fifth bit of element 64·g + i into bit
/// 2·g of `qh[i]` and of 64·g + 32 + i into bit 2·g + 1.
fn block_q5_k(k: K4Scales) -> BlockQ5_K {
    let (mut qs, mut qh) = ([0u8; 128], [0u8; 32]);
    for (g, q) in qs.chunks_exact_mut(32).enumerate() {
        let l = &k.l[64 * g..64 * g + 64];
        for i in 0..32 {
            let (l1, l2) = (l[i], l[i + 32]);
            qh[i] |= ((l1 >> 4) << (2 * g)) | ((l2 >> 4) << (2 * g + 1));
            q[i] = (l1 & 0xF) | ((l2 & 0xF) << 4);
        }
    }
    BlockQ5_K { d: k.d, dmin: k.dmin, scales: k.scales, qh, qs }
}
