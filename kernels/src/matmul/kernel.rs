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
        Kind::Legacy { signed, off, has_min } => {
            for (b, (wq, aq)) in w.q.chunks_exact(32).zip(a.q.chunks_exact(32)).enumerate() {
                let wv = |x: i8| if signed { x as i32 } else { x as u8 as i32 - off as i32 };
                let sumi: i32 = wq.iter().zip(aq).map(|(&x, &y)| wv(x) * y as i32).sum();
                sumf += (w.d[b] * a.d[b]) * sumi as f32;
                if has_min {
                    sumf += w.m[b] * a.s[b];
                }
            }
        }
        Kind::K { float_min, off } => {
            for (b, (wq, aq)) in w.q.chunks_exact(256).zip(a.q.chunks_exact(256)).enumerate() {
                let mut sumi = 0i32;
                for g in 0..16 {
                    let s: i32 = wq[16 * g..16 * g + 16]
                        .iter()
                        .zip(&aq[16 * g..16 * g + 16])
                        .map(|(&x, &y)| (x as u8 as i32 - off as i32) * y as i32)
                        .sum();
                    sumi += w.sc[b * 128 + g * 8] as i32 * s;
                }
                sumf += (w.d[b] * a.d[b]) * sumi as f32;
                if float_min {
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

/// True when the AVX-VNNI variant (`vpdpbusd` on 256-bit vectors) can run on this CPU.
pub(crate) fn has_avxvnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx2() && std::arch::is_x86_feature_detected!("avxvnni")
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

    /// `v` + Σ_b m_w·s_a over `nb` blocks (the Q4_1/Q5_1 min term, Q8_1 `s`), 8 blocks at a
    /// time plus a tail, added to `v` in that order. Callers guarantee `m.len()`, `s.len()` ≥ `nb`.
    #[inline(always)]
    unsafe fn add_min_dot(mut v: f32, m: &[f32], s: &[f32], nb: usize) -> f32 {
        let mut accm = _mm256_setzero_ps();
        let mut b = 0;
        while b + 8 <= nb {
            let mv = _mm256_loadu_ps(m.as_ptr().add(b));
            let sv = _mm256_loadu_ps(s.as_ptr().add(b));
            accm = _mm256_fmadd_ps(mv, sv, accm);
            b += 8;
        }
        v += hsum(accm);
        while b < nb {
            v += *m.get_unchecked(b) * *s.get_unchecked(b);
            b += 1;
        }
        v
    }

    /// Σ x·y of 32 bytes as 8 i32 lanes (lane j: bytes 4j..4j+4). `x` unsigned (0..255) or,
    /// with `SIGNED`, i8 whose sign moves onto `y` (ggml's `mul_sum_i8_pairs`). Without VNNI:
    /// `_mm256_maddubs_epi16` then `_mm256_madd_epi16` by 1 — no i16 saturation since the
    /// weights stay ≤ 128 (≤ 63 unsigned) and |y| ≤ 127 (≤ 32512 per pair); with VNNI one
    /// `vpdpbusd` (same sums, no intermediate saturation at all).
    #[inline(always)]
    unsafe fn dot32<const SIGNED: bool, const VNNI: bool>(x: __m256i, y: __m256i) -> __m256i {
        let (u, v) = if SIGNED { (_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)) } else { (x, y) };
        if VNNI {
            _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, v)
        } else {
            _mm256_madd_epi16(_mm256_maddubs_epi16(u, v), _mm256_set1_epi16(1))
        }
    }

    /// Legacy 32-blocks: `R` weight rows · one activation row → `out[..R]`.
    #[inline(always)]
    unsafe fn legacy<const R: usize, const SIGNED: bool, const VNNI: bool>(
        off: u8,
        has_min: bool,
        w: &[RowRef; R],
        a: &ActRef,
        out: &mut [f32],
    ) {
        let k = a.q.len();
        let nb = k / 32;
        let mut acc = [_mm256_setzero_ps(); R];
        let aq = a.q.as_ptr();
        for b in 0..nb {
            let y = _mm256_loadu_si256(aq.add(32 * b) as *const __m256i);
            let da = *a.d.get_unchecked(b);
            // Weights stored as q + off: each lane of Σ stored·y minus the same lane of
            // Σ off·y (computed once for all rows) is the exact lane of Σ q·y, as in ggml.
            let corr =
                if off != 0 { dot32::<false, VNNI>(_mm256_set1_epi8(off as i8), y) } else { _mm256_setzero_si256() };
            for r in 0..R {
                let x = _mm256_loadu_si256(w[r].q.as_ptr().add(32 * b) as *const __m256i);
                let mut p = dot32::<SIGNED, VNNI>(x, y);
                if off != 0 {
                    p = _mm256_sub_epi32(p, corr);
                }
                let scale = _mm256_set1_ps(*w[r].d.get_unchecked(b) * da);
                acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc[r]);
            }
        }
        for r in 0..R {
            let mut v = hsum(acc[r]);
            if has_min {
                v = add_min_dot(v, w[r].m, a.s, nb);
            }
            *out.get_unchecked_mut(r) = v;
        }
    }

    /// Legacy 32-blocks, 4 weight rows at once: the 4 rows' integer block sums are folded into
    /// one vector by `hadd` (lanes r and r + 4 hold row r), so the f32 work per block is one
    /// convert and one FMA for all 4 rows, with the rows' scales loaded from `d4` (the tile's
    /// interleaved copy). The integer sums are still exact per block.
    #[inline(always)]
    unsafe fn legacy4<const SIGNED: bool, const VNNI: bool>(
        off: u8,
        has_min: bool,
        w: &[RowRef; 4],
        d4: &[f32],
        a: &ActRef,
        out: &mut [f32],
    ) {
        let nb = a.q.len() / 32;
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let aq = a.q.as_ptr();
        let d4 = d4.as_ptr();
        for b in 0..nb {
            let y = _mm256_loadu_si256(aq.add(32 * b) as *const __m256i);
            let corr =
                if off != 0 { dot32::<false, VNNI>(_mm256_set1_epi8(off as i8), y) } else { _mm256_setzero_si256() };
            let mut p = [_mm256_setzero_si256(); 4];
            for r in 0..4 {
                let x = _mm256_loadu_si256(w[r].q.as_ptr().add(32 * b) as *const __m256i);
                p[r] = dot32::<SIGNED, VNNI>(x, y);
                if off != 0 {
                    p[r] = _mm256_sub_epi32(p[r], corr);
                }
            }
            // [r0 r1 r2 r3 | r0 r1 r2 r3] partial sums (low / high 128-bit halves).
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
            let s4 = _mm_loadu_ps(d4.add(4 * b));
            let scale = _mm256_mul_ps(_mm256_set_m128(s4, s4), _mm256_set1_ps(*a.d.get_unchecked(b)));
            if b % 2 == 0 {
                acc0 = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(h), acc0);
            } else {
                acc1 = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(h), acc1);
            }
        }
        let acc = _mm256_add_ps(acc0, acc1);
        let mut r4 = [0f32; 4];
        _mm_storeu_ps(r4.as_mut_ptr(), _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1)));
        for r in 0..4 {
            let mut v = r4[r];
            if has_min {
                v = add_min_dot(v, w[r].m, a.s, nb);
            }
            *out.get_unchecked_mut(r) = v;
        }
    }

    /// K super-blocks: `R` weight rows · one activation row → `out[..R]`.
    #[inline(always)]
    unsafe fn k_quant<const R: usize>(float_min: bool, off: u8, w: &[RowRef; R], a: &ActRef, out: &mut [f32]) {
        let k = a.q.len();
        let mut acc = [_mm256_setzero_ps(); R];
        let mut accm = [_mm256_setzero_ps(); R];
        let aq = a.q.as_ptr();
        for b in 0..k / 256 {
            let mut isum = [_mm256_setzero_si256(); R];
            for c in 0..8 {
                let pos = 256 * b + 32 * c;
                let y = _mm256_loadu_si256(aq.add(pos) as *const __m256i);
                // Weights stored as q + off (Q3_K, Q6_K): subtract the pairs of off·y (once for
                // all rows) in i16, ggml's `m32s` step; |pair| ≤ 2·63·127 + 2·32·127 < 2¹⁵.
                let corr = if off != 0 {
                    _mm256_maddubs_epi16(_mm256_set1_epi8(off as i8), y)
                } else {
                    _mm256_setzero_si256()
                };
                for r in 0..R {
                    let x = _mm256_loadu_si256(w[r].q.as_ptr().add(pos) as *const __m256i);
                    let sc = _mm256_loadu_si256(w[r].sc.as_ptr().add(pos / 2) as *const __m256i);
                    let mut p = _mm256_maddubs_epi16(x, y);
                    if off != 0 {
                        p = _mm256_sub_epi16(p, corr);
                    }
                    isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(p, sc));
                }
            }
            let da = *a.d.get_unchecked(b);
            for r in 0..R {
                let scale = _mm256_set1_ps(*w[r].d.get_unchecked(b) * da);
                acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum[r]), acc[r]);
            }
            if float_min {
                let bs = _mm256_loadu_si256(a.bsums.as_ptr().add(16 * b) as *const __m256i);
                for r in 0..R {
                    let mn = _mm256_loadu_si256(w[r].mins.as_ptr().add(16 * b) as *const __m256i);
                    let mm = _mm256_madd_epi16(mn, bs);
                    let scale = _mm256_set1_ps(*w[r].m.get_unchecked(b) * da);
                    accm[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(mm), accm[r]);
                }
            }
        }
        for r in 0..R {
            *out.get_unchecked_mut(r) = hsum(acc[r]) - hsum(accm[r]);
        }
    }

    #[inline(always)]
    unsafe fn dispatch<const R: usize, const VNNI: bool>(kind: Kind, w: &[RowRef; R], a: &ActRef, out: &mut [f32]) {
        match kind {
            Kind::Legacy { signed: true, off, has_min } => legacy::<R, true, VNNI>(off, has_min, w, a, out),
            Kind::Legacy { signed: false, off, has_min } => legacy::<R, false, VNNI>(off, has_min, w, a, out),
            Kind::K { float_min, off } => k_quant::<R>(float_min, off, w, a, out),
        }
    }

    /// Every weight row of `w` · every activation row of `acts`: `out[t·stride + r]`.
    #[inline(always)]
    unsafe fn tile<const VNNI: bool>(
        kind: Kind,
        w: &[RowRef],
        d4: &[f32],
        acts: &[ActRef],
        out: *mut f32,
        stride: usize,
    ) {
        let mut res = [0f32; 4];
        for (t, a) in acts.iter().enumerate() {
            let o = out.add(t * stride);
            let mut r = 0;
            while r + 4 <= w.len() {
                let rows = [w[r], w[r + 1], w[r + 2], w[r + 3]];
                let nb4 = a.q.len() / 32 * 4;
                match kind {
                    Kind::Legacy { signed: true, off, has_min } => {
                        legacy4::<true, VNNI>(off, has_min, &rows, &d4[r / 4 * nb4..], a, &mut res)
                    }
                    Kind::Legacy { signed: false, off, has_min } => {
                        legacy4::<false, VNNI>(off, has_min, &rows, &d4[r / 4 * nb4..], a, &mut res)
                    }
                    Kind::K { .. } => dispatch::<4, VNNI>(kind, &rows, a, &mut res),
                }
                for (i, &v) in res.iter().enumerate() {
                    *o.add(r + i) = v;
                }
                r += 4;
            }
            while r < w.len() {
                dispatch::<1, VNNI>(kind, &[w[r]], a, &mut res);
                *o.add(r) = res[0];
                r += 1;
            }
        }
    }

    /// Every weight row of `w` · every activation row of `acts` → `out[t·stride + r]`
    /// (AVX2 + FMA), 4 weight rows per activation load.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; every row and activation holds the same `k` (whole
    /// blocks) with the per-block arrays `Tile`/`ActInts` build (`d4`: the tile's interleaved
    /// scales for the legacy kinds); `out[t·stride + r]` is
    /// writable for every t < acts.len(), r < w.len().
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn dot_tile(kind: Kind, w: &[RowRef], d4: &[f32], acts: &[ActRef], out: *mut f32, stride: usize) {
        tile::<false>(kind, w, d4, acts, out, stride)
    }

    /// As [`dot_tile`], with AVX-VNNI `vpdpbusd` for the 32-block types.
    ///
    /// # Safety
    /// As [`dot_tile`], and the CPU must support AVX-VNNI.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    pub(crate) unsafe fn dot_tile_vnni(
        kind: Kind,
        w: &[RowRef],
        d4: &[f32],
        acts: &[ActRef],
        out: *mut f32,
        stride: usize,
    ) {
        tile::<true>(kind, w, d4, acts, out, stride)
    }
}
