//! Plain element types ⇄ f32: little-endian bytes ⇄ f32 values (via `half` for F16/BF16).
//!
//! Rounding: f32 → F16 and f32 → BF16 round to nearest, ties to even (`half::f16::from_f32`,
//! `half::bf16::from_f32`), which is what numpy `astype(float16)` and torch
//! `.to(torch.bfloat16)` do; values past the F16 range (|x| ≥ 65520) become ±inf.
//!
//! NaN: a NaN stays a NaN in every direction (F16 and BF16 set the quiet bit and keep the
//! sign and the high payload bits). The exact NaN bit pattern is not specified: torch
//! writes the canonical 0x7FC0 for BF16 where we keep the payload, so tests compare NaNs
//! by NaN-ness only.
//!
//! Decoding into f32 is exact for F16, BF16, I8 and I16; F64, I32 and I64 are rounded to the
//! nearest f32 (lossy) so that metadata-like integer tensors can still be inspected.

use crate::{dequant, quant, GgmlType, KernelError};
use half::{bf16, f16};
use rayon::prelude::*;

/// Inputs with at least this many elements are converted in parallel.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 18;
/// Elements per rayon task on the parallel path.
const PARALLEL_CHUNK_ELEMENTS: usize = 1 << 16;

/// True when `to_f32` can decode `ty` (plain numeric types and the implemented block types).
pub fn can_decode(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, F32 | F16 | BF16 | F64 | I8 | I16 | I32 | I64) || dequant::has_block_codec(ty)
}

/// True when `from_f32` can encode `ty` (plain float types and the implemented quantizers).
pub fn can_encode(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::F64) || quant::can_quantize(ty)
}

/// Decodes `src` (little-endian bytes of `ty`) into `dst`; `dst.len()` is the element count
/// and `src` must hold exactly that many elements. Block types go through [`dequant`].
pub fn to_f32(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    if ty.is_quantized() {
        return dequant::dequantize(ty, src, dst);
    }
    if !can_decode(ty) {
        return Err(KernelError::Unsupported { ty, op: "decode" });
    }
    KernelError::check_len(ty, dst.len(), src.len())?;
    match ty {
        GgmlType::F32 => {
            #[cfg(target_endian = "little")]
            {
                bytemuck::cast_slice_mut::<f32, u8>(dst).copy_from_slice(src);
            }
            #[cfg(not(target_endian = "little"))]
            decode::<4>(src, dst, f32::from_le_bytes);
        }
        GgmlType::F16 => decode_f16(src, dst),
        GgmlType::BF16 => decode::<2>(src, dst, |b| bf16::from_le_bytes(b).to_f32()),
        GgmlType::F64 => decode::<8>(src, dst, |b| f64::from_le_bytes(b) as f32),
        GgmlType::I8 => decode::<1>(src, dst, |b| b[0] as i8 as f32),
        GgmlType::I16 => decode::<2>(src, dst, |b| i16::from_le_bytes(b) as f32),
        GgmlType::I32 => decode::<4>(src, dst, |b| i32::from_le_bytes(b) as f32),
        GgmlType::I64 => decode::<8>(src, dst, |b| i64::from_le_bytes(b) as f32),
        _ => return Err(KernelError::Unsupported { ty, op: "decode" }),
    }
    Ok(())
}

/// Encodes `src` as `ty` and **appends** the bytes to `dst` (clear it first to overwrite).
/// F32, F16, BF16 and F64, and the block types of [`quant`] (`src.len()` a multiple of the
/// block size); other block types are `KernelError::Unsupported`.
pub fn from_f32(ty: GgmlType, src: &[f32], dst: &mut Vec<u8>) -> Result<(), KernelError> {
    match ty {
        GgmlType::F32 => encode::<4>(ty, src, dst, f32::to_le_bytes),
        GgmlType::F16 => encode::<2>(ty, src, dst, |x| f16::from_f32(x).to_le_bytes()),
        GgmlType::BF16 => encode::<2>(ty, src, dst, |x| bf16::from_f32(x).to_le_bytes()),
        GgmlType::F64 => encode::<8>(ty, src, dst, |x| (x as f64).to_le_bytes()),
        _ if quant::can_quantize(ty) => quant::quantize(ty, src, dst),
        _ => Err(KernelError::Unsupported { ty, op: "encode" }),
    }
}

