//! Q5_1 quantizer, ggml `quantize_row_q5_1_ref`: d = (max − min) / 31, m = min,
//! q = trunc((x − min) / d + 0.5); bits packed as Q5_0. ggml casts to `uint8_t` without the
//! `MIN(31, …)` of the other formats (gguf-py clips at 31); for finite input the value is at
//! most 31.5 plus rounding, so both agree and our cap only guards the unspecified cases.
//! With an importance matrix, ggml `quantize_row_q5_1_impl`: per block `make_qkx3_quants`
//! (nmax 31, rmin −0.9, rdelta 0.05, 36 steps, squared errors) with the weights of
//! `weighted::legacy_row`.

use super::k_search::{make_qkx2_quants, Qkx2};
use super::q5_0::{pack5, pack5_quants};
use super::weighted::{legacy_row, QuantizeWeighted};
use super::{inverse, min_max, trunc_capped, QuantizeBlock};
use crate::dequant::BlockQ5_1;
use half::f16;

impl QuantizeBlock for BlockQ5_1 {
    fn quantize(x: &[f32]) -> Self {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        let (qh, qs) = pack5(x, |v| trunc_capped((v - min) * id + 0.5, 31));
        BlockQ5_1 { d: f16::from_f32(d), m: f16::from_f32(min), qh, qs }
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { super::legacy_avx2::quantize_row_q5_1(src, out) };
            return true;
        }
        let _ = (src, out);
        false
    }
}

impl QuantizeWeighted for BlockQ5_1 {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        let p = Qkx2 { nmax: 31, rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };
        legacy_row::<Self>(x, qw, out, |xb, w| {
            let mut l = [0u8; 32];
            let (d, the_min) = make_qkx2_quants(&p, xb, w, &mut l, simd);
            let (qh, qs) = pack5_quants(&l);
            BlockQ5_1 { d: f16::from_f32(d), m: f16::from_f32(-the_min), qh, qs }
        });
    }
}
