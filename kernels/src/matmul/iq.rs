//! i-quant super-blocks → the integer K form of [`super::unpack`]: 256 signed weights, 16
//! integer scales (one per 16 weights) and the f16 super-scale.
//!
//! Every i-quant dot product in ggml (ggml-cpu `quants.c` `ggml_vec_dot_iq*_q8_K_generic`,
//! vec_dot_type Q8_K) is, per super-block, `d_w · d_y · Σ_groups ls · Σ q·y` times a
//! constant: an exact integer sum per group (grid value with its sign, times a Q8_K quant),
//! times an integer group scale, times float scales. Here, per type:
//!
//! | type | q | scale per group | constant ([`super_factor`]) |
//! |---|---|---|---|
//! | IQ2_XXS | ±`iq2xxs_grid` (8, 25, 43) | 2·ls + 1 per 32 | 1/8 |
//! | IQ2_XS, IQ2_S | ±`iq2xs_grid` / ±`iq2s_grid` | 2·ls + 1 per 16 | 1/8 |
//! | IQ3_XXS | ±`iq3xxs_grid` (4 … 62) | 2·ls + 1 per 32 | 1/4 |
//! | IQ3_S | ±`iq3s_grid` (1 … 15) | 2·ls + 1 per 32 | 1 |
//! | IQ4_XS | `kvalues_iq4nl` (−127 … 113) | ls − 32 per 32 | 1 |
//! | IQ1_S | 8·grid ± 1 (grid ∈ {−1, 0, 1}) | 2·ls + 1 per 32 | 1/8 |
//! | IQ1_M | 8·grid ± 1 | 2·ls + 1 per 16 | 1/8 |
//!
//! IQ1_S/IQ1_M: ggml computes `sumi + IQ1S_DELTA·sumi1` with `sumi = Σ ls·grid·y` and
//! `sumi1 = Σ ls·delta·y` (delta = ±1, IQ1S_DELTA = 1/8), which is (1/8)·Σ ls·(8·grid + delta)·y:
//! the same value as an exact integer sum. Bit layouts: the crate's dequantizers
//! (`dequant/iq*.rs`, from `dequantize_row_iq*`).

use crate::dequant::iq_tables::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS};
use crate::dequant::{
    BlockIQ1_M, BlockIQ1_S, BlockIQ2_S, BlockIQ2_XS, BlockIQ2_XXS, BlockIQ3_S, BlockIQ3_XXS, BlockIQ4_XS, KVALUES_IQ4NL,
};
use crate::GgmlType;
use half::f16;

/// The constant ggml multiplies an i-quant dot product by (see the module table); `None`
/// for the other types.
pub(crate) fn super_factor(ty: GgmlType) -> Option<f32> {
    use GgmlType::*;
    match ty {
        IQ2_XXS | IQ2_XS | IQ2_S | IQ1_S | IQ1_M => Some(0.125),
        IQ3_XXS => Some(0.25),
        IQ3_S | IQ4_XS => Some(1.0),
        _ => None,
    }
}

/// Writes 8 grid bytes (unsigned grid values) into `q`, negated where bit j of `signs` is set.
fn signed_8(grid: u64, signs: u8, q: &mut [i8]) {
    for (j, (v, g)) in q.iter_mut().zip(grid.to_le_bytes()).enumerate() {
        *v = if signs >> j & 1 == 1 { -(g as i8) } else { g as i8 };
    }
}

/// Writes 4 grid bytes into `q`, negated where bit `first + j` of `signs` is set.
fn signed_4(grid: u32, signs: u8, first: usize, q: &mut [i8]) {
    for (j, (v, g)) in q.iter_mut().zip(grid.to_le_bytes()).enumerate() {
        *v = if signs >> (first + j) & 1 == 1 { -(g as i8) } else { g as i8 };
    }
}

/// IQ1: 8 ternary grid values (bytes −1/0/1) as 8·grid + delta.
fn ternary_8(index: usize, delta: i8, q: &mut [i8]) {
    for (v, g) in q.iter_mut().zip(IQ1S_GRID[index].to_le_bytes()) {
        *v = 8 * g as i8 + delta;
    }
}

/// `2·s + 1` as the kernel's i16 scale.
fn odd(s: u32) -> i16 {
    (2 * s + 1) as i16
}

