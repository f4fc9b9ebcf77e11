//! Q5_0 quantizer, ggml `quantize_row_q5_0_ref`: the element of largest magnitude keeps its
//! sign and maps to −16, d = max / −16, q = min(31, trunc(x / d + 16.5)); low 4 bits packed
//! like Q4_0, bit 4 of element i into bit i of `qh`. With an importance matrix, ggml
//! `quantize_row_q5_0_impl`: per block `make_qx_quants` (nmax 16) with the weights of
//! `weighted::legacy_row`.

use super::k_search::make_qx_quants;
use super::weighted::{legacy_row, QuantizeWeighted};
use super::{inverse, signed_absmax, trunc_capped, QuantizeBlock};
use crate::dequant::BlockQ5_0;
use half::f16;

impl QuantizeBlock for BlockQ5_0 {
    fn quantize(x: &[f32]) -> Self {
        let max = signed_absmax(x);
        let d = max / -16.0;
        let id = inverse(d);
        let (qh, qs) = pack5(x, |v| trunc_capped(v * id + 16.5, 31));
        BlockQ5_0 { d: f16::from_f32(d), qh, qs }
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { super::legacy_avx2::quantize_row_q5_0(src, out) };
            return true;
        }
        let _ = (src, out);
        false
    }
}

/// Packs 32 five-bit values `q(x[i])` into (`qh`, `qs`) as ggml's Q5_0/Q5_1 do.
pub(super) fn pack5(x: &[f32], q: impl Fn(f32) -> u8) -> ([u8; 4], [u8; 16]) {
    pack5_quants(&std::array::from_fn(|i| q(x[i])))
}

/// Packs 32 five-bit quants into (`qh`, `qs`) as ggml's Q5_0/Q5_1 do.
pub(super) fn pack5_quants(l: &[u8; 32]) -> ([u8; 4], [u8; 16]) {
    let mut qs = [0u8; 16];
    let mut qh = 0u32;
    for (j, b) in qs.iter_mut().enumerate() {
        let (q0, q1) = (l[j], l[j + 16]);
        *b = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= u32::from(q0 >> 4) << j;
        qh |= u32::from(q1 >> 4) << (j + 16);
    }
    (qh.to_le_bytes(), qs)
}

impl QuantizeWeighted for BlockQ5_0 {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        legacy_row::<Self>(x, qw, out, |xb, w| {
            let mut l = [0i8; 32];
            let d = make_qx_quants(16, xb, w, &mut l, simd);
            let (qh, qs) = pack5_quants(&l.map(|v| v as u8));
            BlockQ5_0 { d: f16::from_f32(d), qh, qs }
        });
    }
}
