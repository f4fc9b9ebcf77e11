//! AVX-512 (F, BW, DQ, VL) + AVX512-VNNI kernels: the same exact integer sums per block (or
//! per 16-weight group) as the AVX2 kernels of `kernel.rs`, on 64-byte vectors, over the
//! AVX-512 layouts of `unpack.rs` (`Layout { flip_signed, avx512 }`: signed weights stored as
//! `q + 128`, the unsigned operand of `vpdpbusd`).
//!
//! - Legacy 32-blocks: whole groups of 8 blocks in the grouped layout of
//!   `unpack::interleaved`, then a natural-order tail padded to an even block count
//!   (`unpack::legacy_pos`); see [`legacy_rt`]. Every i32 lane starts at the activations'
//!   exact per-lane correction (`lcorr`), so each lane is an exact partial of Σ q·y.
//! - K super-blocks of 256 (K-quants and i-quants) in the by-group layout
//!   (`unpack::by_group`): four `vpdpbusd` leave each 16-weight group's exact integer sum in
//!   its own lane, scaled in f32 by `d·sc` (and `dmin·min` for Q2_K/Q4_K/Q5_K); see [`k_rt`].
//!
//! Both run over register tiles of 4 weight rows × 2 tokens (`kernel::tiled`).

use super::kernel::{tiled, ActRef, RegisterTile, RowRef};
use super::unpack::Kind;
use std::arch::x86_64::*;

/// True when these kernels can run on this CPU.
pub(crate) fn available() -> bool {
    use std::arch::is_x86_feature_detected as has;
    super::kernel::has_avx2()
        && has!("avx512f")
        && has!("avx512bw")
        && has!("avx512dq")
        && has!("avx512vl")
        && has!("avx512vnni")
}

/// 64 bytes at `o` of each token's row.
#[inline(always)]
unsafe fn load_tokens<const T: usize>(aq: &[*const i8; T], o: usize) -> [__m512i; T] {
    let mut y = [_mm512_setzero_si512(); T];
    for t in 0..T {
        y[t] = _mm512_loadu_si512(aq[t].add(o) as *const _);
    }
    y
}

/// The start of a legacy accumulation unit: the token's lane corrections, or zero.
#[inline(always)]
unsafe fn init(a: &ActRef, unit: usize, has_corr: bool) -> __m512i {
    if has_corr {
        _mm512_loadu_si512(a.lcorr.as_ptr().add(16 * unit) as *const _)
    } else {
        _mm512_setzero_si512()
    }
}

/// `lo[0..8]` in lanes 0..8 and `hi[0..8]` in lanes 8..16.
#[inline(always)]
unsafe fn halves(lo: *const f32, hi: *const f32) -> __m512 {
    _mm512_insertf32x8::<1>(_mm512_castps256_ps512(_mm256_loadu_ps(lo)), _mm256_loadu_ps(hi))
}

/// `v[0]` in lanes 0..8 and `v[1]` in lanes 8..16.
#[inline(always)]
unsafe fn two(v: *const f32) -> __m512 {
    _mm512_insertf32x8::<1>(_mm512_set1_ps(*v), _mm256_set1_ps(*v.add(1)))
}

