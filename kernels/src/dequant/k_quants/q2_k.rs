//! Q2_K: 2-bit quants in 16 sub-blocks of 16, each with a 4-bit scale and a 4-bit minimum
//! (scaled by the f16 `d` and `dmin`); value = d·sc · q − dmin·m. ggml `block_q2_K`,
//! `dequantize_row_q2_K`: each 128-element half uses 32 bytes of `qs`, element
//! 32·s + l of the half being bits 2s..2s+2 of byte l.

use super::QK_K;
use crate::dequant::QuantBlock;
use crate::GgmlType;
use half::f16;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ2_K {
    /// Sub-block scales (low nibble) and minimums (high nibble).
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the minimums.
    pub dmin: f16,
}

const _: () = assert!(std::mem::size_of::<BlockQ2_K>() == 84);

impl QuantBlock for BlockQ2_K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let dmin = self.dmin.to_f32();
        for (e, y) in out.iter_mut().enumerate() {
            let (half, shift, l) = (e / 128, (e / 32) % 4, e % 32);
            let sc = self.scales[e / 16];
            let dl = d * (sc & 0x0F) as f32;
            let ml = dmin * (sc >> 4) as f32;
            let q = (self.qs[32 * half + l] >> (2 * shift)) & 3;
            *y = dl * q as f32 - ml;
        }
    }
}
