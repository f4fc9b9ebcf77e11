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
    if avx512::available() {
        // SAFETY: AVX-512F detected.
        unsafe { avx512::exp_in_place(x) };
        return;
    }
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
    if avx512::available() {
        // SAFETY: AVX-512F detected.
        return unsafe { avx512::exp_sub_sum(x, max) };
    }
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

/// The largest element (NaN ignored, like a fold of `f32::max`; −∞ for an empty slice), with
/// 16 independent lanes so it vectorizes (a fold of `f32::max` is one serial chain).
pub fn max(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: AVX-512F detected.
        return unsafe { avx512::max(x) };
    }
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    chunks.remainder().iter().chain(&lanes).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Σ e^(x − max) over `x` in f64, `x` unchanged (the log-sum-exp of scoring: perplexity.cpp's
/// `log_softmax` sums `expf(l − max)` in f64; this exp is within 2 ulp of it).
pub fn sum_exp_sub(x: &[f32], max: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        // SAFETY: AVX-512F detected.
        return unsafe { avx512::sum_exp_sub(x, max) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA detected.
        return unsafe { avx2::sum_exp_sub(x, max) };
    }
    x.iter().map(|&v| (v - max).exp() as f64).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    pub(super) const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 = LN2_HI + LN2_LO with LN2_HI exact in few bits (n·LN2_HI exact for |n| < 2⁹).
    pub(super) const LN2_HI: f32 = 0.693_145_75;
    pub(super) const LN2_LO: f32 = 1.428_606_8e-6;
    pub(super) const HI: f32 = 88.722_83;
    pub(super) const LO: f32 = -87.336_55;

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

    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sum_exp_sub(x: &[f32], max: f32) -> f64 {
        let m = _mm256_set1_ps(max);
        // Four f64 accumulator pairs: the adds are independent across iterations.
        let mut s = [_mm256_setzero_pd(); 4];
        let mut chunks = x.chunks_exact(16);
        for c in &mut chunks {
            let e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), m));
            let e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr().add(8)), m));
            s[0] = _mm256_add_pd(s[0], _mm256_cvtps_pd(_mm256_castps256_ps128(e0)));
            s[1] = _mm256_add_pd(s[1], _mm256_cvtps_pd(_mm256_extractf128_ps(e0, 1)));
            s[2] = _mm256_add_pd(s[2], _mm256_cvtps_pd(_mm256_castps256_ps128(e1)));
            s[3] = _mm256_add_pd(s[3], _mm256_cvtps_pd(_mm256_extractf128_ps(e1, 1)));
        }
        let mut lanes = [0f64; 4];
        _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_add_pd(_mm256_add_pd(s[0], s[1]), _mm256_add_pd(s[2], s[3])));
        let rest = chunks.remainder();
        let mut buf = [0f32; 16];
        buf[..rest.len()].copy_from_slice(rest);
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + exp_sub_sum(&mut buf[..rest.len()], max)
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

