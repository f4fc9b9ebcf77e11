//! Q3_K quantizer, ggml `quantize_row_q3_K_ref`: per 16 elements `make_q3_quants` (nmax 4),
//! then the 16 scales as signed 6-bit integers against the one of largest magnitude
//! (iscale = −32 / max_scale, d = 1 / iscale), then the quants again from the rounded
//! scales: q = clamp(nearest_int(x / (d·sc)), −4, 3) + 4, split into 2 low bits (`qs`,
//! packed like Q2_K) and a high bit (`hmask`: element j → bit j / 32 of byte j % 32).
//!
//! With an importance matrix, ggml `quantize_row_q3_K_impl`: per 16 elements
//! `make_qx_quants` (nmax 4) with weights qw·sqrt(σ² + x²) (σ² = 2·Σx²/256 over the
//! super-block), then the 16 scales by `make_qx_quants` (nmax 32) weighted by the
//! sub-blocks' weight sums, whose quants are the stored 6-bit scales and whose result is d;
//! the same requantization.

use super::k_search::{importance, make_q3_quants, make_qx_quants, nearest_int, sum_squares};
use super::pack_2bit;
use super::weighted::{each_block, QuantizeWeighted};
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
            pack_scale(&mut packed, j, ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8);
        }
        f16::from_f32(1.0 / iscale)
    } else {
        f16::from_f32(0.0)
    };
    requantize(x, &mut l, packed, d)
}

/// Stores the 6-bit scale `q` (offset by 32) of sub-block `j`: low 4 bits in the nibbles of
/// bytes 0..8, high 2 bits in bytes 8..12.
fn pack_scale(packed: &mut [u8; 12], j: usize, q: u8) {
    if j < 8 {
        packed[j] = q & 0xF;
    } else {
        packed[j - 8] |= (q & 0xF) << 4;
    }
    packed[j % 4 + 8] |= (q >> 4) << (2 * (j / 4));
}

/// The quants again from the stored scales (sub-blocks of scale 0 keep the search's), then
/// the block.
fn requantize(x: &[f32], l: &mut [i8; 256], packed: [u8; 12], d: f16) -> BlockQ3_K {
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

impl QuantizeWeighted for BlockQ3_K {
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool) {
        each_block::<Self>(x, qw, out, |x, qw| quantize_q3_k_weighted(x, qw, simd));
    }
}

/// One block with importance weights `qw` (ggml `quantize_row_q3_K_impl`).
fn quantize_q3_k_weighted(x: &[f32], qw: &[f32], simd: bool) -> BlockQ3_K {
    let sigma2 = 2.0 * sum_squares(x) / 256.0;
    let mut l = [0i8; 256];
    let (mut scales, mut sw) = ([0.0f32; 16], [0.0f32; 16]);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let weights: [f32; 16] = importance(&qw[16 * j..16 * j + 16], xs, sigma2);
        for &w in &weights {
            sw[j] += w;
        }
        scales[j] = make_qx_quants(4, xs, &weights, &mut l[16 * j..16 * j + 16], simd);
    }
    let mut ls = [0i8; 16];
    let d_block = make_qx_quants(32, &scales, &sw, &mut ls, simd);
    let mut packed = [0u8; 12];
    for (j, &q) in ls.iter().enumerate() {
        pack_scale(&mut packed, j, q as u8);
    }
    requantize(x, &mut l, packed, f16::from_f32(d_block))
}
