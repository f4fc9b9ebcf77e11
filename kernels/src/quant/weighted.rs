//! Row quantization with importance weights: ggml `ggml_quantize_chunk(type, src, dst, 0,
//! nrows, n_per_row, imatrix)`, what llama-quantize calls for every tensor.
//!
//! ggml quantizes each row of `n_per_row` values with the type's `quantize_<type>` and the
//! same `imatrix` (one weight per column) for every row. Without an imatrix the legacy and
//! K-quant types fall back to their `quantize_row_*_ref` reference (our [`super::quantize`]),
//! IQ4_NL runs its weighted search with weights x² (also [`super::quantize`]); the types of
//! [`requires_imatrix`] refuse to run without one.
//!
//! Each format's row quantizer is a [`RowFn`] registered in [`row_fn`]; a row depends only on
//! its own values and the weights (some formats take statistics over the whole row, e.g.
//! ggml's Q4_0 `sigma2 = Σx²/n_per_row`), so rows run in parallel with identical output.
//!
//! Q4_0, Q4_1, Q5_0, Q5_1, Q2_K … Q6_K and IQ4_NL implement [`QuantizeWeighted`] (ggml's
//! `quantize_row_<type>_impl`, in each format's file) with the searches of `k_search.rs`;
//! their row functions use the SIMD candidate loops where the CPU has them (same bytes),
//! [`quantize_rows_reference`] the scalar ones. Tested byte for byte against llama.cpp in
//! `tests/quant_weighted.rs`.

use super::k_search::{importance, sum_squares};
use super::QuantizeBlock;
use crate::dequant::{
    BlockIQ4_NL, BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K, BlockQ6_K,
};
use crate::{GgmlType, KernelError};
use rayon::prelude::*;

/// One row: `x` (`n_per_row` values), the importance weights (`x.len()` of them, or `None`),
/// and exactly the row's bytes in `out`.
pub type RowFn = fn(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]);

/// ggml `ggml_quantize_requires_imatrix` (IQ1_M is left out there, but its quantizer asserts
/// that weights are given, so it is listed here too).
pub fn requires_imatrix(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::IQ2_XXS | GgmlType::IQ2_XS | GgmlType::IQ1_S | GgmlType::IQ1_M)
}

/// The row quantizer of `ty` that takes importance weights, when it has one.
fn row_fn(ty: GgmlType) -> Option<RowFn> {
    block_row_fn::<true>(ty).or_else(|| iq_row_fn(ty))
}

/// The i-quant row quantizers (their own files; SIMD inside where they have it).
fn iq_row_fn(ty: GgmlType) -> Option<RowFn> {
    match ty {
        GgmlType::IQ4_XS => Some(super::iq4_xs::quantize_row),
        GgmlType::IQ3_XXS => Some(super::iq3::quantize_row_xxs),
        GgmlType::IQ3_S => Some(super::iq3::quantize_row_s),
        GgmlType::IQ2_XXS => Some(super::iq2::quantize_row_iq2_xxs),
        GgmlType::IQ2_XS => Some(super::iq2::quantize_row_iq2_xs),
        GgmlType::IQ2_S => Some(super::iq2::quantize_row_iq2_s),
        GgmlType::IQ1_S => Some(super::iq1::quantize_row_iq1_s),
        GgmlType::IQ1_M => Some(super::iq1::quantize_row_iq1_m),
        _ => None,
    }
}

/// The scalar row quantizer of `ty` where [`row_fn`]'s uses SIMD, else [`row_fn`]'s.
fn reference_row_fn(ty: GgmlType) -> Option<RowFn> {
    block_row_fn::<false>(ty).or_else(|| row_fn(ty))
}

/// The [`QuantizeWeighted`] formats' row quantizers, with or without the SIMD searches.
fn block_row_fn<const SIMD: bool>(ty: GgmlType) -> Option<RowFn> {
    Some(match ty {
        GgmlType::Q4_0 => block_row::<BlockQ4_0, SIMD>,
        GgmlType::Q4_1 => block_row::<BlockQ4_1, SIMD>,
        GgmlType::Q5_0 => block_row::<BlockQ5_0, SIMD>,
        GgmlType::Q5_1 => block_row::<BlockQ5_1, SIMD>,
        GgmlType::Q2_K => block_row::<BlockQ2_K, SIMD>,
        GgmlType::Q3_K => block_row::<BlockQ3_K, SIMD>,
        GgmlType::Q4_K => block_row::<BlockQ4_K, SIMD>,
        GgmlType::Q5_K => block_row::<BlockQ5_K, SIMD>,
        GgmlType::Q6_K => block_row::<BlockQ6_K, SIMD>,
        GgmlType::IQ4_NL => block_row::<BlockIQ4_NL, SIMD>,
        _ => return None,
    })
}

/// A block format with ggml's importance-weighted row quantizer (`quantize_row_<type>_impl`).
pub(super) trait QuantizeWeighted: QuantizeBlock {
    /// Quantizes the row `x` (whole blocks) with one importance weight per value (`qw`,
    /// `x.len()` of them) into `out` (exactly the row's bytes); `simd` selects the SIMD
    /// searches where the CPU has them (same bytes).
    fn quantize_row_weighted(x: &[f32], qw: &[f32], out: &mut [u8], simd: bool);
}

