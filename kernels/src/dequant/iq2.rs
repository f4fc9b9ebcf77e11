//! IQ2_XXS, IQ2_XS, IQ2_S: 8 values at a time from a 2-bit-per-value codebook grid
//! (`iq2xxs_grid`, `iq2xs_grid`, `iq2s_grid`) with separate sign bits, scaled per group by
//! d · (0.5 + s) · 0.25 with a 4-bit s. ggml `block_iq2_*` (`ggml-common.h`) and
//! `dequantize_row_iq2_*` (`ggml-quants.c`).

use super::iq_tables::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, KSIGNS_IQ2XS};
use super::k_quants::QK_K;
use super::QuantBlock;
use crate::GgmlType;
use half::f16;

/// ggml: `db = d * (0.5f + s) * 0.25f` (two roundings, in that order).
fn group_scale(d: f32, s: u32) -> f32 {
    d * (0.5 + s as f32) * 0.25
}

/// Writes 8 values: `db · grid[k]`, negated where bit k of `signs` is set.
fn grid_8(db: f32, grid: u64, signs: u8, out: &mut [f32]) {
    for (k, (y, g)) in out.iter_mut().zip(grid.to_le_bytes()).enumerate() {
        let v = db * g as f32;
        *y = if signs >> k & 1 == 1 { -v } else { v };
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ2_XXS {
    /// Super-block scale.
    pub d: f16,
    /// Per 32 elements, two little-endian u32: four 8-bit grid indices; then four 7-bit
    /// `ksigns` indices (bits 0..28) and a 4-bit scale (bits 28..32).
    pub qs: [u8; QK_K / 4],
}

const _: () = assert!(std::mem::size_of::<BlockIQ2_XXS>() == 66);

impl QuantBlock for BlockIQ2_XXS {
    const TYPE: GgmlType = GgmlType::IQ2_XXS;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (group, q) in out.chunks_exact_mut(32).zip(self.qs.chunks_exact(8)) {
            let aux = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
            let db = group_scale(d, aux >> 28);
            for (l, y) in group.chunks_exact_mut(8).enumerate() {
                let signs = KSIGNS_IQ2XS[(aux >> (7 * l) & 127) as usize];
                grid_8(db, IQ2XXS_GRID[q[l] as usize], signs, y);
            }
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ2_XS {
    /// Super-block scale.
    pub d: f16,
    /// Little-endian u16 per 8 elements: 9-bit grid index, 7-bit `ksigns` index.
    pub qs: [u8; QK_K / 4],
    /// Two 4-bit scales per 32 elements (low nibble: first 16).
    pub scales: [u8; QK_K / 32],
}

const _: () = assert!(std::mem::size_of::<BlockIQ2_XS>() == 74);

impl QuantBlock for BlockIQ2_XS {
    const TYPE: GgmlType = GgmlType::IQ2_XS;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (i, (y, q)) in out.chunks_exact_mut(8).zip(self.qs.chunks_exact(2)).enumerate() {
            let q = u16::from_le_bytes([q[0], q[1]]);
            let s = (self.scales[i / 4] >> (4 * (i / 2 % 2))) & 0x0F;
            let db = group_scale(d, s as u32);
            grid_8(db, IQ2XS_GRID[(q & 511) as usize], KSIGNS_IQ2XS[(q >> 9) as usize], y);
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ2_S {
    /// Super-block scale.
    pub d: f16,
    /// Low 8 bits of the 32 grid indices, then 32 bytes of sign bits (one byte per 8).
    pub qs: [u8; QK_K / 4],
    /// High 2 bits of the grid indices (bits 2·(i % 4).. of byte i / 4).
    pub qh: [u8; QK_K / 32],
    /// Two 4-bit scales per 32 elements (low nibble: first 16).
    pub scales: [u8; QK_K / 32],
}

const _: () = assert!(std::mem::size_of::<BlockIQ2_S>() == 82);

impl QuantBlock for BlockIQ2_S {
    const TYPE: GgmlType = GgmlType::IQ2_S;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let (low, signs) = self.qs.split_at(QK_K / 8);
        for (i, y) in out.chunks_exact_mut(8).enumerate() {
            let index = low[i] as usize | (((self.qh[i / 4] >> (2 * (i % 4))) & 3) as usize) << 8;
            let s = (self.scales[i / 4] >> (4 * (i / 2 % 2))) & 0x0F;
            grid_8(group_scale(d, s as u32), IQ2S_GRID[index], signs[i], y);
        }
    }
}