/// The same method on 16 lanes (AVX-512F): every lane runs the same IEEE operations as
/// `avx2::exp8` (masked blends for its `blendv`s), so the exponentials are bit-identical to
/// the AVX2 path's; only the f64 order of `exp_sub_sum`'s total differs.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::avx2::{HI, LN2_HI, LN2_LO, LO, LOG2E};
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// e^x on 16 lanes.
    #[inline(always)]
    unsafe fn exp16(x: __m512) -> __m512 {
        let c = |v: f32| _mm512_set1_ps(v);
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(x, c(LOG2E)));
        let r = _mm512_fnmadd_ps(n, c(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, c(LN2_LO), r);
        let mut p = c(1.0 / 5040.0);
        p = _mm512_fmadd_ps(p, r, c(1.0 / 720.0));
        p = _mm512_fmadd_ps(p, r, c(1.0 / 120.0));
        p = _mm512_fmadd_ps(p, r, c(1.0 / 24.0));
        p = _mm512_fmadd_ps(p, r, c(1.0 / 6.0));
        p = _mm512_fmadd_ps(p, r, c(0.5));
        p = _mm512_fmadd_ps(p, r, c(1.0));
        p = _mm512_fmadd_ps(p, r, c(1.0));
        let nc = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(n, c(128.0)), c(-126.0)));
        let h = _mm512_srai_epi32::<1>(nc);
        let pow2 =
            |e: __m512i| _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(e, _mm512_set1_epi32(127))));
        let mut y = _mm512_mul_ps(_mm512_mul_ps(p, pow2(h)), pow2(_mm512_sub_epi32(nc, h)));
        y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(LO)), y, _mm512_setzero_ps());
        y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, c(HI)), y, c(f32::INFINITY));
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
    }

    /// The lanes of `e` summed into two f64 accumulators.
    #[inline(always)]
    unsafe fn add_pd(s: &mut [__m512d; 2], e: __m512) {
        s[0] = _mm512_add_pd(s[0], _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s[1] = _mm512_add_pd(s[1], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e)))));
    }

    /// `x ← e^(x − max)` (`store`) and Σ in f64; the tail through a masked step.
    #[inline(always)]
    unsafe fn run<const STORE: bool>(x: *mut f32, n: usize, max: f32) -> f64 {
        let m = _mm512_set1_ps(max);
        let mut s = [_mm512_setzero_pd(); 2];
        let mut i = 0;
        while i + 16 <= n {
            let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x.add(i)), m));
            if STORE {
                _mm512_storeu_ps(x.add(i), e);
            }
            add_pd(&mut s, e);
            i += 16;
        }
        if i < n {
            let k: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x.add(i)), m));
            if STORE {
                _mm512_mask_storeu_ps(x.add(i), k, e);
            }
            add_pd(&mut s, _mm512_maskz_mov_ps(k, e));
        }
        _mm512_reduce_add_pd(_mm512_add_pd(s[0], s[1]))
    }

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn max(x: &[f32]) -> f32 {
        // `vmaxps` returns its second operand when either is NaN: with the running maxima
        // second, a NaN element is skipped, as `f32::max` skips it.
        let (p, n) = (x.as_ptr(), x.len());
        let mut m = [_mm512_set1_ps(f32::NEG_INFINITY); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (j, mj) in m.iter_mut().enumerate() {
                *mj = _mm512_max_ps(_mm512_loadu_ps(p.add(i + 16 * j)), *mj);
            }
            i += 64;
        }
        while i + 16 <= n {
            m[0] = _mm512_max_ps(_mm512_loadu_ps(p.add(i)), m[0]);
            i += 16;
        }
        let v = _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]));
        let mut lanes = [0f32; 16];
        _mm512_storeu_ps(lanes.as_mut_ptr(), v);
        x[i..].iter().chain(&lanes).copied().fold(f32::NEG_INFINITY, f32::max)
    }

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_in_place(x: &mut [f32]) {
        let (p, n) = (x.as_mut_ptr(), x.len());
        let mut i = 0;
        while i + 16 <= n {
            _mm512_storeu_ps(p.add(i), exp16(_mm512_loadu_ps(p.add(i))));
            i += 16;
        }
        if i < n {
            let k: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            _mm512_mask_storeu_ps(p.add(i), k, exp16(_mm512_maskz_loadu_ps(k, p.add(i))));
        }
    }

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_sub_sum(x: &mut [f32], max: f32) -> f64 {
        run::<true>(x.as_mut_ptr(), x.len(), max)
    }

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum_exp_sub(x: &[f32], max: f32) -> f64 {
        // Read-only: `run::<false>` never stores through the pointer.
        run::<false>(x.as_ptr() as *mut f32, x.len(), max)
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

    /// The AVX-512 exponentials equal the AVX2 ones bit for bit (odd lengths: masked tails).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_exp_equals_avx2_exp() {
        let has = |f: &str| match f {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            _ => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
        };
        if !(has("avx512f") && has("avx2")) {
            eprintln!("this CPU lacks AVX-512F or AVX2: nothing to compare");
            return;
        }
        let mut xs: Vec<f32> = (0..100_003).map(|i| -95.0 + i as f32 * (190.0 / 100_003.0)).collect();
        xs.extend([0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 88.72, -87.33, 1e-30]);
        let (mut a, mut b) = (xs.clone(), xs.clone());
        // SAFETY: both instruction sets detected above.
        unsafe {
            avx2::exp_in_place(&mut a);
            avx512::exp_in_place(&mut b);
        }
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(x.to_bits() == y.to_bits(), "exp({}) avx2 {x} avx512 {y}", xs[i]);
        }
        for n in [1, 15, 16, 17, 33] {
            let (mut a, mut b) = (xs[..n].to_vec(), xs[..n].to_vec());
            // SAFETY: as above.
            let (sa, sb) = unsafe { (avx2::exp_sub_sum(&mut a, 1.0), avx512::exp_sub_sum(&mut b, 1.0)) };
            assert_eq!(a, b);
            assert!((sa - sb).abs() <= 1e-15 * sa.abs().max(1e-300), "{sa} vs {sb}");
            // SAFETY: as above.
            assert_eq!(unsafe { avx512::sum_exp_sub(&xs[..n], 1.0) }, sb);
        }
    }

    #[test]
    fn max_equals_a_fold_of_f32_max() {
        for n in [0usize, 1, 15, 16, 17, 100, 49_157] {
            let mut x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 * 0.37 - 150.0).collect();
            let want = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&x), want, "n={n}");
            if n > 3 {
                x[2] = f32::NAN;
                x[n - 1] = 1e9;
                assert_eq!(max(&x), 1e9, "n={n} with a NaN");
            }
        }
    }

    #[test]
    fn sum_exp_sub_equals_the_sum_of_exp_sub_sum() {
        for n in [0, 1, 7, 8, 15, 16, 17, 49_157] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37) % 101) as f32 * 0.17 - 9.0).collect();
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut e = x.clone();
            let want = exp_sub_sum(&mut e, max);
            let got = sum_exp_sub(&x, max);
            assert!((got - want).abs() <= 1e-12 * want.max(1.0), "n={n}: {got} vs {want}");
            let libm: f64 = x.iter().map(|&v| (v - max).exp() as f64).sum();
            assert!((got - libm).abs() <= 4e-7 * libm.max(1e-30), "n={n}: {got} vs libm {libm}");
        }
    }
}
