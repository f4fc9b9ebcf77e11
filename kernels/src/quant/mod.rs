//! Block quantization: f32 → GGML bytes, for the legacy formats Q4_0, Q4_1, Q5_0, Q5_1
//! and Q8_0, the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K, IQ4_NL and IQ4_XS; and (as
//! row quantizers of `weighted.rs`, with or without importance weights) IQ3_XXS and IQ3_S.
//!
//! Each format's per-block `quantize` (one file per format) follows ggml `ggml-quants.c`
//! `quantize_row_*_ref` operation for operation, in f32, with no fused multiply-adds, and
//! is the scalar reference and the specification: its output is byte-identical to gguf-py's
//! `gguf.quants.quantize` (tested in `tests/quant_legacy.rs`) except for the sign of a zero
//! in blocks of zeros, where gguf-py departs from ggml and we follow ggml: Q4_0/Q5_0 start
//! from `max = 0.0f`, so an all-zero block gets d = +0 / −8 = −0 even when its first element
//! is −0.0 (gguf-py: +0); Q4_1/Q5_1 keep the first of tied ±0 minima (numpy's `min` returns
//! either). These signs never change a dequantized value. The parallel path splits the
//! input into chunks of whole blocks and runs the same per-block function on each chunk, so
//! its output is identical by construction (and tested so on odd block counts). The fast
//! path also uses a format's SIMD kernel where one exists and the CPU has it (x86_64 AVX2,
//! detected at run time: row kernels for Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 in `q8_0.rs` and
//! `legacy_avx2.rs`; 8-candidates-per-vector scale searches for Q2_K, Q4_K, Q5_K and Q6_K
//! in `k_search_avx2.rs`; Q3_K's search one sub-block per lane and IQ4_NL's 16 candidate
//! scales per block in `q3_iq4_avx2.rs`), tested byte for byte against the reference (which never uses
//! them) in `tests/quant_simd.rs`, NaN, ±∞ and subnormal inputs included.
//!
//! The K-quant quantizers (`q*_k.rs`, searches in `k_search.rs`) follow ggml's
//! `quantize_row_q*_K_ref` (no importance matrix) the same way. gguf-py has no quantizer
//! for them, so `tests/quant_kquants.rs` compares them with bytes produced by llama.cpp's
//! own `ggml-quants.c` compiled without FMA contraction (`tests/judges/kquant_llamacpp.py`)
//! and checks round trips through gguf-py's dequantizer. (A ggml built with
//! `-march=native` lets the C compiler fuse multiply-adds in the scale searches and then
//! differs from its own plain-C output in some blocks — 2, 2 and 1 of the 45 fixture blocks
//! for Q2_K, Q4_K and Q6_K; we follow plain C.)
//!
//! IQ4_NL (`iq4_nl.rs`) follows ggml `quantize_iq4_nl` without an importance matrix (what
//! llama-quantize writes), judged the same way (`tests/quant_iq4_nl.rs`). IQ4_XS (`iq4_xs.rs`,
//! the same search per 32 under a 6-bit scale per 256), IQ3_XXS and IQ3_S (`iq3.rs`, tables
//! in `iq3_grid.rs`) follow ggml `quantize_iq4_xs` / `quantize_iq3_xxs` / `quantize_iq3_s`
//! with and without importance weights (`tests/quant_iq3_iq4xs.rs`).
//!
//! Scales (and Q4_1/Q5_1 minima) are computed in f32 and stored as f16 rounded to nearest,
//! ties to even (`half::f16::from_f32`, like ggml's `GGML_FP32_TO_FP16` and numpy's
//! `astype(float16)`); the legacy formats compute their quants from the f32 scale, not the
//! rounded one, while the K-quants, like ggml, recompute theirs from the stored (rounded)
//! super-block and sub-block scales. Q8_K keeps its scale in f32.
//!
//! Not specified (ggml's C is undefined behaviour there, numpy platform-dependent): NaN or
//! infinite inputs, and blocks whose scale is so small (|max| below about 1e-37) that its
//! reciprocal overflows to infinity. We produce *some* valid block for them (Rust float → int
//! casts saturate and map NaN to 0), the same one on the SIMD and the scalar path; no judge
//! compares them.

mod iq1;
mod iq2;
mod iq3;
mod iq3_grid;
mod iq4_nl;
mod iq4_xs;
mod iq_grid_search;
mod k_search;
#[cfg(target_arch = "x86_64")]
mod k_search_avx2;
#[cfg(target_arch = "x86_64")]
mod legacy_avx2;
mod q2_k;
#[cfg(target_arch = "x86_64")]
mod q3_iq4_avx2;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod q8_k;
mod weighted;

pub use weighted::{
    can_quantize_unweighted, can_quantize_weighted, quantize_rows, quantize_rows_reference, requires_imatrix, RowFn,
};

