//! MXFP4 (OCP microscaling): 32 FP4 (E2M1) values sharing an E8M0 power-of-two scale.
//! ggml `block_mxfp4` (`ggml-common.h`), `dequantize_row_mxfp4` (`ggml-quants.c`): ggml
//! stores the E2M1 values doubled as integers (`kvalues_mxfp4`) and compensates with half
//! the scale (`ggml_e8m0_to_fp32_half`, `ggml-impl.h`). Nibble order as Q4_0.

use super::QuantBlock;
use crate::GgmlType;

const QK_MXFP4: usize = 32;

/// ggml `kvalues_mxfp4`: E2M1 code → 2 × value.
const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// 2^(e − 128) as f32, exactly: the two smallest exponents are subnormal f32s.
fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000u32 << e } else { ((e - 1) as u32) << 23 };
    f32::from_bits(bits)
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockMXFP4 {
    /// E8M0 shared exponent.
    pub e: u8,
    /// E2M1 codes: low nibbles = elements 0..16, high = 16..32.
    pub qs: [u8; QK_MXFP4 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockMXFP4>() == 17);

impl QuantBlock for BlockMXFP4 {
    const TYPE: GgmlType = GgmlType::MXFP4;
    const BLOCK_SIZE: usize = QK_MXFP4;

    fn dequantize(&self, out: &mut [f32]) {
        let d = e8m0_to_f32_half(self.e);
        let (lo, hi) = out.split_at_mut(QK_MXFP4 / 2);
        for ((&q, y0), y1) in self.qs.iter().zip(lo).zip(hi) {
            *y0 = d * KVALUES_MXFP4[(q & 0x0F) as usize] as f32;
            *y1 = d * KVALUES_MXFP4[(q >> 4) as usize] as f32;
        }
    }
}
