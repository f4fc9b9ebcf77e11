//! IQ4_NL and IQ4_XS: 4-bit indices into the non-linear codebook `kvalues_iq4nl`.
//! ggml `block_iq4_nl` / `block_iq4_xs` (`ggml-common.h`), `dequantize_row_iq4_nl` /
//! `dequantize_row_iq4_xs` (`ggml-quants.c`). In both, a 32-element group uses 16 bytes:
//! element j in the low nibble of byte j, element j + 16 in the high nibble.

use super::k_quants::QK_K;
use super::QuantBlock;
use crate::GgmlType;
use half::f16;

const QK4_NL: usize = 32;

/// ggml `kvalues_iq4nl`.
pub(crate) const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// Writes one 32-element group: `dl · kvalues[nibble]`.
fn nibbles_32(dl: f32, qs: &[u8], out: &mut [f32]) {
    let (lo, hi) = out.split_at_mut(16);
    for ((&q, y0), y1) in qs.iter().zip(lo).zip(hi) {
        *y0 = dl * KVALUES_IQ4NL[(q & 0x0F) as usize] as f32;
        *y1 = dl * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ4_NL {
    /// Scale.
    pub d: f16,
    /// Codebook indices.
    pub qs: [u8; QK4_NL / 2],
}

const _: () = assert!(std::mem::size_of::<BlockIQ4_NL>() == 18);

impl QuantBlock for BlockIQ4_NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    const BLOCK_SIZE: usize = QK4_NL;

    fn dequantize(&self, out: &mut [f32]) {
        nibbles_32(self.d.to_f32(), &self.qs, out);
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ4_XS {
    /// Super-block scale.
    pub d: f16,
    /// High 2 bits of the 8 group scales (bits 2·ib..2·ib+2), little-endian u16.
    pub scales_h: [u8; 2],
    /// Low 4 bits of the 8 group scales (nibble ib % 2 of byte ib / 2).
    pub scales_l: [u8; QK_K / 64],
    /// Codebook indices.
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(std::mem::size_of::<BlockIQ4_XS>() == 136);

impl QuantBlock for BlockIQ4_XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        let scales_h = u16::from_le_bytes(self.scales_h);
        for (ib, (group, qs)) in out.chunks_exact_mut(32).zip(self.qs.chunks_exact(16)).enumerate() {
            let low = (self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
            let high = ((scales_h >> (2 * ib)) & 3) as u8;
            let ls = (low | (high << 4)) as i32 - 32;
            nibbles_32(d * ls as f32, qs, group);
        }
    }
}
