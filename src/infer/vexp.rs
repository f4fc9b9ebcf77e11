//! Vectorized `exp` for the softmax of attention and for SiLU (AVX2 + FMA at run time, libm
//! otherwise).
//!
//! Method (the textbook one): `e^x = 2^n · e^r` with `n = round(x·log2 e)` and
//! `r = x − n·ln 2` (ln 2 split in a high and a low part, two FMAs, so `r` is accurate to a few
//! ulp), `e^r` by its Taylor polynomial to degree 7 on |r| ≤ ln2/2 (truncation error
//! < 0.35⁸/8! ≈ 5·10⁻⁹, below half an ulp), `2^n` built in the exponent bits. Measured against
//! libm `expf` (test below): ≤ 2 ulp. Results below e^-87.3 (subnormal in f32) are flushed to 0,
//! results above e^88.7 are +inf, NaN stays NaN.

/// `x ← e^x` for every element.
pub fn exp_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA detected.
        unsafe { avx2::exp_in_place(x) };
        return;
    }
    x.iter_mut().for_each(|v| *v = v.exp());
}

/// `x ← e^(x − max)` for every element; returns Σ of the results in f64.
pub fn exp_sub_sum(x: &mut [f32], max: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA detected.
        return unsafe { avx2::exp_sub_sum(x, max) };
    }
    let mut sum = 0.0f64;
    for v in x {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 = LN2_HI + LN2_LO with LN2_HI exact in few bits (n·LN2_HI exact for |n| < 2⁹).
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const HI: f32 = 88.722_83;
    const LO: f32 = -87.336_55;

    /// e^x on 8 lanes.
    #[inline(always)]
    unsafe fn exp8(x: __m256) -> __m256 {
        let n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        // Horner: 1 + r(1 + r/2(1 + r/3(1 + r/4(1 + r/5(1 + r/6(1 + r/7)))))), as coefficients.
        let c = |v: f32| _mm256_set1_ps(v);
        let mut p = c(1.0 / 5040.0);
        p = _mm256_fmadd_ps(p, r, c(1.0 / 720.0));
        p = _mm256_fmadd_ps(p, r, c(1.0 / 120.0));
        p = _mm256_fmadd_ps(p, r, c(1.0 / 24.0));
        p = _mm256_fmadd_ps(p, r, c(1.0 / 6.0));
        p = _mm256_fmadd_ps(p, r, c(0.5));
        p = _mm256_fmadd_ps(p, r, c(1.0));
        p = _mm256_fmadd_ps(p, r, c(1.0));
        // 2^n as 2^h · 2^(n−h), h = ⌊n/2⌋, both factors normal for n in [-126, 128] (e^88.7
        // needs n = 128); multiplying by powers of two is exact. Lanes outside are fixed up.
        let nc = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(n, c(128.0)), c(-126.0)));
        let h = _mm256_srai_epi32(nc, 1);
        let pow2 = |e: __m256i| _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
        let mut y = _mm256_mul_ps(_mm256_mul_ps(p, pow2(h)), pow2(_mm256_sub_epi32(nc, h)));
        y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, c(LO), _CMP_LT_OQ));
        y = _mm256_blendv_ps(y, c(f32::INFINITY), _mm256_cmp_ps(x, c(HI), _CMP_GT_OQ));
        // NaN in, NaN out.
        _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q))
    }

    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_in_place(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            _mm256_storeu_ps(c.as_mut_ptr(), exp8(_mm256_loadu_ps(c.as_ptr())));
        }
        tail(chunks.into_remainder(), 0.0);
    }

    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_sub_sum(x: &mut [f32], max: f32) -> f64 {
        let m = _mm256_set1_ps(max);
        let (mut s0, mut s1) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), m));
            _mm256_storeu_ps(c.as_mut_ptr(), e);
            s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
            s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
        }
        let mut lanes = [0f64; 4];
        _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(s0, s1));
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail(chunks.into_remainder(), max)
    }

    /// The last < 8 elements through the same 8-lane code (padded copy).
    #[inline(always)]
    unsafe fn tail(x: &mut [f32], max: f32) -> f64 {
        if x.is_empty() {
            return 0.0;
        }
        let mut buf = [0f32; 8];
        buf[..x.len()].copy_from_slice(x);
        let mut out = [0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), exp8(_mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), _mm256_set1_ps(max))));
        x.copy_from_slice(&out[..x.len()]);
        x.iter().map(|&v| v as f64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulp_diff(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn matches_libm_within_2_ulp() {
        // A dense sweep of the normal range plus the edges.
        let mut xs: Vec<f32> = (0..200_000).map(|i| -87.0 + i as f32 * (175.0 / 200_000.0)).collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 88.7, -87.3, 0.5, -0.5]);
        let mut got = xs.clone();
        exp_in_place(&mut got);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = x.exp();
            assert!(ulp_diff(g, want) <= 2, "exp({x}) = {g}, libm {want}");
        }
        let mut edge = vec![-1000.0, 1000.0, f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -100.0, 100.0];
        exp_in_place(&mut edge);
        assert_eq!(&edge[..2], &[0.0, f32::INFINITY]);
        assert!(edge[2].is_nan());
        assert_eq!(&edge[3..], &[0.0, f32::INFINITY, 0.0, f32::INFINITY]);
    }

    #[test]
    fn exp_sub_sum_sums_the_results() {
        let mut x: Vec<f32> = (0..37).map(|i| i as f32 * 0.3 - 5.0).collect();
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let want: Vec<f32> = x.iter().map(|&v| (v - max).exp()).collect();
        let sum = exp_sub_sum(&mut x, max);
        for (&g, &w) in x.iter().zip(&want) {
            assert!(ulp_diff(g, w) <= 2, "{g} vs {w}");
        }
        let ws: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum - ws).abs() <= 1e-12 * ws, "{sum} vs {ws}");
    }
}