/// Re-encodes the bytes of `src` from type `from` to type `to`.
///
/// Same type: a copy (after checking `src` is whole blocks). F32 ⇄ F16 ⇄ BF16: element by
/// element without an f32 buffer; F16 ⇄ BF16 goes through an exact f32 value, so it rounds
/// once. Anything else decodable → encodable (e.g. F16 → Q8_0, Q4_1 → F32): chunk by chunk
/// through a small f32 buffer; a quantized target needs a whole number of its blocks
/// (`KernelError::RaggedBlocks` otherwise).
pub fn convert_bytes(from: GgmlType, to: GgmlType, src: &[u8]) -> Result<Vec<u8>, KernelError> {
    let n = KernelError::elements_in(from, src.len())?;
    if from == to {
        return Ok(src.to_vec());
    }
    use GgmlType::*;
    let f16_in = |b: [u8; 2]| f16::from_le_bytes(b).to_f32();
    let bf16_in = |b: [u8; 2]| bf16::from_le_bytes(b).to_f32();
    let f16_out = |x: f32| f16::from_f32(x).to_le_bytes();
    let bf16_out = |x: f32| bf16::from_f32(x).to_le_bytes();
    match (from, to) {
        (F32, F16) => transcode::<4, 2>(to, n, src, |b| f16_out(f32::from_le_bytes(b))),
        (F32, BF16) => transcode::<4, 2>(to, n, src, |b| bf16_out(f32::from_le_bytes(b))),
        (F16, F32) => transcode::<2, 4>(to, n, src, |b| f16_in(b).to_le_bytes()),
        (BF16, F32) => transcode::<2, 4>(to, n, src, |b| bf16_in(b).to_le_bytes()),
        (F16, BF16) => transcode::<2, 2>(to, n, src, |b| bf16_out(f16_in(b))),
        (BF16, F16) => transcode::<2, 2>(to, n, src, |b| f16_out(bf16_in(b))),
        _ => {
            if !can_decode(from) {
                return Err(KernelError::Unsupported { ty: from, op: "decode" });
            }
            if !can_encode(to) {
                return Err(KernelError::Unsupported { ty: to, op: "encode" });
            }
            let to_blocks = n / to.block_size();
            if !n.is_multiple_of(to.block_size()) {
                return Err(KernelError::RaggedBlocks { ty: to, n_elements: n, block_size: to.block_size() });
            }
            // Chunk by chunk (in parallel) through a small f32 buffer, so that converting a
            // large tensor never holds a whole-tensor f32 copy besides its output.
            // PARALLEL_CHUNK_ELEMENTS is a multiple of every block size (≤ 256), so chunks
            // hold whole blocks on both sides.
            let in_chunk = PARALLEL_CHUNK_ELEMENTS / from.block_size() * from.type_size();
            let out_chunk = PARALLEL_CHUNK_ELEMENTS / to.block_size() * to.type_size();
            let bytes = to_blocks.checked_mul(to.type_size()).ok_or(KernelError::TooLarge { ty: to, n_elements: n })?;
            let mut out = vec![0u8; bytes];
            out.par_chunks_mut(out_chunk).zip(src.par_chunks(in_chunk)).try_for_each(|(o, s)| {
                let mut tmp = vec![0f32; o.len() / to.type_size() * to.block_size()];
                to_f32(from, s, &mut tmp)?;
                let mut enc = Vec::with_capacity(o.len());
                from_f32(to, &tmp, &mut enc)?;
                o.copy_from_slice(&enc);
                Ok::<(), KernelError>(())
            })?;
            Ok(out)
        }
    }
}

/// Copies a `chunks_exact` piece into an array (the length always matches).
fn array<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(c);
    a
}

/// F16 → f32. From 2-byte-aligned little-endian input (mmap slices are), half's bulk slice
/// conversion (F16C when the CPU has it, ~8× the per-value path); otherwise per value.
fn decode_f16(src: &[u8], dst: &mut [f32]) {
    #[cfg(target_endian = "little")]
    if let Ok(halves) = bytemuck::try_cast_slice::<u8, f16>(src) {
        use half::slice::HalfFloatSliceExt;
        if dst.len() >= PARALLEL_MIN_ELEMENTS {
            halves
                .par_chunks(PARALLEL_CHUNK_ELEMENTS)
                .zip(dst.par_chunks_mut(PARALLEL_CHUNK_ELEMENTS))
                .for_each(|(h, d)| h.convert_to_f32_slice(d));
        } else {
            halves.convert_to_f32_slice(dst);
        }
        return;
    }
    decode::<2>(src, dst, |b| f16::from_le_bytes(b).to_f32())
}

