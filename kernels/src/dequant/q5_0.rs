//! Q5_0: 32 weights as 5-bit unsigned integers with an f16 scale; value = (q − 16) · d.
//! Layout and formula from ggml `ggml-common.h` (`block_q5_0`) and `ggml-quants.c`
//! (`dequantize_row_q5_0`): the low 4 bits are packed like Q4_0 (byte j: element j in the
//! low nibble, element j + 16 in the high nibble); the fifth bit of element i is bit i of
//! the little-endian `u32` `qh`.

use super::QuantBlock;
use crate::GgmlType;
use half::f16;

const QK5_0: usize = 32;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits, a little-endian `u32`: bit i belongs to element i.
    pub qh: [u8; 4],
    /// Low 4 bits: low nibble = elements 0..16, high nibble = elements 16..32.
    pub qs: [u8; QK5_0 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

impl QuantBlock for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const BLOCK_SIZE: usize = QK5_0;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        let (lo, hi) = out.split_at_mut(QK5_0 / 2);
        for (j, ((&q, y0), y1)) in self.qs.iter().zip(lo).zip(hi).enumerate() {
            let h0 = ((qh >> j) & 1) as u8;
            let h1 = ((qh >> (j + QK5_0 / 2)) & 1) as u8;
            let x0 = ((q & 0x0F) | (h0 << 4)) as i32 - 16;
            let x1 = ((q >> 4) | (h1 << 4)) as i32 - 16;
            *y0 = x0 as f32 * d;
            *y1 = x1 as f32 * d;
        }
    }
}
