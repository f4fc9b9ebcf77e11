//! Q4_1: 32 weights as 4-bit unsigned nibbles with an f16 scale and an f16 minimum;
//! value = q · d + m. Layout and formula from ggml `ggml-common.h` (`block_q4_1`) and
//! `ggml-quants.c` (`dequantize_row_q4_1`); same nibble order as Q4_0.
//!
//! `q · d` is exact in f32 (a 4-bit integer times an 11-bit f16 significand), so only the
//! addition rounds, and a fused multiply-add gives the same bits as gguf-py's `(d * qs) + m`.

use super::QuantBlock;
use crate::GgmlType;
use half::f16;

const QK4_1: usize = 32;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Nibbles: low = elements 0..16, high = elements 16..32.
    pub qs: [u8; QK4_1 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

impl QuantBlock for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const BLOCK_SIZE: usize = QK4_1;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        let (lo, hi) = out.split_at_mut(QK4_1 / 2);
        for ((&q, y0), y1) in self.qs.iter().zip(lo).zip(hi) {
            let x0 = (q & 0x0F) as f32;
            let x1 = (q >> 4) as f32;
            *y0 = x0 * d + m;
            *y1 = x1 * d + m;
        }
    }
}