use crate::dequant::{
    BlockIQ4_NL, BlockIQ4_XS, BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K,
    BlockQ6_K, BlockQ8_0, BlockQ8_K, QuantBlock, PARALLEL_CHUNK_BLOCKS, PARALLEL_MIN_BLOCKS,
};
use crate::{convert, GgmlType, KernelError};
use rayon::prelude::*;

/// A block format that can be produced from f32 values.
pub trait QuantizeBlock: QuantBlock {
    /// Quantizes `x` (`x.len() == Self::BLOCK_SIZE`) into one block: the reference.
    fn quantize(x: &[f32]) -> Self;

    /// An optional SIMD kernel for whole blocks (`out` holds their bytes, possibly
    /// unaligned) whose output must equal [`Self::quantize`]'s; returns false, writing
    /// nothing, when this CPU has none.
    fn quantize_row_fast(src: &[f32], out: &mut [u8]) -> bool {
        let _ = (src, out);
        false
    }
}

/// Quantizes `src` as `ty` and **appends** the bytes to `dst` (clear it first to overwrite).
///
/// `src.len()` must be a multiple of the block size. Large inputs (at least
/// `dequant::PARALLEL_MIN_BLOCKS` blocks) run in parallel, and SIMD kernels are used where
/// available, with output identical to [`quantize_reference`]. Plain types (F32, F16, BF16,
/// F64) pass through to [`convert::from_f32`].
pub fn quantize(ty: GgmlType, src: &[f32], dst: &mut Vec<u8>) -> Result<(), KernelError> {
    let n_blocks = src.len() / ty.block_size().max(1);
    let chunk = if n_blocks >= PARALLEL_MIN_BLOCKS { Some(PARALLEL_CHUNK_BLOCKS) } else { None };
    dispatch(ty, src, dst, Mode::Fast(chunk))
}

/// The scalar reference: one block after another on this thread, no SIMD.
pub fn quantize_reference(ty: GgmlType, src: &[f32], dst: &mut Vec<u8>) -> Result<(), KernelError> {
    dispatch(ty, src, dst, Mode::Reference)
}

/// The parallel path (with SIMD kernels where available) with an explicit chunk size in
/// blocks (exposed for tests and tuning).
pub fn quantize_parallel(ty: GgmlType, src: &[f32], dst: &mut Vec<u8>, chunk_blocks: usize) -> Result<(), KernelError> {
    dispatch(ty, src, dst, Mode::Fast(Some(chunk_blocks.max(1))))
}

/// True when `ty` has a SIMD kernel that this CPU runs (the fast path then uses it).
pub fn has_simd(ty: GgmlType) -> bool {
    #[cfg(target_arch = "x86_64")]
    if matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1) {
        return std::arch::is_x86_feature_detected!("avx2");
    }
    if matches!(
        ty,
        GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::IQ4_NL
            | GgmlType::IQ4_XS
    ) {
        return k_search::simd_available();
    }
    let _ = ty;
    false
}

#[derive(Clone, Copy)]
enum Mode {
    /// The scalar per-block reference on this thread.
    Reference,
    /// SIMD where available; in parallel chunks of this many blocks if `Some`.
    Fast(Option<usize>),
}

/// True for the block types this module encodes.
pub fn can_quantize(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::Q8_K
            | GgmlType::IQ4_NL
            | GgmlType::IQ4_XS
    )
}

fn dispatch(ty: GgmlType, src: &[f32], dst: &mut Vec<u8>, mode: Mode) -> Result<(), KernelError> {
    match ty {
        GgmlType::Q4_0 => run::<BlockQ4_0>(src, dst, mode),
        GgmlType::Q4_1 => run::<BlockQ4_1>(src, dst, mode),
        GgmlType::Q5_0 => run::<BlockQ5_0>(src, dst, mode),
        GgmlType::Q5_1 => run::<BlockQ5_1>(src, dst, mode),
        GgmlType::Q8_0 => run::<BlockQ8_0>(src, dst, mode),
        GgmlType::Q2_K => run::<BlockQ2_K>(src, dst, mode),
        GgmlType::Q3_K => run::<BlockQ3_K>(src, dst, mode),
        GgmlType::Q4_K => run::<BlockQ4_K>(src, dst, mode),
        GgmlType::Q5_K => run::<BlockQ5_K>(src, dst, mode),
        GgmlType::Q6_K => run::<BlockQ6_K>(src, dst, mode),
        GgmlType::Q8_K => run::<BlockQ8_K>(src, dst, mode),
        GgmlType::IQ4_NL => run::<BlockIQ4_NL>(src, dst, mode),
        GgmlType::IQ4_XS => run::<BlockIQ4_XS>(src, dst, mode),
        _ if !ty.is_quantized() => convert::from_f32(ty, src, dst),
        _ => Err(KernelError::Unsupported { ty, op: "quantize" }),
    }
}

