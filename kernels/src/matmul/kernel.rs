//! Integer dot-product kernels over unpacked weights ([`super::unpack::Tile`]) and activations
//! in integer form ([`ActInts`]): a portable scalar kernel and AVX2 / AVX-VNNI ones (picked at
//! run time). All compute, per block, the exact integer sum Σ q_w·q_a (times the per-16
//! integer scales for K types) like ggml's `ggml_vec_dot_*`; they differ only in the order of
//! the f32 accumulation across blocks.
//!
//! Legacy 32-blocks use the grouped layout of [`super::unpack::interleaved`] on both sides, and
//! the SIMD kernel is a register tile of R weight rows × T tokens (llamafile tinyBLAS-style
//! reuse: each loaded weight vector serves T tokens, each activation vector R rows): per group
//! of 8 blocks, 8 rounds of `vpdpbusd` (or `maddubs`+`madd`) leave the 8 blocks' integer sums
//! in the 8 i32 lanes of one accumulator per (row, token), then one convert and one FMA with
//! the 8 blocks' scale products fold them into an f32 accumulator (ggml folds per block).

use super::unpack::{interleaved, padded_blocks, Kind, Tile};

/// Activation rows as integers plus per-block f32 scales (decoded once from Q8_0/Q8_1/Q8_K).
#[derive(Default)]
pub(crate) struct ActInts {
    pub k: usize,
    /// Rows (tokens).
    pub rows: usize,
    /// Elements per block (32 or 256).
    pub bs: usize,
    /// Blocks per row as stored (legacy: padded to whole groups).
    pub nb: usize,
    /// Legacy: grouped layout (see `unpack::interleaved`), `nb·32` per row; K: natural.
    pub q: Vec<i8>,
    pub d: Vec<f32>,
    /// Q8_1 `s` per block (empty otherwise).
    pub s: Vec<f32>,
    /// Legacy: `c·Σ q` per block, subtracted from each block's integer sum when the kernel
    /// multiplies weights stored as `q + c` (empty when it does not).
    pub corr: Vec<i32>,
    /// Q8_K sums per 16 quants (empty otherwise).
    pub bsums: Vec<i16>,
    /// K, by-group layout: `−c·Σy` per 16-weight group for weights multiplied as `q + c`
    /// (empty when c = 0), and the `bsums` as f32 for the minimum term (empty without one).
    pub kneg: Vec<i32>,
    pub bsf: Vec<f32>,
    /// Legacy, AVX-512 layout: per token, per accumulation unit (a whole group of 8 blocks,
    /// then each pair of tail blocks), 16 i32 lanes of `−c·Σy` over exactly the activation
    /// bytes that land in that lane, so every lane holds an exact partial of Σ q·y (empty
    /// when c = 0).
    pub lcorr: Vec<i32>,
}

/// One weight row of a tile and one activation row, as slices.
#[derive(Clone, Copy)]
pub(crate) struct RowRef<'a> {
    pub q: &'a [i8],
    pub d: &'a [f32],
    pub m: &'a [f32],
    pub sc: &'a [i16],
    pub mins: &'a [i16],
    /// K, by-group layout: f32 per-group scales and minimums (empty otherwise).
    pub gsc: &'a [f32],
    pub gmin: &'a [f32],
}

impl Tile {
    pub fn row(&self, r: usize, kind: Kind) -> RowRef<'_> {
        let k = self.k;
        let (nb, row_q) = match kind {
            Kind::Legacy { .. } => (padded_blocks(k, self.layout), padded_blocks(k, self.layout) * 32),
            Kind::K { .. } => (k / 256, k),
        };
        let (sc, mins): (&[i16], &[i16]) = match kind {
            Kind::Legacy { .. } => (&[], &[]),
            Kind::K { .. } => (&self.sc[r * k / 2..(r + 1) * k / 2], &self.mins[r * k / 16..(r + 1) * k / 16]),
        };
        fn groups(v: &[f32], r: usize, k: usize) -> &[f32] {
            if v.is_empty() {
                v
            } else {
                &v[r * k / 16..(r + 1) * k / 16]
            }
        }
        RowRef {
            q: &self.q[r * row_q..(r + 1) * row_q],
            d: &self.d[r * nb..(r + 1) * nb],
            m: &self.m[r * nb..(r + 1) * nb],
            sc,
            mins,
            gsc: groups(&self.gsc, r, k),
            gmin: groups(&self.gmin, r, k),
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct ActRef<'a> {
    pub q: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub corr: &'a [i32],
    pub bsums: &'a [i16],
    pub kneg: &'a [i32],
    pub bsf: &'a [f32],
    pub lcorr: &'a [i32],
}

impl ActInts {
    pub fn row(&self, t: usize) -> ActRef<'_> {
        let (nb, row_q) = (self.nb, self.nb * self.bs);
        let per_block = |v: usize| t * nb * v..(t + 1) * nb * v;
        ActRef {
            q: &self.q[t * row_q..(t + 1) * row_q],
            d: &self.d[per_block(1)],
            s: if self.s.is_empty() { &[] } else { &self.s[per_block(1)] },
            corr: if self.corr.is_empty() { &[] } else { &self.corr[per_block(1)] },
            bsums: if self.bsums.is_empty() { &[] } else { &self.bsums[t * self.k / 16..(t + 1) * self.k / 16] },
            kneg: if self.kneg.is_empty() { &[] } else { &self.kneg[t * self.k / 16..(t + 1) * self.k / 16] },
            bsf: if self.bsf.is_empty() { &[] } else { &self.bsf[t * self.k / 16..(t + 1) * self.k / 16] },
            lcorr: if self.lcorr.is_empty() {
                &[]
            } else {
                let per = self.lcorr.len() / self.rows;
                &self.lcorr[t * per..(t + 1) * per]
            },
        }
    }
}

