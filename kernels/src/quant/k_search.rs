//! The scale searches shared by the K-quant quantizers, after ggml `ggml-quants.c`
//! (`nearest_int`, `make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`), operation for
//! operation in f32 and in C's evaluation order (left to right, `int` operands converted to
//! `float`), without fused multiply-adds. Only the variants the `quantize_row_q*_K_ref`
//! functions use are implemented (no importance weights `qw`).
//!
//! With `simd` set (the fast path) and an AVX2 CPU, the candidate-scale loops of
//! `make_qx_quants` and `make_qkx2_quants` run 8 candidates per vector
//! (`k_search_avx2.rs`) with bit-identical results; the reference path passes `false`.

/// True when this CPU runs the SIMD candidate loops.
pub(super) fn simd_available() -> bool {
    use_avx2(true)
}

/// True when the AVX2 candidate loops may run.
fn use_avx2(simd: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    if simd {
        return std::arch::is_x86_feature_detected!("avx2");
    }
    let _ = simd;
    false
}

/// Below this |max| a group counts as all zero (ggml `GROUP_MAX_EPS`).
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml `nearest_int`: adding 1.5·2²³ puts the integer part in the low mantissa bits, so the
/// f32 addition itself rounds to nearest, ties to even; valid for |v| ≤ 4194303 (ggml
/// asserts it), and some deterministic integer beyond.
pub(super) fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0f32).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// The value of largest magnitude, the first on ties, and its magnitude (ggml's
/// `if (ax > amax) { amax = ax; max = x[i]; }` starting from zeros).
fn signed_max(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// ggml `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL)`: symmetric quants
/// `L[i] ∈ [0, 2·nmax)` (offset by nmax) and their scale, weighting errors by x²; tries
/// the 19 inverse scales −(nmax + 0.1·is)/max and keeps the best weighted least-squares fit.
pub(super) fn make_qx_quants_rmse1(nmax: i32, x: &[f32], l_out: &mut [i8], simd: bool) -> f32 {
    let (max, amax) = signed_max(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = (quant(iscale, v) + nmax) as i8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    #[cfg(target_arch = "x86_64")]
    if use_avx2(simd) {
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        unsafe { super::k_search_avx2::qx_candidates(nmax, x, max, &mut scale, &mut best, l_out) };
        return scale;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &v) in l_out.iter_mut().zip(x) {
                *o = (quant(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// The importance weights of ggml's `quantize_row_*_impl`: `qw[j] · sqrtf(sigma2 + x[j]²)`.
pub(super) fn importance<const N: usize>(qw: &[f32], x: &[f32], sigma2: f32) -> [f32; N] {
    std::array::from_fn(|j| qw[j] * (sigma2 + x[j] * x[j]).sqrt())
}

/// Σ x² in order (ggml's `sumx2` loops).
pub(super) fn sum_squares(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// ggml `make_q3_quants(n, nmax, x, L, do_rmse = true)`: symmetric quants offset by nmax
/// (an all-zero group keeps `L = 0`, not nmax, like ggml), refined by up to 5 passes of
/// single-element changes that improve the x²-weighted fit.
pub(super) fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (max, amax) = signed_max(x);
    if amax < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (o, &v) in l_out.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *o = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (o, &v) in l_out.iter_mut().zip(x) {
            let w = v * v;
            let cur = *o as f32;
            let mut slx = sumlx - w * v * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *o as i32 {
                    let nl = new_l as f32;
                    slx += w * v * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *o = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for o in l_out.iter_mut() {
        *o += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Parameters of ggml `make_qkx2_quants` besides the data.
pub(super) struct Qkx2 {
    pub nmax: i32,
    pub rmin: f32,
    pub rdelta: f32,
    pub nstep: i32,
    /// Absolute instead of squared errors.
    pub use_mad: bool,
}

/// ggml `make_qkx2_quants`: affine quants `L[i] ∈ [0, nmax]` with value ≈ scale·L − the_min
/// (`the_min ≥ 0` unless the weighted fit says otherwise), searching the inverse scales
/// (rmin + rdelta·is + nmax)/(max − min), is = 0..=nstep, with a weighted least-squares
/// scale and minimum for each, keeping the smallest weighted error. Returns (scale, the_min).
pub(super) fn make_qkx2_quants(p: &Qkx2, x: &[f32], weights: &[f32], l_out: &mut [u8], simd: bool) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if p.use_mad { d.abs() } else { d * d };
    let nmax = p.nmax;
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    #[cfg(target_arch = "x86_64")]
    if use_avx2(simd) {
        use super::k_search_avx2::{qkx2_candidates, Qkx2State};
        let mut s = Qkx2State { max, min, scale, best_error, sum_w, sum_x };
        // SAFETY: the CPU supports AVX2 (checked by `use_avx2`).
        unsafe { qkx2_candidates(p, x, weights, &mut s, l_out) };
        return (s.scale, -s.min);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let (w, l) = (weights[i], l as f32);
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l_out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml `make_qp_quants(n, nmax, x, L, quant_weights)`: non-negative quants `L[i] ≤ nmax`
/// of the non-negative `x` (the sub-block scales or minimums of a super-block) and their
/// scale: the best of the inverse scales (nmax + 0.1·is)/max, is = −4..=4, by weighted
/// squared error, then up to 5 passes of single-element changes that improve the weighted
/// least-squares fit. Like ggml, `L` is `uint8_t` (a negative quant wraps) while the sums
/// use the `int` value.
pub(super) fn make_qp_quants(nmax: i32, x: &[f32], l_out: &mut [u8], qw: &[f32]) -> f32 {
    let mut max = 0.0f32;
    for &v in x {
        // ggml `MAX(max, x[i])`: `max > x[i] ? max : x[i]`.
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for (o, &v) in l_out.iter_mut().zip(x) {
        *o = nearest_int(iscale * v) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for ((&v, &w), &l) in x.iter().zip(qw).zip(l_out.iter()) {
        let diff = v - scale * l as f32;
        best_mse += w * diff * diff;
    }
    for is in (-4..=4).filter(|&is| is != 0) {
        let iscale_is = (0.1f32 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for (&v, &w) in x.iter().zip(qw) {
            let l = nearest_int(iscale_is * v).min(nmax);
            let diff = v - scale_is * l as f32;
            mse += w * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for ((o, &v), &w) in l_out.iter_mut().zip(x).zip(qw) {
        let l = nearest_int(iscale * v).min(nmax);
        *o = l as u8;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for ((o, &v), &w) in l_out.iter_mut().zip(x).zip(qw) {
            let cur = *o as f32;
            let mut slx = sumlx - w * v * cur;
            let mut sl2 = suml2 - w * cur * cur;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(v * sl2 / slx).min(nmax);
                if new_l != *o as i32 {
                    let nl = new_l as f32;
                    slx += w * v * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *o = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        let cases = [(0.5, 0), (1.5, 2), (2.5, 2), (-0.5, 0), (-1.5, -2), (-2.5, -2), (0.49999997, 0), (3.7, 4)];
        for (v, want) in cases {
            assert_eq!(nearest_int(v), want, "nearest_int({v})");
            assert_eq!(nearest_int(v), v.round_ties_even() as i32, "agrees with round_ties_even at {v}");
        }
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
    }
}