/// The [`RowFn`] of a [`QuantizeWeighted`] format: without weights, what ggml's
/// `quantize_<type>` does with a NULL imatrix (the reference quantizer, or for IQ4_NL its
/// x²-weighted search: `B::quantize`).
fn block_row<B: QuantizeWeighted, const SIMD: bool>(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    match qw {
        Some(qw) => B::quantize_row_weighted(x, qw, out, SIMD),
        None if SIMD && B::quantize_row_fast(x, out) => {}
        None => super::quantize_blocks::<B>(x, out),
    }
}

/// Runs `quantize(block of x, its weights)` over the blocks of a row into `out`.
pub(super) fn each_block<B: QuantizeBlock>(
    x: &[f32],
    qw: &[f32],
    out: &mut [u8],
    quantize: impl Fn(&[f32], &[f32]) -> B,
) {
    let n = B::BLOCK_SIZE;
    let blocks = x.chunks_exact(n).zip(qw.chunks_exact(n));
    for ((x, qw), o) in blocks.zip(out.chunks_exact_mut(std::mem::size_of::<B>())) {
        o.copy_from_slice(bytemuck::bytes_of(&quantize(x, qw)));
    }
}

/// The legacy formats' row (ggml `quantize_row_q4_0_impl` … `q5_1_impl`): σ² = Σx²/n_per_row
/// over the whole row, then per block of 32 the weights qw·sqrt(σ² + x²) for `quantize`.
pub(super) fn legacy_row<B: QuantizeBlock>(
    x: &[f32],
    qw: &[f32],
    out: &mut [u8],
    quantize: impl Fn(&[f32], &[f32; 32]) -> B,
) {
    let sigma2 = sum_squares(x) / x.len() as f32;
    each_block::<B>(x, qw, out, |xb, qw| quantize(xb, &importance(qw, xb, sigma2)));
}

/// True when [`quantize_rows`] can produce `ty` with an importance matrix.
pub fn can_quantize_weighted(ty: GgmlType) -> bool {
    row_fn(ty).is_some() || (!ty.is_quantized() || ty == GgmlType::Q8_0 || ty == GgmlType::Q8_K)
}

/// True when [`quantize_rows`] can produce `ty` without an importance matrix.
pub fn can_quantize_unweighted(ty: GgmlType) -> bool {
    !requires_imatrix(ty) && (super::can_quantize(ty) || row_fn(ty).is_some())
}

/// Quantizes `src` (rows of `n_per_row` values) as `ty` with optional importance weights
/// (`n_per_row` of them, one per column) and **appends** the bytes to `dst`; appends nothing
/// on error. Byte-identical to ggml `ggml_quantize_chunk` over the whole tensor.
pub fn quantize_rows(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut Vec<u8>,
) -> Result<(), KernelError> {
    rows(ty, src, n_per_row, imatrix, dst, false)
}

/// [`quantize_rows`] on this thread with the scalar searches (no SIMD), every row through
/// its row function as in ggml's `quantize_<type>` (also without an imatrix, where
/// [`quantize_rows`] goes straight to [`super::quantize`]): the reference the fast path is
/// tested against. Same bytes.
pub fn quantize_rows_reference(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut Vec<u8>,
) -> Result<(), KernelError> {
    rows(ty, src, n_per_row, imatrix, dst, true)
}

fn rows(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut Vec<u8>,
    reference: bool,
) -> Result<(), KernelError> {
    let block_size = ty.block_size();
    if n_per_row == 0 || !n_per_row.is_multiple_of(block_size) || !src.len().is_multiple_of(n_per_row) {
        return Err(KernelError::RaggedBlocks { ty, n_elements: n_per_row, block_size });
    }
    if let Some(w) = imatrix {
        if w.len() != n_per_row {
            return Err(KernelError::ImatrixLength { ty, n_per_row, found: w.len() });
        }
    }
    let row_fn = if reference { reference_row_fn(ty) } else { row_fn(ty) };
    let weights_used = imatrix.is_some() && row_fn.is_some();
    if !weights_used {
        if requires_imatrix(ty) {
            return Err(if row_fn.is_some() {
                KernelError::NeedsImatrix { ty }
            } else {
                KernelError::Unsupported { ty, op: "quantize" }
            });
        }
        let through_rows = reference && row_fn.is_some();
        if !through_rows && (super::can_quantize(ty) || !ty.is_quantized()) {
            // ggml's null-imatrix path is the reference quantizer (`super::quantize`), and
            // Q8_0 / Q8_K and the float types ignore weights.
            return if reference { super::quantize_reference(ty, src, dst) } else { super::quantize(ty, src, dst) };
        }
    }
    let Some(row_fn) = row_fn else {
        return Err(KernelError::Unsupported { ty, op: "quantize" });
    };
    let row_bytes = (n_per_row / block_size) * ty.type_size();
    let n_rows = src.len() / n_per_row;
    let bytes = n_rows.checked_mul(row_bytes).ok_or(KernelError::TooLarge { ty, n_elements: src.len() })?;
    let start = dst.len();
    dst.resize(start + bytes, 0);
    let out = &mut dst[start..];
    if reference {
        let rows = src.chunks_exact(n_per_row).zip(out.chunks_exact_mut(row_bytes));
        rows.for_each(|(x, o)| row_fn(x, imatrix, o));
    } else {
        let rows = src.par_chunks_exact(n_per_row).zip(out.par_chunks_exact_mut(row_bytes));
        rows.for_each(|(x, o)| row_fn(x, imatrix, o));
    }
    Ok(())
}
