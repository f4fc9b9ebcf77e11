//! Integer dot-product kernels over unpacked weights ([`super::unpack::Tile`]) and activations
//! in integer form ([`ActInts`]): a portable scalar kernel and an AVX2 one (picked at run
//! time). Both compute, per block, the exact integer sum Σ q_w·q_a (times the per-16 integer
//! scales for K types) like ggml's `ggml_vec_dot_*`; they differ only in the order of the f32
//! accumulation across blocks (the AVX2 kernel keeps 8 f32 lanes, ggml-style).

use super::unpack::{Kind, Tile};

/// Activation rows as integers plus per-block f32 scales (decoded once from Q8_0/Q8_1/Q8_K).
#[derive(Default)]
pub(crate) struct ActInts {
    pub k: usize,
    /// Elements per block (32 or 256).
    pub bs: usize,
    pub q: Vec<i8>,
    pub d: Vec<f32>,
    /// Q8_1 `s` per block (empty otherwise).
    pub s: Vec<f32>,
    /// Q8_K sums per 16 quants (empty otherwise).
    pub bsums: Vec<i16>,
}

/// One weight row of a tile and one activation row, as slices.
#[derive(Clone, Copy)]
pub(crate) struct RowRef<'a> {
    pub q: &'a [i8],
    pub d: &'a [f32],
    pub m: &'a [f32],
    pub sc: &'a [i16],
    pub mins: &'a [i16],
}

impl Tile {
    pub fn row(&self, r: usize, kind: Kind) -> RowRef<'_> {
        let k = self.k;
        let nb = match kind {
            Kind::Legacy { .. } => k / 32,
            Kind::K { .. } => k / 256,
        };
        let (sc, mins): (&[i16], &[i16]) = match kind {
            Kind::Legacy { .. } => (&[], &[]),
            Kind::K { .. } => (&self.sc[r * k / 2..(r + 1) * k / 2], &self.mins[r * k / 16..(r + 1) * k / 16]),
        };
        RowRef {
            q: &self.q[r * k..(r + 1) * k],
            d: &self.d[r * nb..(r + 1) * nb],
            m: &self.m[r * nb..(r + 1) * nb],
            sc,
            mins,
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct ActRef<'a> {
    pub q: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub bsums: &'a [i16],
}

impl ActInts {
    pub fn row(&self, t: usize) -> ActRef<'_> {
        let (k, nb) = (self.k, self.k / self.bs);
        ActRef {
            q: &self.q[t * k..(t + 1) * k],
            d: &self.d[t * nb..(t + 1) * nb],
            s: if self.s.is_empty() { &[] } else { &self.s[t * nb..(t + 1) * nb] },
            bsums: if self.bsums.is_empty() { &[] } else { &self.bsums[t * k / 16..(t + 1) * k / 16] },
        }
    }
}

/// Scalar kernel: one weight row · one activation row.
pub(crate) fn dot_scalar(kind: Kind, w: RowRef, a: ActRef) -> f32 {
    let mut sumf = 0f32;
    match kind {
        Kind::Legacy { has_min } => {
            for (b, (wq, aq)) in w.q.chunks_exact(32).zip(a.q.chunks_exact(32)).enumerate() {
                let sumi: i32 = wq.iter().zip(aq).map(|(&x, &y)| x as i32 * y as i32).sum();
                sumf += (w.d[b] * a.d[b]) * sumi as f32;
                if has_min {
                    sumf += w.m[b] * a.s[b];
                }
            }
        }
        Kind::K { has_min } => {
            for (b, (wq, aq)) in w.q.chunks_exact(256).zip(a.q.chunks_exact(256)).enumerate() {
                let mut sumi = 0i32;
                for g in 0..16 {
                    let s: i32 = wq[16 * g..16 * g + 16]
                        .iter()
                        .zip(&aq[16 * g..16 * g + 16])
                        .map(|(&x, &y)| x as i32 * y as i32)
                        .sum();
                    sumi += w.sc[b * 128 + g * 8] as i32 * s;
                }
                sumf += (w.d[b] * a.d[b]) * sumi as f32;
                if has_min {
                    let summ: i32 = (0..16).map(|g| w.mins[b * 16 + g] as i32 * a.bsums[b * 16 + g] as i32).sum();
                    sumf -= (w.m[b] * a.d[b]) * summ as f32;
                }
            }
        }
    }
    sumf
}