fn decode<const N: usize>(src: &[u8], dst: &mut [f32], f: impl Fn([u8; N]) -> f32 + Sync) {
    let run = |s: &[u8], d: &mut [f32]| {
        for (c, y) in s.chunks_exact(N).zip(d) {
            *y = f(array(c));
        }
    };
    if dst.len() >= PARALLEL_MIN_ELEMENTS {
        src.par_chunks(PARALLEL_CHUNK_ELEMENTS * N)
            .zip(dst.par_chunks_mut(PARALLEL_CHUNK_ELEMENTS))
            .for_each(|(s, d)| run(s, d));
    } else {
        run(src, dst);
    }
}

fn encode<const N: usize>(
    ty: GgmlType,
    src: &[f32],
    dst: &mut Vec<u8>,
    f: impl Fn(f32) -> [u8; N] + Sync,
) -> Result<(), KernelError> {
    let bytes = src.len().checked_mul(N).ok_or(KernelError::TooLarge { ty, n_elements: src.len() })?;
    let start = dst.len();
    dst.resize(start + bytes, 0);
    let out = &mut dst[start..];
    let run = |s: &[f32], d: &mut [u8]| {
        for (x, c) in s.iter().zip(d.chunks_exact_mut(N)) {
            c.copy_from_slice(&f(*x));
        }
    };
    if src.len() >= PARALLEL_MIN_ELEMENTS {
        src.par_chunks(PARALLEL_CHUNK_ELEMENTS)
            .zip(out.par_chunks_mut(PARALLEL_CHUNK_ELEMENTS * N))
            .for_each(|(s, d)| run(s, d));
    } else {
        run(src, out);
    }
    Ok(())
}

fn transcode<const I: usize, const O: usize>(
    to: GgmlType,
    n: usize,
    src: &[u8],
    f: impl Fn([u8; I]) -> [u8; O] + Sync,
) -> Result<Vec<u8>, KernelError> {
    let bytes = n.checked_mul(O).ok_or(KernelError::TooLarge { ty: to, n_elements: n })?;
    let mut out = vec![0u8; bytes];
    let run = |s: &[u8], d: &mut [u8]| {
        for (c, o) in s.chunks_exact(I).zip(d.chunks_exact_mut(O)) {
            o.copy_from_slice(&f(array(c)));
        }
    };
    if n >= PARALLEL_MIN_ELEMENTS {
        src.par_chunks(PARALLEL_CHUNK_ELEMENTS * I)
            .zip(out.par_chunks_mut(PARALLEL_CHUNK_ELEMENTS * O))
            .for_each(|(s, d)| run(s, d));
    } else {
        run(src, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_errors_name_type_and_sizes() {
        let mut dst = [0f32; 3];
        assert_eq!(
            to_f32(GgmlType::F16, &[0; 5], &mut dst),
            Err(KernelError::ByteLength { ty: GgmlType::F16, n_elements: 3, expected: 6, found: 5 })
        );
        assert_eq!(
            convert_bytes(GgmlType::F32, GgmlType::F16, &[0; 7]),
            Err(KernelError::PartialBlock { ty: GgmlType::F32, found: 7, type_size: 4 })
        );
        let mut v = Vec::new();
        assert_eq!(
            from_f32(GgmlType::I32, &[0.0; 32], &mut v),
            Err(KernelError::Unsupported { ty: GgmlType::I32, op: "encode" })
        );
        assert_eq!(
            to_f32(GgmlType::Q1_0, &[0; 18], &mut [0f32; 128]),
            Err(KernelError::Unsupported { ty: GgmlType::Q1_0, op: "dequantize" })
        );
    }

    #[test]
    fn from_f32_appends() {
        let mut v = vec![9u8];
        from_f32(GgmlType::F16, &[1.0, -2.0], &mut v).unwrap();
        assert_eq!(v, [9, 0x00, 0x3C, 0x00, 0xC0]);
    }
}
