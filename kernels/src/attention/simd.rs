//! The register-tile kernels of [`super`], written once over a vector trait ([`F32x`]) and
//! instantiated for AVX2 + FMA (8 lanes, 16 registers: tiles of 6 rows × 2 vectors) and
//! AVX-512F (16 lanes, 32 registers: 6 rows × 4 vectors).

use super::{Geometry, KvView};
use crate::matmul::Isa;
use std::ops::Range;

/// One parallel task: head `h`, query rows `rows`, scratch space of the calling thread.
pub(super) type TaskFn = unsafe fn(&Geometry, *const f32, KvView, *mut f32, usize, Range<usize>, &mut Vec<f32>);

/// The task kernel for `isa` (which must be available), or `None` for the reference.
pub(super) fn pick(isa: Isa) -> Option<TaskFn> {
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            Isa::Avx512Vnni => Some(x86::task_avx512 as TaskFn),
            Isa::Avx2 | Isa::AvxVnni => Some(x86::task_avx2 as TaskFn),
            Isa::Scalar => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::{softmax_visible, Geometry, KvView};
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Query rows per register block.
    const R: usize = 6;

    /// A vector of f32 lanes.
    trait F32x: Copy {
        /// Lanes.
        const W: usize;
        /// Vectors per register-tile row (`R · NMAX` accumulators + `NMAX` loads + 1 broadcast
        /// fit the register file).
        const NMAX: usize;
        unsafe fn zero() -> Self;
        unsafe fn splat(x: f32) -> Self;
        unsafe fn load(p: *const f32) -> Self;
        unsafe fn store(self, p: *mut f32);
        /// `a·b + c`, one rounding.
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
        unsafe fn mul(a: Self, b: Self) -> Self;
    }

    /// A vector type of one instruction set implementing [`F32x`] through its intrinsics.
    macro_rules! f32x {
        ($name:ident, $v:ty, $w:expr, $nmax:expr, $zero:ident, $set1:ident, $load:ident, $store:ident, $fma:ident, $mul:ident) => {
            #[derive(Clone, Copy)]
            struct $name($v);

            impl F32x for $name {
                const W: usize = $w;
                const NMAX: usize = $nmax;
                #[inline(always)]
                unsafe fn zero() -> Self {
                    $name($zero())
                }
                #[inline(always)]
                unsafe fn splat(x: f32) -> Self {
                    $name($set1(x))
                }
                #[inline(always)]
                unsafe fn load(p: *const f32) -> Self {
                    $name($load(p))
                }
                #[inline(always)]
                unsafe fn store(self, p: *mut f32) {
                    $store(p, self.0)
                }
                #[inline(always)]
                unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
                    $name($fma(a.0, b.0, c.0))
                }
                #[inline(always)]
                unsafe fn mul(a: Self, b: Self) -> Self {
                    $name($mul(a.0, b.0))
                }
            }
        };
    }
    f32x!(
        Avx2,
        __m256,
        8,
        2,
        _mm256_setzero_ps,
        _mm256_set1_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_fmadd_ps,
        _mm256_mul_ps
    );
    f32x!(
        Avx512,
        __m512,
        16,
        4,
        _mm512_setzero_ps,
        _mm512_set1_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_fmadd_ps,
        _mm512_mul_ps
    );

    /// # Safety
    /// AVX2 and FMA available; the arguments as `super::attention_with` passes them.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn task_avx2(
        g: &Geometry,
        q: *const f32,
        kv: KvView,
        out: *mut f32,
        h: usize,
        rows: Range<usize>,
        scratch: &mut Vec<f32>,
    ) {
        task::<Avx2>(g, q, kv, out, h, rows, scratch)
    }

    /// # Safety
    /// AVX-512F available; the arguments as `super::attention_with` passes them.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn task_avx512(
        g: &Geometry,
        q: *const f32,
        kv: KvView,
        out: *mut f32,
        h: usize,
        rows: Range<usize>,
        scratch: &mut Vec<f32>,
    ) {
        task::<Avx512>(g, q, kv, out, h, rows, scratch)
    }

    /// Register blocks of `R` rows (a single row alone, as in token-by-token decoding).
    #[inline(always)]
    unsafe fn task<V: F32x>(
        g: &Geometry,
        q: *const f32,
        kv: KvView,
        out: *mut f32,
        h: usize,
        rows: Range<usize>,
        scratch: &mut Vec<f32>,
    ) {
        let mut r0 = rows.start;
        while r0 < rows.end {
            let m = (rows.end - r0).min(R);
            if m == 1 {
                block::<V, 1>(g, q, kv, out, h, r0, m, scratch);
            } else {
                block::<V, R>(g, q, kv, out, h, r0, m, scratch);
            }
            r0 += m;
        }
    }

    /// Rows `r0..r0 + m` (m ≤ RB) of head `h`. Rows past `m` repeat the last row and write to
    /// scratch, so every block runs the full register tile.
    // Indexed loops: each index addresses several per-row arrays at once.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn block<V: F32x, const RB: usize>(
        g: &Geometry,
        q: *const f32,
        kv: KvView,
        out: *mut f32,
        h: usize,
        r0: usize,
        m: usize,
        scratch: &mut Vec<f32>,
    ) {
        let (hd, w) = (g.hd, V::W);
        let kvh = h / g.group;
        let i_first = g.pos0 + r0;
        let i_last = i_first + m - 1;
        // Keys lo_first..hi_last are visible from some row of the block.
        let (lo_first, hi_last) = (g.lo(i_first), i_last + 1);
        let j_base = lo_first / w * w;
        let nvec = (hi_last - j_base).div_ceil(w);
        let width = nvec * w;
        let need = RB * (width + hd);
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (s_buf, trash) = scratch.split_at_mut(RB * width);
        let s_rows: [*mut f32; RB] = std::array::from_fn(|r| s_buf.as_mut_ptr().add(r * width));
        let q_rows: [*const f32; RB] = std::array::from_fn(|r| q.add((r0 + r.min(m - 1)) * g.q_row + h * hd));

        // S = Q·Kᵀ·scale over whole vectors of keys from j_base (inside the key stride:
        // j_base + width ≤ hi_last rounded up to a multiple of w ≤ key_stride(cap)).
        let kt = kv.keys_t.as_ptr().add(kvh * hd * g.kstride + j_base);
        let mut vb = 0;
        while vb < nvec {
            let nv = (nvec - vb).min(V::NMAX);
            let k = kt.add(vb * w);
            let s = s_rows.map(|p| p.add(vb * w));
            match nv {
                1 => qk::<V, RB, 1>(&q_rows, k, g.kstride, hd, g.scale, &s),
                2 => qk::<V, RB, 2>(&q_rows, k, g.kstride, hd, g.scale, &s),
                3 => qk::<V, RB, 3>(&q_rows, k, g.kstride, hd, g.scale, &s),
                _ => qk::<V, RB, 4>(&q_rows, k, g.kstride, hd, g.scale, &s),
            }
            vb += nv;
        }
        for r in 0..m {
            let i = i_first + r;
            let row = std::slice::from_raw_parts_mut(s_rows[r], width);
            softmax_visible(row, g.lo(i) - j_base, i + 1 - j_base, g.softcap);
        }

        // O = P·V over keys lo_first..hi_last.
        let nj = hi_last - lo_first;
        let p_rows: [*const f32; RB] = s_rows.map(|p| p.add(lo_first - j_base) as *const f32);
        let o_rows: [*mut f32; RB] = std::array::from_fn(|r| {
            if r < m {
                out.add((r0 + r) * g.q_row + h * hd)
            } else {
                trash.as_mut_ptr().add(r * hd)
            }
        });
        let v = kv.values.as_ptr().add((kvh * g.cap + lo_first) * hd);
        let nvd = hd / w;
        let mut cb = 0;
        while cb < nvd {
            let nv = (nvd - cb).min(V::NMAX);
            let vc = v.add(cb * w);
            let o = o_rows.map(|p| p.add(cb * w));
            match nv {
                1 => pv::<V, RB, 1>(&p_rows, vc, hd, nj, &o),
                2 => pv::<V, RB, 2>(&p_rows, vc, hd, nj, &o),
                3 => pv::<V, RB, 3>(&p_rows, vc, hd, nj, &o),
                _ => pv::<V, RB, 4>(&p_rows, vc, hd, nj, &o),
            }
            cb += nv;
        }
        // Dimensions past the last whole vector: the same FMA chain, one lane at a time.
        for c in nvd * w..hd {
            for r in 0..m {
                let mut acc = 0.0f32;
                for j in 0..nj {
                    acc = (*p_rows[r].add(j)).mul_add(*v.add(j * hd + c), acc);
                }
                *o_rows[r].add(c) = acc;
            }
        }
    }

    /// `Σ_i a[r][i] · b[i·stride + v·W ..]` for `RB` rows × `N` vectors, `i < len`, one FMA
    /// chain per lane in order of `i` (per `i`: `N` loads of `b`, `RB` broadcasts of `a`).
    /// Q·Kᵀ: `a` = query rows over dimensions, `b` = the transposed keys (stride: the key
    /// stride); P·V: `a` = probability rows over keys, `b` = value rows (stride: head_dim).
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn tile<V: F32x, const RB: usize, const N: usize>(
        a: &[*const f32; RB],
        b: *const f32,
        stride: usize,
        len: usize,
    ) -> [[V; N]; RB] {
        let mut acc = [[V::zero(); N]; RB];
        for i in 0..len {
            let row = b.add(i * stride);
            let mut x = [V::zero(); N];
            for v in 0..N {
                x[v] = V::load(row.add(v * V::W));
            }
            for r in 0..RB {
                let ab = V::splat(*a[r].add(i));
                for v in 0..N {
                    acc[r][v] = V::fma(ab, x[v], acc[r][v]);
                }
            }
        }
        acc
    }

    /// `s[r][v·W..] = (Σ_d q[r][d]·kt[d][v·W..]) · scale` for `R` rows × `N` key vectors.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn qk<V: F32x, const RB: usize, const N: usize>(
        q: &[*const f32; RB],
        kt: *const f32,
        kstride: usize,
        hd: usize,
        scale: f32,
        s: &[*mut f32; RB],
    ) {
        let acc = tile::<V, RB, N>(q, kt, kstride, hd);
        let sc = V::splat(scale);
        for r in 0..RB {
            for v in 0..N {
                V::mul(acc[r][v], sc).store(s[r].add(v * V::W));
            }
        }
    }

    /// `o[r][v·W..] = Σ_j p[r][j]·vals[j][v·W..]` for `R` rows × `N` vectors of dimensions.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn pv<V: F32x, const RB: usize, const N: usize>(
        p: &[*const f32; RB],
        vals: *const f32,
        hd: usize,
        nj: usize,
        o: &[*mut f32; RB],
    ) {
        let acc = tile::<V, RB, N>(p, vals, hd, nj);
        for r in 0..RB {
            for v in 0..N {
                acc[r][v].store(o[r].add(v * V::W));
            }
        }
    }
}