/// True when the AVX2 kernels can run on this CPU.
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{ActRef, Kind, RowRef};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Σ x·y of 32 signed bytes as 16 i16 lanes (pairs), ggml's `_mm256_maddubs_epi16` with the
    /// sign moved onto y. No i16 saturation: |x| ≤ 128, |y| ≤ 127 gives ≤ 32512 per pair.
    #[inline(always)]
    unsafe fn mul_pairs(x: __m256i, y: __m256i) -> __m256i {
        _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
    }

    /// `R` weight rows · one activation row → `out[..R]`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; every row and `a` must hold the same `k`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn dot_rows<const R: usize>(kind: Kind, w: [RowRef; R], a: ActRef, out: &mut [f32]) {
        let k = a.q.len();
        let mut acc = [_mm256_setzero_ps(); R];
        let mut accm = [_mm256_setzero_ps(); R];
        let aq = a.q.as_ptr();
        match kind {
            Kind::Legacy { has_min } => {
                let ones = _mm256_set1_epi16(1);
                for b in 0..k / 32 {
                    let y = _mm256_loadu_si256(aq.add(32 * b) as *const __m256i);
                    let da = *a.d.get_unchecked(b);
                    for r in 0..R {
                        let x = _mm256_loadu_si256(w[r].q.as_ptr().add(32 * b) as *const __m256i);
                        let p = _mm256_madd_epi16(mul_pairs(x, y), ones);
                        let scale = _mm256_set1_ps(*w[r].d.get_unchecked(b) * da);
                        acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc[r]);
                    }
                }
                if has_min {
                    // Σ_b m_w·s_a, 8 blocks at a time (+ a scalar tail below).
                    let nb = k / 32;
                    for r in 0..R {
                        let mut b = 0;
                        while b + 8 <= nb {
                            let m = _mm256_loadu_ps(w[r].m.as_ptr().add(b));
                            let s = _mm256_loadu_ps(a.s.as_ptr().add(b));
                            accm[r] = _mm256_fmadd_ps(m, s, accm[r]);
                            b += 8;
                        }
                        let mut tail = 0f32;
                        while b < nb {
                            tail += *w[r].m.get_unchecked(b) * *a.s.get_unchecked(b);
                            b += 1;
                        }
                        *out.get_unchecked_mut(r) = hsum(acc[r]) + hsum(accm[r]) + tail;
                    }
                    return;
                }
            }
            Kind::K { has_min } => {
                for b in 0..k / 256 {
                    let mut isum = [_mm256_setzero_si256(); R];
                    for c in 0..8 {
                        let off = 256 * b + 32 * c;
                        let y = _mm256_loadu_si256(aq.add(off) as *const __m256i);
                        for r in 0..R {
                            let x = _mm256_loadu_si256(w[r].q.as_ptr().add(off) as *const __m256i);
                            let sc = _mm256_loadu_si256(w[r].sc.as_ptr().add(off / 2) as *const __m256i);
                            isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(mul_pairs(x, y), sc));
                        }
                    }
                    let da = *a.d.get_unchecked(b);
                    for r in 0..R {
                        let scale = _mm256_set1_ps(*w[r].d.get_unchecked(b) * da);
                        acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum[r]), acc[r]);
                    }
                    if has_min {
                        let bs = _mm256_loadu_si256(a.bsums.as_ptr().add(16 * b) as *const __m256i);
                        for r in 0..R {
                            let mn = _mm256_loadu_si256(w[r].mins.as_ptr().add(16 * b) as *const __m256i);
                            let mm = _mm256_madd_epi16(mn, bs);
                            let scale = _mm256_set1_ps(*w[r].m.get_unchecked(b) * da);
                            accm[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(mm), accm[r]);
                        }
                    }
                }
            }
        }
        for r in 0..R {
            *out.get_unchecked_mut(r) = hsum(acc[r]) - hsum(accm[r]);
        }
    }
}