/// Legacy rows in the AVX-512 layout (`unpack::legacy_pos`), `R` weight rows × `T` tokens →
/// `out[t·stride + r]`. Signed weights arrive flipped to `q + 128` (`Layout::flip_signed`).
///
/// Whole groups of 8 blocks: four 64-byte `vpdpbusd` per group, i32 lane `j` (< 8) gathering
/// block `j`'s even rounds, lane `8 + j` its odd rounds; tail pairs of natural-order blocks:
/// one `vpdpbusd`, lanes 0..8 the first block, 8..16 the second. Every lane starts at the
/// activations' `lcorr` (`−c·Σy` over its own bytes), so it ends as an exact partial of
/// Σ q·y (no cancellation against a large correction). With `T` even, the two halves of a
/// group are added as integers two tokens at a time (`[lo(t) + hi(t), lo(t+1) + hi(t+1)]`,
/// two lane shuffles and one add), so the f32 epilogue (convert, scale `d_w·d_a`, add) runs
/// once per two cells; `accf[r][p]` holds token `2p` in lanes 0..8 and `2p + 1` in 8..16.
/// With `T` = 1 (a leftover token) the epilogue runs per cell on all 16 lanes.
// Indexed loops: register tiles over (row, token) cells index several arrays at once.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn legacy_rt<const R: usize, const T: usize, const MIN: bool>(
    w: &[RowRef],
    a: &[ActRef],
    out: *mut f32,
    stride: usize,
) {
    let paired = T.is_multiple_of(2);
    let nbp = a[0].d.len();
    let ng = nbp / 8;
    let has_corr = !a[0].lcorr.is_empty();
    let wq: [*const i8; R] = std::array::from_fn(|r| w[r].q.as_ptr());
    let aq: [*const i8; T] = std::array::from_fn(|t| a[t].q.as_ptr());
    let mut accf = [[_mm512_setzero_ps(); T]; R];
    for g in 0..ng {
        let b = 8 * g;
        let mut isum = [[_mm512_setzero_si512(); T]; R];
        for t in 0..T {
            let v = init(&a[t], g, has_corr);
            for row in isum.iter_mut() {
                row[t] = v;
            }
        }
        for pair in 0..4 {
            let o = g * 256 + pair * 64;
            let y = load_tokens::<T>(&aq, o);
            for r in 0..R {
                let x = _mm512_loadu_si512(wq[r].add(o) as *const _);
                for t in 0..T {
                    isum[r][t] = _mm512_dpbusd_epi32(isum[r][t], x, y[t]);
                }
            }
        }
        let mut wd = [_mm512_setzero_ps(); R];
        for r in 0..R {
            wd[r] = _mm512_broadcast_f32x8(_mm256_loadu_ps(w[r].d.as_ptr().add(b)));
        }
        if paired {
            for p in 0..T / 2 {
                let (t0, t1) = (2 * p, 2 * p + 1);
                let da = halves(a[t0].d.as_ptr().add(b), a[t1].d.as_ptr().add(b));
                let sa =
                    if MIN { halves(a[t0].s.as_ptr().add(b), a[t1].s.as_ptr().add(b)) } else { _mm512_setzero_ps() };
                for r in 0..R {
                    let (u, v) = (isum[r][t0], isum[r][t1]);
                    let lo = _mm512_shuffle_i64x2::<0b01_00_01_00>(u, v);
                    let hi = _mm512_shuffle_i64x2::<0b11_10_11_10>(u, v);
                    let sum = _mm512_add_epi32(lo, hi);
                    accf[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(wd[r], da), accf[r][p]);
                    if MIN {
                        let mw = _mm512_broadcast_f32x8(_mm256_loadu_ps(w[r].m.as_ptr().add(b)));
                        accf[r][p] = _mm512_fmadd_ps(mw, sa, accf[r][p]);
                    }
                }
            }
        } else {
            for t in 0..T {
                let da = _mm512_broadcast_f32x8(_mm256_loadu_ps(a[t].d.as_ptr().add(b)));
                let sa = if MIN {
                    _mm512_zextps256_ps512(_mm256_loadu_ps(a[t].s.as_ptr().add(b)))
                } else {
                    _mm512_setzero_ps()
                };
                for r in 0..R {
                    accf[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][t]), _mm512_mul_ps(wd[r], da), accf[r][t]);
                    if MIN {
                        let mw = _mm512_zextps256_ps512(_mm256_loadu_ps(w[r].m.as_ptr().add(b)));
                        accf[r][t] = _mm512_fmadd_ps(mw, sa, accf[r][t]);
                    }
                }
            }
        }
    }
    // Tail pairs: blocks (b, b + 1), each scale on its own 8 lanes; when paired, the two
    // tokens' scaled lanes are folded into their halves of accf[r][p] (f32: the blocks differ).
    for (j, b) in (8 * ng..nbp).step_by(2).enumerate() {
        let o = b * 32;
        let y = load_tokens::<T>(&aq, o);
        let (mut unit, mut da) = ([_mm512_setzero_si512(); T], [_mm512_setzero_ps(); T]);
        for t in 0..T {
            unit[t] = init(&a[t], ng + j, has_corr);
            da[t] = two(a[t].d.as_ptr().add(b));
        }
        for r in 0..R {
            let x = _mm512_loadu_si512(wq[r].add(o) as *const _);
            let wd = two(w[r].d.as_ptr().add(b));
            let mut v = [_mm512_setzero_ps(); T];
            for t in 0..T {
                let p = _mm512_dpbusd_epi32(unit[t], x, y[t]);
                v[t] = _mm512_mul_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(wd, da[t]));
                if MIN {
                    // m·s of both blocks, added in lanes 0 and 8 only.
                    let ms = _mm512_mul_ps(two(w[r].m.as_ptr().add(b)), two(a[t].s.as_ptr().add(b)));
                    v[t] = _mm512_mask_add_ps(v[t], 0x0101, v[t], ms);
                }
            }
            if paired {
                for p in 0..T / 2 {
                    let (u, s) = (v[2 * p], v[2 * p + 1]);
                    let lo = _mm512_shuffle_f32x4::<0b01_00_01_00>(u, s);
                    let hi = _mm512_shuffle_f32x4::<0b11_10_11_10>(u, s);
                    accf[r][p] = _mm512_add_ps(accf[r][p], _mm512_add_ps(lo, hi));
                }
            } else {
                for t in 0..T {
                    accf[r][t] = _mm512_add_ps(accf[r][t], v[t]);
                }
            }
        }
    }
    for (r, row) in accf.iter().enumerate() {
        if paired {
            for (p, &acc) in row.iter().take(T / 2).enumerate() {
                *out.add(2 * p * stride + r) = _mm512_mask_reduce_add_ps(0x00FF, acc);
                *out.add((2 * p + 1) * stride + r) = _mm512_mask_reduce_add_ps(0xFF00, acc);
            }
        } else {
            for (t, &acc) in row.iter().enumerate() {
                *out.add(t * stride + r) = _mm512_reduce_add_ps(acc);
            }
        }
    }
}

