//! Q3_K: 3-bit quants (2 low bits in `qs`, the high bit in `hmask`) in 16 sub-blocks of 16,
//! each with a signed 6-bit scale; value = d·(sc − 32) · (q_low − (high bit clear ? 4 : 0)).
//! ggml `block_q3_K`, `dequantize_row_q3_K`.

use super::QK_K;
use crate::dequant::QuantBlock;
use crate::GgmlType;
use half::f16;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ3_K {
    /// High bits: bit b of byte l belongs to element 32·b + l.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits, packed like Q2_K.
    pub qs: [u8; QK_K / 4],
    /// 16 scales of 6 bits.
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: f16,
}

const _: () = assert!(std::mem::size_of::<BlockQ3_K>() == 110);

/// The 16 six-bit scales. ggml unpacks them with `kmask1`/`kmask2` on 32-bit words; per
/// scale i that is: low 4 bits = nibble (i / 8) of byte i % 8, high 2 bits = bits
/// 2·(i / 4)..+2 of byte 8 + i % 4.
fn unpack_scales(s: &[u8; 12]) -> [i8; 16] {
    std::array::from_fn(|i| {
        let low = (s[i % 8] >> (4 * (i / 8))) & 0x0F;
        let high = (s[8 + i % 4] >> (2 * (i / 4))) & 0x03;
        (low | (high << 4)) as i8 - 32
    })
}

impl QuantBlock for BlockQ3_K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let scales = unpack_scales(&self.scales);
        for (e, y) in out.iter_mut().enumerate() {
            let (half, shift, l) = (e / 128, (e / 32) % 4, e % 32);
            let dl = d * scales[e / 16] as f32;
            let low = ((self.qs[32 * half + l] >> (2 * shift)) & 3) as i8;
            // The offset is 4 when the mask bit is clear (ggml: `(hm[l] & m) ? 0 : 4`).
            let high_clear = (self.hmask[l] >> (e / 32)) & 1 == 0;
            let q = low - if high_clear { 4 } else { 0 };
            *y = dl * q as f32;
        }
    }
}
