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
        let mut l = [0i8; 256];
        let mut scales = [0.0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for (j, s) in scales.iter_mut().enumerate() {
            *s = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
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
