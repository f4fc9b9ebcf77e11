//! TQ1_0 and TQ2_0: ternary weights {−1, 0, 1} · d. ggml `block_tq1_0` / `block_tq2_0`
//! (`ggml-common.h`), `dequantize_row_tq1_0` / `dequantize_row_tq2_0` (`ggml-quants.c`).

use super::k_quants::QK_K;
use super::QuantBlock;
use crate::GgmlType;
use half::f16;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockTQ1_0 {
    /// Five trits per byte, as a base-3 fixed-point fraction of 256.
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    /// Four trits per byte, same encoding.
    pub qh: [u8; QK_K / 64],
    /// Scale.
    pub d: f16,
}

const _: () = assert!(std::mem::size_of::<BlockTQ1_0>() == 54);

/// Trit `n` of byte `q`: multiplying by 3ⁿ (wrapping, as in ggml's `uint8_t` product)
/// shifts it to the top, and `(q · 3) >> 8` reads the top trit (0, 1 or 2).
fn trit(q: u8, n: u32) -> f32 {
    let shifted = q.wrapping_mul(3u8.pow(n));
    (((shifted as u16 * 3) >> 8) as i16 - 1) as f32
}

impl QuantBlock for BlockTQ1_0 {
    const TYPE: GgmlType = GgmlType::TQ1_0;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        // Elements 0..160: trit n of qs[l] (l < 32) is element 32·n + l; 160..240: trit n
        // of qs[32 + l] (l < 16) is 160 + 16·n + l; 240..256: trit n of qh[l] is 240 + 4·n + l.
        for (e, y) in out.iter_mut().enumerate() {
            let (q, n) = match e {
                0..160 => (self.qs[e % 32], e / 32),
                160..240 => (self.qs[32 + (e - 160) % 16], (e - 160) / 16),
                _ => (self.qh[(e - 240) % 4], (e - 240) / 4),
            };
            *y = d * trit(q, n as u32);
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockTQ2_0 {
    /// 2-bit codes q (value q − 1), packed like Q2_K.
    pub qs: [u8; QK_K / 4],
    /// Scale.
    pub d: f16,
}

const _: () = assert!(std::mem::size_of::<BlockTQ2_0>() == 66);

impl QuantBlock for BlockTQ2_0 {
    const TYPE: GgmlType = GgmlType::TQ2_0;
    const BLOCK_SIZE: usize = QK_K;

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (e, y) in out.iter_mut().enumerate() {
            let (half, shift, l) = (e / 128, (e / 32) % 4, e % 32);
            let q = ((self.qs[32 * half + l] >> (2 * shift)) & 3) as i8 - 1;
            *y = d * q as f32;
        }
    }
}