/// K super-blocks in the by-group layout (`unpack::by_group`), `R` weight rows × `T` tokens →
/// `out[t·stride + r]`: per super-block, four 64-byte `vpdpbusd` from `−c·Σy` leave group
/// `g`'s exact integer sum Σ q·y in i32 lane `g`; then per lane
/// `acc += (f32(sum)·d·sc_g − dmin·min_g·Σy)·d_a` (the minimum term only for `FLOAT_MIN`).
#[inline(always)]
unsafe fn k_rt<const R: usize, const T: usize, const FLOAT_MIN: bool>(
    w: &[RowRef],
    a: &[ActRef],
    out: *mut f32,
    stride: usize,
) {
    let nb = a[0].d.len();
    let has_corr = !a[0].kneg.is_empty();
    let wq: [*const i8; R] = std::array::from_fn(|r| w[r].q.as_ptr());
    let aq: [*const i8; T] = std::array::from_fn(|t| a[t].q.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    for b in 0..nb {
        let mut isum = [[_mm512_setzero_si512(); T]; R];
        if has_corr {
            for t in 0..T {
                let v = _mm512_loadu_si512(a[t].kneg.as_ptr().add(16 * b) as *const _);
                for row in isum.iter_mut() {
                    row[t] = v;
                }
            }
        }
        for c in 0..4 {
            let pos = 256 * b + 64 * c;
            let y = load_tokens::<T>(&aq, pos);
            for r in 0..R {
                let x = _mm512_loadu_si512(wq[r].add(pos) as *const _);
                for t in 0..T {
                    isum[r][t] = _mm512_dpbusd_epi32(isum[r][t], x, y[t]);
                }
            }
        }
        for t in 0..T {
            let da = _mm512_set1_ps(*a[t].d.get_unchecked(b));
            let bs = if FLOAT_MIN { _mm512_loadu_ps(a[t].bsf.as_ptr().add(16 * b)) } else { _mm512_setzero_ps() };
            for r in 0..R {
                let sc = _mm512_loadu_ps(w[r].gsc.as_ptr().add(16 * b));
                let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[r][t]), sc);
                if FLOAT_MIN {
                    v = _mm512_fnmadd_ps(_mm512_loadu_ps(w[r].gmin.as_ptr().add(16 * b)), bs, v);
                }
                acc[r][t] = _mm512_fmadd_ps(v, da, acc[r][t]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (t, &v) in row.iter().enumerate() {
            *out.add(t * stride + r) = _mm512_reduce_add_ps(v);
        }
    }
}

struct Legacy<const MIN: bool>;
impl<const MIN: bool> RegisterTile for Legacy<MIN> {
    #[inline(always)]
    unsafe fn run<const R: usize, const T: usize>(&self, w: &[RowRef], a: &[ActRef], out: *mut f32, stride: usize) {
        legacy_rt::<R, T, MIN>(w, a, out, stride)
    }
}

struct KQuant<const FLOAT_MIN: bool>;
impl<const FLOAT_MIN: bool> RegisterTile for KQuant<FLOAT_MIN> {
    #[inline(always)]
    unsafe fn run<const R: usize, const T: usize>(&self, w: &[RowRef], a: &[ActRef], out: *mut f32, stride: usize) {
        k_rt::<R, T, FLOAT_MIN>(w, a, out, stride)
    }
}

/// Every weight row of `w` · every activation row of `acts` → `out[t·stride + r]`.
///
/// # Safety
/// [`available`] must be true; every row and activation holds the same `k` (whole blocks)
/// with the per-block arrays `Tile`/`ActInts` build for this `kind` (legacy kinds: the
/// activations' `corr` built for a `vpdpbusd` instruction set); `out[t·stride + r]` is
/// writable for every t < acts.len(), r < w.len().
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
pub(crate) unsafe fn dot_tile(kind: Kind, w: &[RowRef], acts: &[ActRef], out: *mut f32, stride: usize) {
    // Register tiles of 4 rows × 2 tokens (16 zmm accumulators of 32).
    match kind {
        Kind::Legacy { has_min: false, .. } => tiled::<4, 2>(&Legacy::<false>, w, acts, out, stride),
        Kind::Legacy { has_min: true, .. } => tiled::<4, 2>(&Legacy::<true>, w, acts, out, stride),
        Kind::K { float_min: false, .. } => tiled::<4, 2>(&KQuant::<false>, w, acts, out, stride),
        Kind::K { float_min: true, .. } => tiled::<4, 2>(&KQuant::<true>, w, acts, out, stride),
    }
}
