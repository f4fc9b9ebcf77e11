//! Q3_K quantizer, ggml `quantize_row_q3_K_ref`: per 16 elements `make_q3_quants` (nmax 4),
//! then the 16 scales as signed 6-bit integers against the one of largest magnitude
//! (iscale = −32 / max_scale, d = 1 / iscale), then the quants again from the rounded
//! scales: q = clamp(nearest_int(x / (d·sc)), −4, 3) + 4, split into 2 low bits (`qs`,
//! packed like Q2_K) and a high bit (`hmask`: element j → bit j / 32 of byte j % 32).

use super::k_search::{make_q3_quants, nearest_int};
use super::pack_2bit;
use super::QuantizeBlock;
use crate::dequant::BlockQ3_K;
use half::f16;

impl QuantizeBlock for BlockQ3_K {
    fn quantize(x: &[f32]) -> Self {
        quantize_q3_k(x, false)
    }

    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        super::k_row_fast(src, out, |x| quantize_q3_k(x, true))
    }
}

/// The 16 `make_q3_quants(4, …)` of a block; with `simd` on an AVX2 CPU, 8 sub-blocks per
/// vector (`q3_iq4_avx2.rs`, same results).
fn sub_block_quants(x: &[f32], l: &mut [i8; 256], simd: bool) -> [f32; 16] {
    #[cfg(target_arch = "x86_64")]
    if simd && super::k_search::simd_available() {
        use super::q3_iq4_avx2::make_q3_quants_x8;
        // SAFETY: the CPU supports AVX2 (checked by `simd_available`).
        let (a, b) =
            unsafe { (make_q3_quants_x8(&x[..128], &mut l[..128]), make_q3_quants_x8(&x[128..], &mut l[128..])) };
        return std::array::from_fn(|j| if j < 8 { a[j] } else { b[j - 8] });
    }
    let _ = simd;
    std::array::from_fn(|j| make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]))
}

/// One block; `simd` selects the SIMD sub-block search (same bytes).
fn quantize_q3_k(x: &[f32], simd: bool) -> BlockQ3_K {
    {
        let mut l = [0i8; 256];
        let scales = sub_block_quants(x, &mut l, simd);
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for s in &scales {
            if s.abs() > amax {
                amax = s.abs();
                max_scale = *s;
            }
        }
        let mut packed = [0u8; 12];
        let d = if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                // ggml: `int8_t l = nearest_int(...)` (wrapping), clamped to [−32, 31], + 32.
                let q = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    packed[j] = q & 0xF;
                } else {
                    packed[j - 8] |= (q & 0xF) << 4;
                }
                packed[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
            }
            f16::from_f32(1.0 / iscale)
        } else {
            f16::from_f32(0.0)
        };
        for j in 0..16 {
            let low = if j < 8 { packed[j] & 0xF } else { packed[j - 8] >> 4 };
            let sc = (low | (((packed[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i8 - 32;
            let dj = d.to_f32() * sc as f32;
            if dj == 0.0 {
                continue;
            }
            for (o, &v) in l[16 * j..16 * j + 16].iter_mut().zip(&x[16 * j..16 * j + 16]) {
                *o = (nearest_int(v / dj).clamp(-4, 3) + 4) as i8;
            }
        }
        let mut hmask = [0u8; 32];
        let mut low = [0u8; 256];
        for (j, (&q, lo)) in l.iter().zip(low.iter_mut()).enumerate() {
            let q = q as u8;
            if q > 3 {
                hmask[j % 32] |= 1 << (j / 32);
                *lo = q - 4;
            } else {
                *lo = q;
            }
        }
        BlockQ3_K { hmask, qs: pack_2bit(&low), scales: packed, d }
    }
}
