//! IQ1_S and IQ1_M: 8 values at a time from the ternary codebook `iq1s_grid` shifted by
//! ±`IQ1S_DELTA`, times an odd 3-bit scale. ggml `block_iq1_s` / `block_iq1_m`
//! (`ggml-common.h`), `dequantize_row_iq1_s` / `dequantize_row_iq1_m` (`ggml-quants.c`).

use super::iq_tables::IQ1S_GRID;
use super::k_quants::QK_K;
use super::QuantBlock;
use crate::GgmlType;
use half::f16;

/// ggml `IQ1S_DELTA` (also `IQ1M_DELTA`).
const IQ1S_DELTA: f32 = 0.125;

/// Writes 8 values: `dl · (grid[k] + delta)`.
fn grid_8(dl: f32, index: usize, delta: f32, out: &mut [f32]) {
    for (y, g) in out.iter_mut().zip(IQ1S_GRID[index].to_le_bytes()) {
        *y = dl * (g as i8 as f32 + delta);
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ1_S {
    /// Super-block scale.
    pub d: f16,
    /// Low 8 bits of the 32 grid indices.
    pub qs: [u8; QK_K / 8],
    /// Per 32 elements a little-endian u16: four 3-bit high index parts (bits 3l..3l+3),
    /// a 3-bit scale (bits 12..15) and the delta sign (bit 15).
    pub qh: [u8; QK_K / 16],
}

const _: () = assert!(std::mem::size_of::<BlockIQ1_S>() == 50);

impl QuantBlock for BlockIQ1_S {
    const TYPE: GgmlType = GgmlType::IQ1_S;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (ib, group) in out.chunks_exact_mut(32).enumerate() {
            let qh = u16::from_le_bytes([self.qh[2 * ib], self.qh[2 * ib + 1]]);
            let dl = d * (2 * ((qh >> 12) & 7) + 1) as f32;
            let delta = if qh & 0x8000 != 0 { -IQ1S_DELTA } else { IQ1S_DELTA };
            for (l, y) in group.chunks_exact_mut(8).enumerate() {
                let index = self.qs[4 * ib + l] as usize | (((qh >> (3 * l)) & 7) as usize) << 8;
                grid_8(dl, index, delta, y);
            }
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ1_M {
    /// Low 8 bits of the 32 grid indices.
    pub qs: [u8; QK_K / 8],
    /// Per grid index a nibble (low first): 3 high index bits and the delta sign (bit 3).
    pub qh: [u8; QK_K / 16],
    /// Four little-endian u16: 3-bit scales in bits 0..12 (16 of them, one per 16
    /// elements), and the f16 super-block scale split over their top nibbles.
    pub scales: [u8; QK_K / 32],
}

const _: () = assert!(std::mem::size_of::<BlockIQ1_M>() == 56);

impl QuantBlock for BlockIQ1_M {
    const TYPE: GgmlType = GgmlType::IQ1_M;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let sc: [u16; 4] = std::array::from_fn(|k| u16::from_le_bytes([self.scales[2 * k], self.scales[2 * k + 1]]));
        // ggml `iq1m_scale_t`: nibble k of the f16 is the top nibble of sc[k].
        let d_bits = (sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000);
        let d = f16::from_bits(d_bits).to_f32();
        for (i, y) in out.chunks_exact_mut(8).enumerate() {
            // Scale j covers elements 16j..16j+16: bits 3·(j % 4).. of sc[j / 4].
            let j = i / 2;
            let dl = d * (2 * ((sc[j / 4] >> (3 * (j % 4))) & 7) + 1) as f32;
            let nibble = (self.qh[i / 2] >> (4 * (i % 2))) & 0x0F;
            let index = self.qs[i] as usize | ((nibble & 7) as usize) << 8;
            let delta = if nibble & 8 != 0 { -IQ1S_DELTA } else { IQ1S_DELTA };
            grid_8(dl, index, delta, y);
        }
    }
}
