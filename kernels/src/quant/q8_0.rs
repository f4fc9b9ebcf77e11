//! Q8_0 quantizer, ggml `quantize_row_q8_0_ref`: d = amax / 127, q = roundf(x / d)
//! (half away from zero, Rust's `f32::round`), computed as `x · (1 / d)` like ggml.
//!
//! An AVX2 row kernel (x86_64, picked at run time) performs the same IEEE operations lane
//! by lane, so its bytes equal the scalar reference (tested in `tests/quant_legacy.rs`).

use super::{inverse, QuantizeBlock};
use crate::dequant::BlockQ8_0;
use half::f16;

impl QuantizeBlock for BlockQ8_0 {
    fn quantize(x: &[f32]) -> Self {
        let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = inverse(d);
        let mut qs = [0i8; 32];
        for (q, &v) in qs.iter_mut().zip(x) {
            // |v · id| ≤ 127 (up to rounding), so the saturating cast never saturates here.
            *q = (v * id).round() as i8;
        }
        BlockQ8_0 { d: f16::from_f32(d), qs }
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { avx2::quantize_row(src, out) };
            return true;
        }
        let _ = (src, out);
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::inverse;
    use half::f16;
    use std::arch::x86_64::*;

    /// Quantizes whole blocks of `src` into `out` (34 bytes per 32 values).
    ///
    /// Same operations as the scalar reference: amax is an exact maximum (order does not
    /// matter), d and 1/d are computed in scalar f32, the product is one IEEE multiply per
    /// lane, and round-half-away-from-zero is `t + trunc(2 · (p − t))` with `t = trunc(p)`,
    /// exact because `p − t` is exact (|p − t| < 1, same sign) and doubling is exact.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_row(src: &[f32], out: &mut [u8]) {
        const TRUNC: i32 = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (x, o) in src.chunks_exact(32).zip(out.chunks_exact_mut(34)) {
            // SAFETY: `x` holds 32 f32, read as four unaligned 8-lane vectors.
            let v: [__m256; 4] = std::array::from_fn(|k| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) });
            // max_ps(a, acc) returns acc when a is NaN: NaN is skipped like `f32::max` does.
            let mut m = _mm256_setzero_ps();
            for vk in v {
                m = _mm256_max_ps(_mm256_and_ps(vk, abs_mask), m);
            }
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let m1 = _mm_max_ss(m2, _mm_shuffle_ps::<0b01>(m2, m2));
            let amax = _mm_cvtss_f32(m1);
            let d = amax / 127.0;
            let id = _mm256_set1_ps(inverse(d));
            let q: [__m256i; 4] = std::array::from_fn(|k| {
                let p = _mm256_mul_ps(v[k], id);
                // Rust's saturating `as i8` (NaN → 0, beyond ±127.5 → the end of the range;
                // reached when 1/d overflows for a tiny block): NaN to 0, then clamp to
                // [−129, 128], whose rounded values the signed packs below saturate alike.
                let p = _mm256_and_ps(p, _mm256_cmp_ps::<_CMP_ORD_Q>(p, p));
                let p = _mm256_min_ps(_mm256_max_ps(p, _mm256_set1_ps(-129.0)), _mm256_set1_ps(128.0));
                let t = _mm256_round_ps::<TRUNC>(p);
                let frac2 = _mm256_mul_ps(_mm256_sub_ps(p, t), _mm256_set1_ps(2.0));
                _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_round_ps::<TRUNC>(frac2)))
            });
            // i32 → i16 → i8 packs interleave the 128-bit lanes; the permute restores order.
            let q16a = _mm256_packs_epi32(q[0], q[1]);
            let q16b = _mm256_packs_epi32(q[2], q[3]);
            let q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), order);
            o[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
            // SAFETY: `o[2..]` is 32 bytes, written as one unaligned vector.
            unsafe { _mm256_storeu_si256(o[2..].as_mut_ptr().cast(), q8) };
        }
    }
}
