//! Q8_0: 32 signed bytes with an f16 scale; value = q · d. Layout and formula from ggml
//! `ggml-common.h` (`block_q8_0`) and `ggml-quants.c` (`dequantize_row_q8_0`).

use super::QuantBlock;
use crate::GgmlType;
use half::f16;

const QK8_0: usize = 32;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quants.
    pub qs: [i8; QK8_0],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

impl QuantBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const BLOCK_SIZE: usize = QK8_0;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (&q, y) in self.qs.iter().zip(out) {
            *y = q as f32 * d;
        }
    }
}
