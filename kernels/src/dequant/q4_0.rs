//! Q4_0: 32 weights as 4-bit unsigned nibbles with an f16 scale; value = (q − 8) · d.
//! Layout and formula from ggml `ggml-common.h` (`block_q4_0`) and `ggml-quants.c`
//! (`dequantize_row_q4_0`): byte j holds element j in its low nibble and element j + 16
//! in its high nibble.

use super::QuantBlock;
use crate::GgmlType;
use half::f16;

const QK4_0: usize = 32;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Nibbles: low = elements 0..16, high = elements 16..32.
    pub qs: [u8; QK4_0 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

impl QuantBlock for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const BLOCK_SIZE: usize = QK4_0;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let (lo, hi) = out.split_at_mut(QK4_0 / 2);
        for ((&q, y0), y1) in self.qs.iter().zip(lo).zip(hi) {
            let x0 = (q & 0x0F) as i32 - 8;
            let x1 = (q >> 4) as i32 - 8;
            *y0 = x0 as f32 * d;
            *y1 = x1 as f32 * d;
        }
    }
}
