//! IQ3_XXS and IQ3_S: 4 values at a time from a 3-bit-per-value codebook grid
//! (`iq3xxs_grid`, `iq3s_grid`) with separate signs. ggml `block_iq3_*` (`ggml-common.h`)
//! and `dequantize_row_iq3_*` (`ggml-quants.c`).

use super::iq_tables::{IQ3S_GRID, IQ3XXS_GRID, KSIGNS_IQ2XS};
use super::k_quants::QK_K;
use super::QuantBlock;
use crate::GgmlType;
use half::f16;

/// Writes 4 values: `db · grid[k]`, negated where bit `first_bit + k` of `signs` is set.
fn grid_4(db: f32, grid: u32, signs: u8, first_bit: usize, out: &mut [f32]) {
    for (k, (y, g)) in out.iter_mut().zip(grid.to_le_bytes()).enumerate() {
        let v = db * g as f32;
        *y = if signs >> (first_bit + k) & 1 == 1 { -v } else { v };
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ3_XXS {
    /// Super-block scale.
    pub d: f16,
    /// 64 grid indices (4 values each), then per 32 elements a little-endian u32: four
    /// 7-bit `ksigns` indices (bits 0..28) and a 4-bit scale (bits 28..32).
    pub qs: [u8; 3 * QK_K / 8],
}

const _: () = assert!(std::mem::size_of::<BlockIQ3_XXS>() == 98);

impl QuantBlock for BlockIQ3_XXS {
    const TYPE: GgmlType = GgmlType::IQ3_XXS;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let (indices, scales_signs) = self.qs.split_at(QK_K / 4);
        for (ib, group) in out.chunks_exact_mut(32).enumerate() {
            let s = &scales_signs[4 * ib..4 * ib + 4];
            let aux = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            // ggml: `db = d * (0.5f + (aux32 >> 28)) * 0.5f`.
            let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
            for (i, y) in group.chunks_exact_mut(4).enumerate() {
                let signs = KSIGNS_IQ2XS[(aux >> (7 * (i / 2)) & 127) as usize];
                grid_4(db, IQ3XXS_GRID[indices[8 * ib + i] as usize], signs, 4 * (i % 2), y);
            }
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ3_S {
    /// Super-block scale.
    pub d: f16,
    /// Low 8 bits of the 64 grid indices.
    pub qs: [u8; QK_K / 4],
    /// Ninth bit of the grid indices (bit i % 8 of byte i / 8).
    pub qh: [u8; QK_K / 32],
    /// Sign bits, one per element.
    pub signs: [u8; QK_K / 8],
    /// One 4-bit scale per 32 elements (low nibble first).
    pub scales: [u8; QK_K / 64],
}

const _: () = assert!(std::mem::size_of::<BlockIQ3_S>() == 110);

impl QuantBlock for BlockIQ3_S {
    const TYPE: GgmlType = GgmlType::IQ3_S;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (ib, group) in out.chunks_exact_mut(32).enumerate() {
            let s = (self.scales[ib / 2] >> (4 * (ib % 2))) & 0x0F;
            // ggml: `d * (1 + 2*s)` with an integer factor.
            let db = d * (1 + 2 * s as u32) as f32;
            for (k, y) in group.chunks_exact_mut(4).enumerate() {
                let i = 8 * ib + k;
                let index = self.qs[i] as usize | (((self.qh[i / 8] >> (i % 8)) & 1) as usize) << 8;
                grid_4(db, IQ3S_GRID[index], self.signs[i / 2], 4 * (i % 2), y);
            }
        }
    }
}
