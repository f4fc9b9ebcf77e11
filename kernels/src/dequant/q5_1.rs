//! Q5_1: 32 weights as 5-bit unsigned integers with an f16 scale and an f16 minimum;
//! value = q · d + m. Layout and formula from ggml `ggml-common.h` (`block_q5_1`) and
//! `ggml-quants.c` (`dequantize_row_q5_1`); bit layout as Q5_0 (see `q5_0.rs`).
//!
//! `q · d` is exact in f32 (a 5-bit integer times an 11-bit f16 significand), so only the
//! addition rounds, matching gguf-py's `(d * qs) + m`.

use super::QuantBlock;
use crate::GgmlType;
use half::f16;

const QK5_1: usize = 32;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (offset).
    pub m: f16,
    /// Fifth bits, a little-endian `u32`: bit i belongs to element i.
    pub qh: [u8; 4],
    /// Low 4 bits: low nibble = elements 0..16, high nibble = elements 16..32.
    pub qs: [u8; QK5_1 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

impl QuantBlock for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const BLOCK_SIZE: usize = QK5_1;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        let (lo, hi) = out.split_at_mut(QK5_1 / 2);
        for (j, ((&q, y0), y1)) in self.qs.iter().zip(lo).zip(hi).enumerate() {
            let h0 = ((qh >> j) & 1) as u8;
            let h1 = ((qh >> (j + QK5_1 / 2)) & 1) as u8;
            let x0 = ((q & 0x0F) | (h0 << 4)) as f32;
            let x1 = ((q >> 4) | (h1 << 4)) as f32;
            *y0 = x0 * d + m;
            *y1 = x1 * d + m;
        }
    }
}
