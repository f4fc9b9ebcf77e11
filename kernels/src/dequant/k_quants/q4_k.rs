//! Q4_K: 4-bit quants in 8 sub-blocks of 32, each with a 6-bit scale and minimum;
//! value = d·sc · q − dmin·m. ggml `block_q4_K`, `dequantize_row_q4_K`: each 64-element
//! group uses 32 bytes of `qs`, low nibbles first, then high nibbles.

use super::{scale_min_k4, K_SCALE_SIZE, QK_K};
use crate::dequant::QuantBlock;
use crate::GgmlType;
use half::f16;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_K {
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the minimums.
    pub dmin: f16,
    /// Scales and minimums, 6 bits each (see `get_scale_min_k4`).
    pub scales: [u8; K_SCALE_SIZE],
    /// 4-bit quants.
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_K>() == 144);

impl QuantBlock for BlockQ4_K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let dmin = self.dmin.to_f32();
        for (j, sub) in out.chunks_exact_mut(32).enumerate() {
            let (sc, m) = scale_min_k4(j, &self.scales);
            let d1 = d * sc as f32;
            let m1 = dmin * m as f32;
            let bytes = &self.qs[32 * (j / 2)..32 * (j / 2) + 32];
            let shift = 4 * (j % 2);
            for (y, &q) in sub.iter_mut().zip(bytes) {
                *y = d1 * ((q >> shift) & 0x0F) as f32 - m1;
            }
        }
    }
}
