//! Q6_K: 6-bit quants (low 4 bits in `ql`, high 2 in `qh`) in 16 sub-blocks of 16 with
//! signed 8-bit scales; value = d·sc · (q − 32). ggml `block_q6_K`, `dequantize_row_q6_K`:
//! in each 128-element half, element 64·h + k takes nibble h of `ql[k]` (k < 64) and
//! element 32·s + l takes bits 2s..2s+2 of `qh[l]`.

use super::QK_K;
use crate::dequant::QuantBlock;
use crate::GgmlType;
use half::f16;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ6_K {
    /// Low 4 bits.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits.
    pub qh: [u8; QK_K / 4],
    /// Sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: f16,
}

const _: () = assert!(std::mem::size_of::<BlockQ6_K>() == 210);

impl QuantBlock for BlockQ6_K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (e, y) in out.iter_mut().enumerate() {
            let (half, r) = (e / 128, e % 128);
            let low = (self.ql[64 * half + r % 64] >> (4 * (r / 64))) & 0x0F;
            let high = (self.qh[32 * half + r % 32] >> (2 * (r / 32))) & 0x03;
            let q = (low | (high << 4)) as i8 - 32;
            // ggml: `d * sc[is] * q` — the scale product first.
            let dl = d * self.scales[e / 16] as f32;
            *y = dl * q as f32;
        }
    }
}