/// Scalar kernel: one weight row · one activation row (`k` elements).
pub(crate) fn dot_scalar(kind: Kind, k: usize, w: RowRef, a: ActRef) -> f32 {
    let mut sumf = 0f32;
    match kind {
        Kind::Legacy { signed, off, has_min, .. } => {
            let wv = |x: i8| if signed { x as i32 } else { x as u8 as i32 - off as i32 };
            for b in 0..k / 32 {
                let sumi: i32 = (0..32)
                    .map(|i| {
                        let at = interleaved(b, i);
                        wv(w.q[at]) * a.q[at] as i32
                    })
                    .sum();
                sumf += (w.d[b] * a.d[b]) * sumi as f32;
                if has_min {
                    sumf += w.m[b] * a.s[b];
                }
            }
        }
        Kind::K { float_min, off, signed } => {
            let wv = |x: i8| if signed { x as i32 } else { x as u8 as i32 - off as i32 };
            for (b, (wq, aq)) in w.q.chunks_exact(256).zip(a.q.chunks_exact(256)).enumerate() {
                let mut sumi = 0i32;
                for g in 0..16 {
                    let s: i32 = wq[16 * g..16 * g + 16]
                        .iter()
                        .zip(&aq[16 * g..16 * g + 16])
                        .map(|(&x, &y)| wv(x) * y as i32)
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

/// A register-tile kernel: `R` weight rows × `T` tokens → `out[t·stride + r]`.
pub(crate) trait RegisterTile {
    /// # Safety
    /// As the instruction set's `dot_tile`: `w[..R]`, `a[..T]` and the `out` cells valid.
    unsafe fn run<const R: usize, const T: usize>(&self, w: &[RowRef], a: &[ActRef], out: *mut f32, stride: usize);
}

/// Every row of `w` × every token of `acts` in register tiles of `R` × `T` (then the leftover
/// rows and tokens with smaller tiles); tokens outer so the tile of weight rows stays in L1
/// while the tokens stream past. Plain functions (not closures), so that the kernels inline
/// into the caller's `target_feature` context.
///
/// # Safety
/// As `RegisterTile::run` for every tile.
#[inline(always)]
pub(crate) unsafe fn tiled<const R: usize, const T: usize>(
    k: &impl RegisterTile,
    w: &[RowRef],
    acts: &[ActRef],
    out: *mut f32,
    stride: usize,
) {
    let mut t = 0;
    while t + T <= acts.len() {
        tile_rows::<R, T>(k, w, &acts[t..], out.add(t * stride), stride);
        t += T;
    }
    while t < acts.len() {
        tile_rows::<R, 1>(k, w, &acts[t..], out.add(t * stride), stride);
        t += 1;
    }
}

/// All rows of `w` × tokens `a[..T]`.
#[inline(always)]
unsafe fn tile_rows<const R: usize, const T: usize>(
    k: &impl RegisterTile,
    w: &[RowRef],
    a: &[ActRef],
    out: *mut f32,
    stride: usize,
) {
    let mut r = 0;
    while r + R <= w.len() {
        k.run::<R, T>(&w[r..], a, out.add(r), stride);
        r += R;
    }
    while r < w.len() {
        k.run::<1, T>(&w[r..], a, out.add(r), stride);
        r += 1;
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

    /// Legacy grouped layout: `R` weight rows (`w[..R]`) × `T` tokens (`a[..T]`) →
    /// `out[t·stride + r]`. Per group of 8 blocks, one i32 accumulator per (row, token) collects
    /// the 8 blocks' exact integer sums in its 8 lanes over 8 rounds; then
    /// `acc += f32(Σ − corr) · (d_w · d_a)` (+ `m_w · s_a` for Q4_1/Q5_1) on 8 lanes at once.
    ///
    /// Products: `VNNI`: `vpdpbusd` (signed weights stored flipped to `q + 128`, the activations'
    /// `corr` holding `128·Σy`); else `maddubs` + `madd` by 1, signed weights through ggml's
    /// sign trick (`mul_sum_i8_pairs`); with `I16` (4-bit weights ≤ 15: 8 rounds of pairs stay
    /// below 8·2·15·128 < 2¹⁵) the i16 pairs are summed over the whole group before one `madd`.
    #[inline(always)]
    unsafe fn legacy_rt<
        const R: usize,
        const T: usize,
        const SIGNED: bool,
        const VNNI: bool,
        const I16: bool,
        const MIN: bool,
    >(
        w: &[RowRef],
        a: &[ActRef],
        out: *mut f32,
        stride: usize,
    ) {
        let ng = a[0].d.len() / 8;
        let has_corr = !a[0].corr.is_empty();
        let ones = _mm256_set1_epi16(1);
        let wq: [*const i8; R] = std::array::from_fn(|r| w[r].q.as_ptr());
        let aq: [*const i8; T] = std::array::from_fn(|t| a[t].q.as_ptr());
        let mut accf = [[_mm256_setzero_ps(); T]; R];
        for g in 0..ng {
            let mut isum = [[_mm256_setzero_si256(); T]; R];
            for round in 0..8 {
                let o = g * 256 + round * 32;
                for r in 0..R {
                    let x = _mm256_loadu_si256(wq[r].add(o) as *const __m256i);
                    if VNNI {
                        // Signed weights arrive flipped to q + 128 (`Layout::flip_signed`).
                        for t in 0..T {
                            let y = _mm256_loadu_si256(aq[t].add(o) as *const __m256i);
                            isum[r][t] = _mm256_dpbusd_avx_epi32(isum[r][t], x, y);
                        }
                    } else if SIGNED {
                        let u = _mm256_sign_epi8(x, x);
                        for t in 0..T {
                            let y = _mm256_loadu_si256(aq[t].add(o) as *const __m256i);
                            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(y, x)), ones);
                            isum[r][t] = _mm256_add_epi32(isum[r][t], p);
                        }
                    } else if I16 {
                        for t in 0..T {
                            let y = _mm256_loadu_si256(aq[t].add(o) as *const __m256i);
                            isum[r][t] = _mm256_add_epi16(isum[r][t], _mm256_maddubs_epi16(x, y));
                        }
                    } else {
                        for t in 0..T {
                            let y = _mm256_loadu_si256(aq[t].add(o) as *const __m256i);
                            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones);
                            isum[r][t] = _mm256_add_epi32(isum[r][t], p);
                        }
                    }
                }
            }
            let b = 8 * g;
            for t in 0..T {
                let da = _mm256_loadu_ps(a[t].d.as_ptr().add(b));
                let c = if has_corr {
                    _mm256_loadu_si256(a[t].corr.as_ptr().add(b) as *const __m256i)
                } else {
                    _mm256_setzero_si256()
                };
                for r in 0..R {
                    let mut p = isum[r][t];
                    if I16 && !VNNI && !SIGNED {
                        p = _mm256_madd_epi16(p, ones);
                    }
                    if has_corr {
                        p = _mm256_sub_epi32(p, c);
                    }
                    let scale = _mm256_mul_ps(_mm256_loadu_ps(w[r].d.as_ptr().add(b)), da);
                    accf[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, accf[r][t]);
                    if MIN {
                        let mw = _mm256_loadu_ps(w[r].m.as_ptr().add(b));
                        accf[r][t] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(a[t].s.as_ptr().add(b)), accf[r][t]);
                    }
                }
            }
        }
        for (r, row) in accf.iter().enumerate() {
            for (t, &acc) in row.iter().enumerate() {
                *out.add(t * stride + r) = hsum(acc);
            }
        }
    }

    /// The AVX2 / AVX-VNNI legacy kernel as a register-tile kernel for [`super::tiled`].
    struct Legacy<const SIGNED: bool, const VNNI: bool, const I16: bool, const MIN: bool>;
    impl<const SIGNED: bool, const VNNI: bool, const I16: bool, const MIN: bool> super::RegisterTile
        for Legacy<SIGNED, VNNI, I16, MIN>
    {
        #[inline(always)]
        unsafe fn run<const R: usize, const T: usize>(&self, w: &[RowRef], a: &[ActRef], out: *mut f32, stride: usize) {
            legacy_rt::<R, T, SIGNED, VNNI, I16, MIN>(w, a, out, stride)
        }
    }

    /// K super-blocks: `R` weight rows · one activation row → `out[..R]`. `SIGNED` (the
    /// i-quants): i8 weights through ggml's sign trick, `maddubs(|x|, sign(y, x))`.
    #[inline(always)]
    unsafe fn k_quant<const R: usize, const SIGNED: bool>(
        float_min: bool,
        off: u8,
        w: &[RowRef; R],
        a: &ActRef,
        out: &mut [f32],
    ) {
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
                    let mut p = if SIGNED {
                        _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
                    } else {
                        _mm256_maddubs_epi16(x, y)
                    };
                    if !SIGNED && off != 0 {
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
    unsafe fn dispatch<const R: usize>(kind: Kind, w: &[RowRef; R], a: &ActRef, out: &mut [f32]) {
        match kind {
            Kind::K { float_min, off, signed: false } => k_quant::<R, false>(float_min, off, w, a, out),
            Kind::K { float_min, off, signed: true } => k_quant::<R, true>(float_min, off, w, a, out),
            Kind::Legacy { .. } => {}
        }
    }

    /// Every weight row of `w` · every activation row of `acts`: `out[t·stride + r]`.
    #[inline(always)]
    unsafe fn tile<const VNNI: bool>(kind: Kind, w: &[RowRef], acts: &[ActRef], out: *mut f32, stride: usize) {
        // Register tiles of 4 rows × 2 tokens: 8 i32 accumulators. Measured (bench_matmul,
        // 576×1536·512, VNNI): 4 × 3 and 3 × 3 spill accumulators to the stack and run slower.
        match kind {
            Kind::Legacy { signed, has_min, narrow, .. } => match (signed, VNNI, narrow && !VNNI, has_min) {
                (true, true, _, _) => super::tiled::<4, 2>(&Legacy::<true, true, false, false>, w, acts, out, stride),
                (true, false, _, _) => super::tiled::<4, 2>(&Legacy::<true, false, false, false>, w, acts, out, stride),
                (false, true, _, false) => {
                    super::tiled::<4, 2>(&Legacy::<false, true, false, false>, w, acts, out, stride)
                }
                (false, true, _, true) => {
                    super::tiled::<4, 2>(&Legacy::<false, true, false, true>, w, acts, out, stride)
                }
                (false, false, true, false) => {
                    super::tiled::<4, 2>(&Legacy::<false, false, true, false>, w, acts, out, stride)
                }
                (false, false, true, true) => {
                    super::tiled::<4, 2>(&Legacy::<false, false, true, true>, w, acts, out, stride)
                }
                (false, false, false, false) => {
                    super::tiled::<4, 2>(&Legacy::<false, false, false, false>, w, acts, out, stride)
                }
                (false, false, false, true) => {
                    super::tiled::<4, 2>(&Legacy::<false, false, false, true>, w, acts, out, stride)
                }
            },
            Kind::K { .. } => {
                let mut res = [0f32; 4];
                for (t, a) in acts.iter().enumerate() {
                    let o = out.add(t * stride);
                    let mut r = 0;
                    while r + 4 <= w.len() {
                        let rows = [w[r], w[r + 1], w[r + 2], w[r + 3]];
                        dispatch::<4>(kind, &rows, a, &mut res);
                        for (i, &v) in res.iter().enumerate() {
                            *o.add(r + i) = v;
                        }
                        r += 4;
                    }
                    while r < w.len() {
                        dispatch::<1>(kind, &[w[r]], a, &mut res);
                        *o.add(r) = res[0];
                        r += 1;
                    }
                }
            }
        }
    }

    /// Every weight row of `w` · every activation row of `acts` → `out[t·stride + r]`
    /// (AVX2 + FMA).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; every row and activation holds the same `k` (whole
    /// blocks) with the per-block arrays `Tile`/`ActInts` build for this `kind` (and, for the
    /// legacy kinds, the activations' `corr` built for this instruction set); `out[t·stride + r]` is
    /// writable for every t < acts.len(), r < w.len().
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn dot_tile(kind: Kind, w: &[RowRef], acts: &[ActRef], out: *mut f32, stride: usize) {
        tile::<false>(kind, w, acts, out, stride)
    }

    /// As [`dot_tile`], with AVX-VNNI `vpdpbusd` for the 32-block types.
    ///
    /// # Safety
    /// As [`dot_tile`], and the CPU must support AVX-VNNI.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    pub(crate) unsafe fn dot_tile_vnni(kind: Kind, w: &[RowRef], acts: &[ActRef], out: *mut f32, stride: usize) {
        tile::<true>(kind, w, acts, out, stride)
    }
}
