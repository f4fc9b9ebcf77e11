//! Q8_K: 256 signed bytes with an f32 scale; value = d · q. The intermediate format of
//! ggml's K-quant dot products (`block_q8_K`, `dequantize_row_q8_K`); `bsums` (sums of
//! groups of 16 quants) is only used by those dot products.

use super::QK_K;
use crate::dequant::QuantBlock;
use crate::GgmlType;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_K {
    /// Scale (f32, unlike the other formats).
    pub d: f32,
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sums of each group of 16 quants.
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_K>() == 292);

impl QuantBlock for BlockQ8_K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        for (&q, y) in self.qs.iter().zip(out) {
            *y = self.d * q as f32;
        }
    }
}
