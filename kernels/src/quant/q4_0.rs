//! Q4_0 quantizer, ggml `quantize_row_q4_0_ref`: the element of largest magnitude keeps its
//! sign and maps to −8, d = max / −8, q = min(15, trunc(x / d + 8.5)).
//! With an importance matrix, ggml `quantize_row_q4_0_impl`: per block `make_qx_quants`
//! (nmax 8) with the weights of `weighted::legacy_row`.

use super::k_search::make_qx_quants;
use super::weighted::{legacy_row, QuantizeWeighted};
use super::{inverse, signed_absmax, trunc_capped, QuantizeBlock};
use crate::dequant::BlockQ4_0;
use half::f16;

impl QuantizeBlock for BlockQ4_0 {
    fn quantize(x: &[f32]) -> Self {
        let max = signed_absmax(x);
        let d = max / -8.0;
        let id = inverse(d);
        let mut qs = [0u8; 16];
        let (lo, hi) = x.split_at(16);
        for ((q, &x0), &x1) in qs.iter_mut().zip(lo).zip(hi) {
            let q0 = trunc_capped(x0 * id + 8.5, 15);
            let q1 = trunc_capped(x1 * id + 8.5, 15);
            *q = q0 | (q1 << 4);
        }
        BlockQ4_0 { d: f16::from_f32(d), qs }
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { super::legacy_avx2::quantize_row_q4_0(src, out) };
            return true;
        }
        let _ = (src, out);
        false
    }
}

impl QuantizeWeighted for BlockQ4_0 {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        legacy_row::<Self>(x, qw, out, |xb, w| {
            let mut l = [0i8; 32];
            let d = make_qx_quants(8, xb, w, &mut l, simd);
            BlockQ4_0 { d: f16::from_f32(d), qs: pack_nibbles(&l.map(|v| v as u8)) }
        });
    }
}

/// ggml's `qs[j] = L[j] | (L[j + 16] << 4)` for 4-bit quants.
pub(super) fn pack_nibbles(l: &[u8; 32]) -> [u8; 16] {
    std::array::from_fn(|j| l[j] | (l[j + 16] << 4))
}
