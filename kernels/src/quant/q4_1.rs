//! Q4_1 quantizer, ggml `quantize_row_q4_1_ref`: d = (max − min) / 15, m = min,
//! q = min(15, trunc((x − min) / d + 0.5)). With an importance matrix, ggml
//! `quantize_row_q4_1_impl`: per block `make_qkx3_quants` (nmax 15, rmin −0.9, rdelta 0.05,
//! 36 steps, squared errors) with the weights of `weighted::legacy_row`.

use super::k_search::{make_qkx2_quants, Qkx2};
use super::q4_0::pack_nibbles;
use super::weighted::{legacy_row, QuantizeWeighted};
use super::{inverse, min_max, trunc_capped, QuantizeBlock};
use crate::dequant::BlockQ4_1;
use half::f16;

impl QuantizeBlock for BlockQ4_1 {
    fn quantize(x: &[f32]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        let mut qs = [0u8; 16];
        let (lo, hi) = x.split_at(16);
        for ((q, &x0), &x1) in qs.iter_mut().zip(lo).zip(hi) {
            let q0 = trunc_capped((x0 - min) * id + 0.5, 15);
            let q1 = trunc_capped((x1 - min) * id + 0.5, 15);
            *q = q0 | (q1 << 4);
        }
        BlockQ4_1 { d: f16::from_f32(d), m: f16::from_f32(min), qs }
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { super::legacy_avx2::quantize_row_q4_1(src, out) };
            return true;
        }
        let _ = (src, out);
        false
    }
}

impl QuantizeWeighted for BlockQ4_1 {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        let p = Qkx2 { nmax: 15, rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };
        legacy_row::<Self>(x, qw, out, |xb, w| {
            let mut l = [0u8; 32];
            let (d, the_min) = make_qkx2_quants(&p, xb, w, &mut l, simd);
            BlockQ4_1 { d: f16::from_f32(d), m: f16::from_f32(-the_min), qs: pack_nibbles(&l) }
        });
    }
}
