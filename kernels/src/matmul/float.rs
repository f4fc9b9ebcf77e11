//! f32 matrix products (attention QKᵀ / PV, and the F32/F16/BF16 weight path) via the
//! `matrixmultiply` crate's sgemm (cache-blocked, AVX2/FMA kernels picked at run time),
//! split over rows of C with rayon when the product is large enough to pay for it.

use crate::{GgmlType, KernelError};
use rayon::prelude::*;

/// Products smaller than this (m·n·k multiply-adds) run on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 21;

/// How an operand is stored (both row-major): `N` as written, `T` transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trans {
    /// A is m×k (B is k×n), row-major.
    N,
    /// A is stored k×m (B is stored n×k), row-major; the product uses its transpose.
    T,
}

fn check(len: usize, rows: usize, cols: usize) -> Result<(), KernelError> {
    let n = rows.checked_mul(cols).ok_or(KernelError::TooLarge { ty: GgmlType::F32, n_elements: usize::MAX })?;
    if len != n {
        return Err(KernelError::ByteLength { ty: GgmlType::F32, n_elements: n, expected: n * 4, found: len * 4 });
    }
    Ok(())
}

/// `C = alpha · op(A) · op(B) + beta · C`, with C m×n row-major, op(A) m×k, op(B) k×n.
/// With `beta == 0` C's previous contents are ignored (NaN included).
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(
    a: &[f32],
    ta: Trans,
    b: &[f32],
    tb: Trans,
    c: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<(), KernelError> {
    check(a.len(), m, k)?;
    check(b.len(), k, n)?;
    check(c.len(), m, n)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    // Strides (in elements) of op(A) and op(B).
    let (rsa, csa) = if ta == Trans::N { (k as isize, 1) } else { (1, m as isize) };
    let (rsb, csb) = if tb == Trans::N { (n as isize, 1) } else { (1, k as isize) };
    let run = |row0: usize, rows: usize, c: &mut [f32]| {
        // SAFETY: op(A) rows row0..row0+rows, all of op(B) and the m×n block of C (rows
        // row0.. of c, which `c` starts at) are in bounds by the length checks above; the
        // strides describe exactly those row-major layouts.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                n,
                alpha,
                a.as_ptr().offset(row0 as isize * rsa),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                beta,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        }
    };
    let macs = m.saturating_mul(n).saturating_mul(k);
    let threads = rayon::current_num_threads();
    if macs < PARALLEL_MIN_MACS || threads == 1 || m < 2 {
        run(0, m, c);
    } else {
        // A few row blocks per thread (multiples of 8 rows: sgemm's micro-kernel height).
        let per = m.div_ceil(threads * 2).next_multiple_of(8).max(8);
        c.par_chunks_mut(per * n).enumerate().for_each(|(i, cc)| run(i * per, cc.len() / n, cc));
    }
    Ok(())
}

/// Widens F16 (or BF16, F32) little-endian bytes to f32 (`dst.len()` elements). F16 uses the
/// F16C `vcvtph2ps` when the CPU has it (exact, like `half`'s software conversion, which is
/// the fallback); BF16 and F32 go through `convert::to_f32`.
pub(crate) fn widen(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if ty == GgmlType::F16 && std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx")
    {
        // SAFETY: F16C and AVX detected; lengths checked inside.
        unsafe { widen_f16c(src, dst) };
        return;
    }
    crate::convert::to_f32(ty, src, dst).expect("caller checked the lengths");
}

/// # Safety
/// F16C and AVX must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn widen_f16c(src: &[u8], dst: &mut [f32]) {
    use std::arch::x86_64::*;
    assert_eq!(src.len(), dst.len() * 2, "F16 bytes for the f32 elements");
    let n = dst.len();
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
    for j in i..n {
        dst[j] = half::f16::from_le_bytes([src[2 * j], src[2 * j + 1]]).to_f32();
    }
}

/// f32 → F16 bits, round to nearest even (ggml `GGML_CPU_FP32_TO_FP16`: F16C `vcvtps2ph`;
/// `half`'s conversion, the fallback, rounds the same way).
pub(crate) fn narrow_f16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "one F16 per f32");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: F16C and AVX detected; lengths equal.
        unsafe { narrow_f16c(src, dst) };
        return;
    }
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = half::f16::from_f32(x).to_bits();
    }
}

/// # Safety
/// F16C and AVX must be available; `src.len() == dst.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn narrow_f16c(src: &[f32], dst: &mut [u16]) {
    use std::arch::x86_64::*;
    let n = src.len();
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm256_cvtps_ph(_mm256_loadu_ps(src.as_ptr().add(i)), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
        i += 8;
    }
    for j in i..n {
        dst[j] = half::f16::from_f32(src[j]).to_bits();
    }
}