/// One i-quant super-block (`ty` an i-quant with a [`super_factor`]): weights into `q`, the
/// 16 per-16 scales into `sc`; returns the f16 super-scale (before the constant factor).
pub(crate) fn unpack(ty: GgmlType, blk: &[u8], q: &mut [i8; 256], sc: &mut [i16; 16]) -> f16 {
    match ty {
        GgmlType::IQ2_XXS => {
            let b: BlockIQ2_XXS = bytemuck::pod_read_unaligned(blk);
            for (ib, (g, qq)) in b.qs.chunks_exact(8).zip(q.chunks_exact_mut(32)).enumerate() {
                let aux = u32::from_le_bytes([g[4], g[5], g[6], g[7]]);
                for (l, q8) in qq.chunks_exact_mut(8).enumerate() {
                    let signs = KSIGNS_IQ2XS[(aux >> (7 * l) & 127) as usize];
                    signed_8(IQ2XXS_GRID[g[l] as usize], signs, q8);
                }
                sc[2 * ib] = odd(aux >> 28);
                sc[2 * ib + 1] = sc[2 * ib];
            }
            b.d
        }
        GgmlType::IQ2_XS => {
            let b: BlockIQ2_XS = bytemuck::pod_read_unaligned(blk);
            for (i, (g, q8)) in b.qs.chunks_exact(2).zip(q.chunks_exact_mut(8)).enumerate() {
                let v = u16::from_le_bytes([g[0], g[1]]);
                signed_8(IQ2XS_GRID[(v & 511) as usize], KSIGNS_IQ2XS[(v >> 9) as usize], q8);
                if i % 2 == 0 {
                    sc[i / 2] = odd(((b.scales[i / 4] >> (4 * (i / 2 % 2))) & 0x0F) as u32);
                }
            }
            b.d
        }
        GgmlType::IQ2_S => {
            let b: BlockIQ2_S = bytemuck::pod_read_unaligned(blk);
            let (low, signs) = b.qs.split_at(32);
            for (i, q8) in q.chunks_exact_mut(8).enumerate() {
                let index = low[i] as usize | (((b.qh[i / 4] >> (2 * (i % 4))) & 3) as usize) << 8;
                signed_8(IQ2S_GRID[index], signs[i], q8);
                if i % 2 == 0 {
                    sc[i / 2] = odd(((b.scales[i / 4] >> (4 * (i / 2 % 2))) & 0x0F) as u32);
                }
            }
            b.d
        }
        GgmlType::IQ3_XXS => {
            let b: BlockIQ3_XXS = bytemuck::pod_read_unaligned(blk);
            let (indices, scales_signs) = b.qs.split_at(64);
            for (ib, qq) in q.chunks_exact_mut(32).enumerate() {
                let s = &scales_signs[4 * ib..4 * ib + 4];
                let aux = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                for (i, q4) in qq.chunks_exact_mut(4).enumerate() {
                    let signs = KSIGNS_IQ2XS[(aux >> (7 * (i / 2)) & 127) as usize];
                    signed_4(IQ3XXS_GRID[indices[8 * ib + i] as usize], signs, 4 * (i % 2), q4);
                }
                sc[2 * ib] = odd(aux >> 28);
                sc[2 * ib + 1] = sc[2 * ib];
            }
            b.d
        }
        GgmlType::IQ3_S => {
            let b: BlockIQ3_S = bytemuck::pod_read_unaligned(blk);
            for (i, q4) in q.chunks_exact_mut(4).enumerate() {
                let index = b.qs[i] as usize | (((b.qh[i / 8] >> (i % 8)) & 1) as usize) << 8;
                signed_4(IQ3S_GRID[index], b.signs[i / 2], 4 * (i % 2), q4);
            }
            for ib in 0..8 {
                sc[2 * ib] = odd(((b.scales[ib / 2] >> (4 * (ib % 2))) & 0x0F) as u32);
                sc[2 * ib + 1] = sc[2 * ib];
            }
            b.d
        }
        GgmlType::IQ4_XS => {
            let b: BlockIQ4_XS = bytemuck::pod_read_unaligned(blk);
            let scales_h = u16::from_le_bytes(b.scales_h);
            for (ib, (qs, qq)) in b.qs.chunks_exact(16).zip(q.chunks_exact_mut(32)).enumerate() {
                let (lo, hi) = qq.split_at_mut(16);
                for ((&v, l), h) in qs.iter().zip(lo).zip(hi) {
                    *l = KVALUES_IQ4NL[(v & 0x0F) as usize];
                    *h = KVALUES_IQ4NL[(v >> 4) as usize];
                }
                let low = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
                let high = ((scales_h >> (2 * ib)) & 3) as u8;
                sc[2 * ib] = (low | (high << 4)) as i16 - 32;
                sc[2 * ib + 1] = sc[2 * ib];
            }
            b.d
        }
        GgmlType::IQ1_S => {
            let b: BlockIQ1_S = bytemuck::pod_read_unaligned(blk);
            for (ib, qq) in q.chunks_exact_mut(32).enumerate() {
                let qh = u16::from_le_bytes([b.qh[2 * ib], b.qh[2 * ib + 1]]);
                let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
                for (l, q8) in qq.chunks_exact_mut(8).enumerate() {
                    let index = b.qs[4 * ib + l] as usize | (((qh >> (3 * l)) & 7) as usize) << 8;
                    ternary_8(index, delta, q8);
                }
                sc[2 * ib] = odd(((qh >> 12) & 7) as u32);
                sc[2 * ib + 1] = sc[2 * ib];
            }
            b.d
        }
        GgmlType::IQ1_M => {
            let b: BlockIQ1_M = bytemuck::pod_read_unaligned(blk);
            let s: [u16; 4] = std::array::from_fn(|k| u16::from_le_bytes([b.scales[2 * k], b.scales[2 * k + 1]]));
            for (i, q8) in q.chunks_exact_mut(8).enumerate() {
                let nibble = (b.qh[i / 2] >> (4 * (i % 2))) & 0x0F;
                let index = b.qs[i] as usize | ((nibble & 7) as usize) << 8;
                ternary_8(index, if nibble & 8 != 0 { -1 } else { 1 }, q8);
            }
            for (j, v) in sc.iter_mut().enumerate() {
                *v = odd(((s[j / 4] >> (3 * (j % 4))) & 7) as u32);
            }
            // ggml `iq1m_scale_t`: nibble k of the f16 super-scale is the top nibble of s[k].
            f16::from_bits((s[0] >> 12) | ((s[1] >> 8) & 0x00F0) | ((s[2] >> 4) & 0x0F00) | (s[3] & 0xF000))
        }
        _ => unreachable!("i-quant kinds only"),
    }
}
