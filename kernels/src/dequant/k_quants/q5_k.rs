//! Q5_K: Q4_K plus a fifth (high) bit per quant in `qh`; value = d·sc · q − dmin·m.
//! ggml `block_q5_K`, `dequantize_row_q5_K`: bit j of `qh[l]` is the high bit of element
//! 32·j + l.

use super::{scale_min_k4, K_SCALE_SIZE, QK_K};
use crate::dequant::QuantBlock;
use crate::GgmlType;
use half::f16;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_K {
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the minimums.
    pub dmin: f16,
    /// Scales and minimums, 6 bits each (see `get_scale_min_k4`).
    pub scales: [u8; K_SCALE_SIZE],
    /// High bits.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits, packed like Q4_K.
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ5_K>() == 176);

impl QuantBlock for BlockQ5_K {
    const TYPE: GgmlType = GgmlType::Q5_K;
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
            for (l, (y, &q)) in sub.iter_mut().zip(bytes).enumerate() {
                let high = ((self.qh[l] >> j) & 1) << 4;
                *y = d1 * (((q >> shift) & 0x0F) | high) as f32 - m1;
            }
        }
    }
}