fn run<B: QuantizeBlock>(src: &[f32], dst: &mut Vec<u8>, mode: Mode) -> Result<(), KernelError> {
    let (ty, n_elements, block_size) = (B::TYPE, src.len(), B::BLOCK_SIZE);
    if !n_elements.is_multiple_of(block_size) {
        return Err(KernelError::RaggedBlocks { ty, n_elements, block_size });
    }
    let size = std::mem::size_of::<B>();
    let bytes = (n_elements / block_size).checked_mul(size).ok_or(KernelError::TooLarge { ty, n_elements })?;
    let start = dst.len();
    dst.resize(start + bytes, 0);
    let out = &mut dst[start..];
    let fast = |s: &[f32], d: &mut [u8]| {
        if !B::quantize_row_fast(s, d) {
            quantize_blocks::<B>(s, d);
        }
    };
    match mode {
        Mode::Reference => quantize_blocks::<B>(src, out),
        Mode::Fast(None) => fast(src, out),
        Mode::Fast(Some(chunk)) => {
            src.par_chunks(chunk * block_size).zip(out.par_chunks_mut(chunk * size)).for_each(|(s, d)| fast(s, d))
        }
    }
    Ok(())
}

/// The fast path of a K-quant: `quantize` (the block quantizer with the SIMD scale
/// searches of `k_search_avx2.rs`) over whole blocks; false, writing nothing, without them.
fn k_row_fast<B: QuantizeBlock>(src: &[f32], out: &mut [u8], quantize: impl Fn(&[f32]) -> B) -> bool {
    if !k_search::simd_available() {
        return false;
    }
    for (x, o) in src.chunks_exact(B::BLOCK_SIZE).zip(out.chunks_exact_mut(std::mem::size_of::<B>())) {
        o.copy_from_slice(bytemuck::bytes_of(&quantize(x)));
    }
    true
}

/// Sequential loop over whole blocks; lengths were checked by the caller. `out` may be
/// unaligned for the block type, so each block is copied in as bytes.
fn quantize_blocks<B: QuantizeBlock>(src: &[f32], out: &mut [u8]) {
    for (x, o) in src.chunks_exact(B::BLOCK_SIZE).zip(out.chunks_exact_mut(std::mem::size_of::<B>())) {
        o.copy_from_slice(bytemuck::bytes_of(&B::quantize(x)));
    }
}

/// The element of largest magnitude, with its sign; the first one on ties (ggml's
/// `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }`, numpy's `argmax` of `abs`).
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// (min, max) of the block, ggml's loop starting from (`FLT_MAX`, `-FLT_MAX`).
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// ggml's `d ? 1.0f/d : 0.0f`.
fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// ggml's `MIN(top, (int8_t)(v))`: truncation toward zero, capped at `top`. For finite
/// inputs of a finite scale `v` lies in about [0, top + 1.5], so the lower clamp never acts;
/// it only keeps the unspecified cases (see the module docs) inside the field.
fn trunc_capped(v: f32, top: i32) -> u8 {
    (v as i32).clamp(0, top) as u8
}

/// The 2-bit packing of Q2_K and Q3_K `qs`: in each 128-element half, byte i holds
/// elements i, i + 32, i + 64 and i + 96 in bits 0–1, 2–3, 4–5, 6–7 (values must be < 4).
fn pack_2bit(l: &[u8; 256]) -> [u8; 64] {
    std::array::from_fn(|b| {
        let (half, i) = (b / 32, b % 32);
        let at = |k: usize| l[128 * half + 32 * k + i] << (2 * k);
        at(0) | at(1) | at(2) | at(3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_absmax_keeps_sign_and_first_tie() {
        assert_eq!(signed_absmax(&[1.0, -3.0, 2.0]), -3.0);
        assert_eq!(signed_absmax(&[3.0, -3.0]), 3.0);
        assert_eq!(signed_absmax(&[-3.0, 3.0]), -3.0);
        assert_eq!(signed_absmax(&[0.0, -0.0]), 0.0);
    }

    #[test]
    fn errors_name_type_and_sizes() {
        let mut v = vec![7u8];
        assert_eq!(
            quantize(GgmlType::Q5_1, &[0.0; 40], &mut v),
            Err(KernelError::RaggedBlocks { ty: GgmlType::Q5_1, n_elements: 40, block_size: 32 })
        );
        assert_eq!(
            quantize(GgmlType::TQ1_0, &[0.0; 256], &mut v),
            Err(KernelError::Unsupported { ty: GgmlType::TQ1_0, op: "quantize" })
        );
        assert_eq!(v, [7], "a failed call appends nothing");
    }

    #[test]
    fn appends_and_passes_plain_types_through() {
        let mut v = vec![9u8];
        quantize(GgmlType::Q8_0, &[0.0; 32], &mut v).unwrap();
        assert_eq!(v.len(), 1 + 34);
        quantize(GgmlType::F16, &[1.0], &mut v).unwrap();
        assert_eq!(&v[35..], [0x00, 0x3C]);
    }
}
