//! AVX-512 products of F16 / BF16 / F32 weights with f32 activations, packing-free: the stored
//! weight rows are read in place and widened in registers (F16: `vcvtph2ps`; BF16: a 16-bit
//! shift; F32: as is), never copied to an f32 tile (the sgemm path of `driver::run_float`
//! widens every tile to f32 and `matrixmultiply` then packs it and the activations again).
//!
//! Register tile (llamafile tinyBLAS-style): 4 weight rows × `T` ≤ 6 tokens, vectors of 16
//! along k; per step 4 widened weight vectors and `T` activation loads feed `4·T` FMAs (24
//! accumulators + 4 + 1 registers of 32). At the end each token's 4 row accumulators are
//! reduced together (two 128-bit-chunk shuffle levels, then two in-chunk permutes: 13 vector
//! operations for 4 sums) into the 4 adjacent outputs `out[t][r..r + 4]`. A k that is not a
//! multiple of 16 ends with one masked step (masked-off lanes load as +0).
//!
//! Products are exact in f32 (f16/bf16 widen exactly; the activations are the f16/bf16-rounded
//! values ggml multiplies); only the order of the f32 sums differs from ggml's.

use crate::GgmlType;
use std::arch::x86_64::*;

/// Weight rows per register tile.
const R: usize = 4;
/// Tokens per register tile, at most.
const T: usize = 6;

/// True when this CPU can run these kernels.
pub(super) fn available() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("f16c") && has!("fma")
}

/// How a weight element type widens to f32 lanes.
trait Widen {
    /// Bytes per element.
    const SIZE: usize;
    /// 16 elements at `p`.
    unsafe fn load(p: *const u8) -> __m512;
    /// The first `mask.count_ones()` elements at `p`, +0 in the other lanes.
    unsafe fn load_masked(p: *const u8, mask: __mmask16) -> __m512;
}

struct F16;
struct Bf16;
struct F32;

impl Widen for F16 {
    const SIZE: usize = 2;
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const u8, mask: __mmask16) -> __m512 {
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p as *const i16))
    }
}

impl Widen for Bf16 {
    const SIZE: usize = 2;
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512 {
        // bf16 is the high half of an f32.
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i))))
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const u8, mask: __mmask16) -> __m512 {
        let h = _mm256_maskz_loadu_epi16(mask, p as *const i16);
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }
}

impl Widen for F32 {
    const SIZE: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512 {
        _mm512_loadu_ps(p as *const f32)
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const u8, mask: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(mask, p as *const f32)
    }
}

/// Weight rows `r0..r0 + nr` (of `rows`, each `k` elements of `ty` in `w`) times every
/// activation row of `acts` (`n × k` f32) into `out[t·rows + r]`.
///
/// # Safety
/// [`available`]; `ty` is F16, BF16 or F32; `w` holds at least `(r0 + nr)·k` elements;
/// `acts.len() == n·k`; cells `(t, r0..r0 + nr)` for `t < n` are inside `out` (`n × rows`)
/// and written by this call alone.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c,fma,avx2")]
pub(super) unsafe fn rows_task(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    r0: usize,
    nr: usize,
    acts: &[f32],
    rows: usize,
    out: *mut f32,
) {
    match ty {
        GgmlType::F16 => task::<F16>(w, k, r0, nr, acts, rows, out),
        GgmlType::BF16 => task::<Bf16>(w, k, r0, nr, acts, rows, out),
        GgmlType::F32 => task::<F32>(w, k, r0, nr, acts, rows, out),
        _ => unreachable!("float weight types only"),
    }
}

/// Token blocks outer (their activations stay in L1 while the task's weight rows pass),
/// 4-row blocks inner.
#[inline(always)]
unsafe fn task<L: Widen>(w: &[u8], k: usize, r0: usize, nr: usize, acts: &[f32], rows: usize, out: *mut f32) {
    let n = acts.len() / k;
    let row_bytes = k * L::SIZE;
    let mut t0 = 0;
    while t0 < n {
        let nt = (n - t0).min(T);
        let a: [*const f32; T] = std::array::from_fn(|t| acts.as_ptr().add((t0 + t.min(nt - 1)) * k));
        let mut rb = r0;
        while rb < r0 + nr {
            let real = (r0 + nr - rb).min(R);
            // Rows past `real` repeat the last one; their sums are not stored.
            let wr: [*const u8; R] = std::array::from_fn(|r| w.as_ptr().add((rb + r.min(real - 1)) * row_bytes));
            let o = out.add(t0 * rows + rb);
            match nt {
                1 => tile::<L, 1>(&wr, &a, k, o, rows, real),
                2 => tile::<L, 2>(&wr, &a, k, o, rows, real),
                3 => tile::<L, 3>(&wr, &a, k, o, rows, real),
                4 => tile::<L, 4>(&wr, &a, k, o, rows, real),
                5 => tile::<L, 5>(&wr, &a, k, o, rows, real),
                _ => tile::<L, 6>(&wr, &a, k, o, rows, real),
            }
            rb += real;
        }
        t0 += nt;
    }
}

/// `out[t·rows + r] = Σ_i w[r][i]·a[t][i]` for `r < real`, `t < TT`.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile<L: Widen, const TT: usize>(
    w: &[*const u8; R],
    a: &[*const f32; T],
    k: usize,
    out: *mut f32,
    rows: usize,
    real: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); R]; TT];
    let full = k / 16;
    for i in 0..full {
        let wv: [__m512; R] = std::array::from_fn(|r| L::load(w[r].add(i * 16 * L::SIZE)));
        for t in 0..TT {
            let av = _mm512_loadu_ps(a[t].add(i * 16));
            for r in 0..R {
                acc[t][r] = _mm512_fmadd_ps(wv[r], av, acc[t][r]);
            }
        }
    }
    let rem = k % 16;
    if rem != 0 {
        let mask: __mmask16 = (1u16 << rem) - 1;
        let i = full * 16;
        let wv: [__m512; R] = std::array::from_fn(|r| L::load_masked(w[r].add(i * L::SIZE), mask));
        for t in 0..TT {
            let av = _mm512_maskz_loadu_ps(mask, a[t].add(i));
            for r in 0..R {
                acc[t][r] = _mm512_fmadd_ps(wv[r], av, acc[t][r]);
            }
        }
    }
    let store: __mmask8 = (1u8 << real) - 1;
    for t in 0..TT {
        _mm_mask_storeu_ps(out.add(t * rows), store, sum4(acc[t]));
    }
}

/// The lane sums of 4 vectors, in that order.
#[inline(always)]
unsafe fn sum4(v: [__m512; 4]) -> __m128 {
    // 128-bit chunks: [a0 a1 b0 b1] + [a2 a3 b2 b3] → a's and b's 8-lane halves added.
    let ab = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(v[0], v[1]),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(v[0], v[1]),
    );
    let cd = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0b01_00_01_00>(v[2], v[3]),
        _mm512_shuffle_f32x4::<0b11_10_11_10>(v[2], v[3]),
    );
    // [ab0 ab2 cd0 cd2] + [ab1 ab3 cd1 cd3] → one 4-lane chunk per vector: [a b c d].
    let abcd =
        _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(ab, cd), _mm512_shuffle_f32x4::<0b11_01_11_01>(ab, cd));
    // Within each chunk: swap neighbours and add, then swap pairs and add.
    let s = _mm512_add_ps(abcd, _mm512_permute_ps::<0b10_11_00_01>(abcd));
    let s = _mm512_add_ps(s, _mm512_permute_ps::<0b01_00_11_10>(s));
    // Lanes 0, 4, 8, 12 hold the four sums.
    _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), s))
}
