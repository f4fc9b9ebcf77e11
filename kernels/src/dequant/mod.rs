//! Block dequantization: GGML bytes → f32.
//!
//! Each block format lives in its own module as a `#[repr(C)]` struct whose size is
//! asserted at compile time against ggml's `sizeof(block_*)` (`ggml-common.h`). The
//! per-block `dequantize` of each format is the scalar reference and the specification
//! (ggml `ggml-quants.c` `dequantize_row_*`); the parallel path splits the input into
//! chunks of whole blocks and runs that same per-block function on each chunk, so its
//! output is bit-identical by construction (and tested so on odd block counts).
//!
//! Input slices may be unaligned (a GGUF tensor's data in an mmap is only guaranteed to
//! be 32-byte aligned relative to the data section, and callers may hand us sub-slices):
//! aligned input is cast with `bytemuck` in place, unaligned input is read block by block
//! with `bytemuck::pod_read_unaligned` (an 18–34 byte copy).

mod q4_0;
mod q4_1;
mod q5_0;
mod q5_1;
mod q8_0;

pub use q4_0::BlockQ4_0;
pub use q4_1::BlockQ4_1;
pub use q5_0::BlockQ5_0;
pub use q5_1::BlockQ5_1;
pub use q8_0::BlockQ8_0;

use crate::{convert, GgmlType, KernelError};
use rayon::prelude::*;

/// A GGML quantization block: a fixed number of elements stored in `size_of::<Self>()` bytes.
pub trait QuantBlock: bytemuck::Pod + Send + Sync {
    /// The GGML type this block encodes.
    const TYPE: GgmlType;
    /// Elements per block (`QK*` in ggml).
    const BLOCK_SIZE: usize;
    /// Writes the block's `BLOCK_SIZE` values into `out` (`out.len() == BLOCK_SIZE`).
    fn dequantize(&self, out: &mut [f32]);
}

/// Inputs of at least this many blocks are dequantized in parallel.
pub const PARALLEL_MIN_BLOCKS: usize = 4096;
/// Blocks per rayon task on the parallel path (32 Ki elements for 32-element blocks).
pub const PARALLEL_CHUNK_BLOCKS: usize = 1024;

/// Dequantizes `src` (GGML bytes of type `ty`) into `dst`; `dst.len()` is the element count.
///
/// Supports Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0, plus every plain type `convert::to_f32` decodes (a
/// passthrough). Large inputs run in parallel with output identical to the scalar path.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    let n_blocks = dst.len() / ty.block_size().max(1);
    let chunk = if n_blocks >= PARALLEL_MIN_BLOCKS { Some(PARALLEL_CHUNK_BLOCKS) } else { None };
    dispatch(ty, src, dst, chunk)
}

/// The scalar reference: one block after another on this thread.
pub fn dequantize_reference(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    dispatch(ty, src, dst, None)
}

/// The parallel path with an explicit chunk size in blocks (exposed for tests and tuning).
pub fn dequantize_parallel(ty: GgmlType, src: &[u8], dst: &mut [f32], chunk_blocks: usize) -> Result<(), KernelError> {
    dispatch(ty, src, dst, Some(chunk_blocks.max(1)))
}

/// True for the block types this module decodes.
pub fn has_block_codec(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0)
}

fn dispatch(ty: GgmlType, src: &[u8], dst: &mut [f32], chunk: Option<usize>) -> Result<(), KernelError> {
    match ty {
        GgmlType::Q4_0 => run::<BlockQ4_0>(src, dst, chunk),
        GgmlType::Q4_1 => run::<BlockQ4_1>(src, dst, chunk),
        GgmlType::Q5_0 => run::<BlockQ5_0>(src, dst, chunk),
        GgmlType::Q5_1 => run::<BlockQ5_1>(src, dst, chunk),
        GgmlType::Q8_0 => run::<BlockQ8_0>(src, dst, chunk),
        _ if !ty.is_quantized() => convert::to_f32(ty, src, dst),
        _ => Err(KernelError::Unsupported { ty, op: "dequantize" }),
    }
}

fn run<B: QuantBlock>(src: &[u8], dst: &mut [f32], chunk: Option<usize>) -> Result<(), KernelError> {
    KernelError::check_len(B::TYPE, dst.len(), src.len())?;
    match chunk {
        None => dequantize_blocks::<B>(src, dst),
        Some(chunk) => {
            let bytes = chunk * std::mem::size_of::<B>();
            let elems = chunk * B::BLOCK_SIZE;
            src.par_chunks(bytes).zip(dst.par_chunks_mut(elems)).for_each(|(s, d)| dequantize_blocks::<B>(s, d));
        }
    }
    Ok(())
}

/// Sequential loop over whole blocks; lengths were checked by the caller.
fn dequantize_blocks<B: QuantBlock>(src: &[u8], dst: &mut [f32]) {
    let outs = dst.chunks_exact_mut(B::BLOCK_SIZE);
    match bytemuck::try_cast_slice::<u8, B>(src) {
        Ok(blocks) => blocks.iter().zip(outs).for_each(|(b, out)| b.dequantize(out)),
        Err(_) => src
            .chunks_exact(std::mem::size_of::<B>())
            .zip(outs)
            .for_each(|(bytes, out)| bytemuck::pod_read_unaligned::<B>(bytes).dequantize(out)),
    }
}
