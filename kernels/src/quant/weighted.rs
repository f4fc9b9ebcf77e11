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
    match ty {
        GgmlType::IQ2_XXS => Some(super::iq2::quantize_row_iq2_xxs),
        GgmlType::IQ2_XS => Some(super::iq2::quantize_row_iq2_xs),
        GgmlType::IQ2_S => Some(super::iq2::quantize_row_iq2_s),
        GgmlType::IQ1_S => Some(super::iq1::quantize_row_iq1_s),
        GgmlType::IQ1_M => Some(super::iq1::quantize_row_iq1_m),
        _ => None,
    }
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
    let block_size = ty.block_size();
    if n_per_row == 0 || !n_per_row.is_multiple_of(block_size) || !src.len().is_multiple_of(n_per_row) {
        return Err(KernelError::RaggedBlocks { ty, n_elements: n_per_row, block_size });
    }
    if let Some(w) = imatrix {
        if w.len() != n_per_row {
            return Err(KernelError::ImatrixLength { ty, n_per_row, found: w.len() });
        }
    }
    let row_fn = row_fn(ty);
    let weights_used = imatrix.is_some() && row_fn.is_some();
    if !weights_used {
        if requires_imatrix(ty) {
            return Err(if row_fn.is_some() {
                KernelError::NeedsImatrix { ty }
            } else {
                KernelError::Unsupported { ty, op: "quantize" }
            });
        }
        if super::can_quantize(ty) || !ty.is_quantized() {
            // ggml's null-imatrix path is the reference quantizer (`super::quantize`), and
            // Q8_0 / Q8_K and the float types ignore weights.
            return super::quantize(ty, src, dst);
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
    let rows = src.par_chunks_exact(n_per_row).zip(out.par_chunks_exact_mut(row_bytes));
    rows.for_each(|(x, o)| row_fn(x, imatrix, o));
    Ok(())
}
