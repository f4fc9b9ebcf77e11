//! Blocks the GPU is never given. Vulkan lets a driver assume that no value is NaN or
//! infinite, flush denormals to zero and ignore the sign of zero (Vulkan spec, "Precision and
//! Operation of SPIR-V Instructions"); NVIDIA does all of these. So the host finds, before
//! dispatch, every block whose computation could meet such a value and computes it with the
//! CPU reference instead, patching it into the GPU output. The scan is one read of the input
//! (rayon over chunks); on ordinary tensors it selects no block at all.
//!
//! Quantize: a block is special when any element is non-finite, or `|x| > QUANT_MAX`, or
//! `0 < |x| < QUANT_TINY`, or one of its sub-blocks (the unit with its own scale: 16 values
//! for Q6_K, 32 otherwise) has `0 < amax < SUB_AMAX_MIN`. Why these bounds suffice (every
//! intermediate of every format stays finite and, unless exactly zero, normal):
//! - largest intermediates: Q6_K's `sumlx * sumlx` with `sumlx = Σ x³·l` over 16 values,
//!   |l| ≤ 32: (16 · 2^48 · 2^5)² = 2^114 at |x| ≤ 2^16; Q4_K's `sum_w * sum_xl`
//!   (≤ 2^6·2^16 · 2^5·2^17·2^4·2^16 = 2^64); the f16 scales (Q4_K `max_scale / 63`,
//!   Q6_K `max_scale / -128`, legacy `amax / 127` ...) stay below 65504, so their f16
//!   conversion is never infinite (and is done in integer arithmetic anyway);
//! - smallest: products of up to three inputs ≥ 2^-72 (Q6_K `x³·l`, `x·x`, K-quant
//!   weights · x), differences of two inputs/scales are 0 or ≥ ulp(2^-24) = 2^-47, squared
//!   ≥ 2^-94, times a Q4_K weight (≥ av_x ≥ amax/√32 ≥ 2^-19) ≥ 2^-113; Q6_K's
//!   `sumlx²` ≥ (amax³)² ≥ 2^-96 with amax ≥ SUB_AMAX_MIN; all sums add terms of one sign
//!   or are compared against such normal values. f32 normals start at 2^-126.
//!   (The least-squares candidates of Q4_K, `this_scale` and `this_min`, are quotients of
//!   differences of such sums; they too stay far from 2^-126 unless a block spans nearly the
//!   whole 2^-24..2^16 range, where a flushed subnormal would still only change an error
//!   sum by less than half an ulp of its other terms.)
//!
//! Dequantize: a block is special when one of its f16 scale fields (d, and m / dmin where
//! the format has one) is infinite or NaN: the CPU result then carries the exact NaN payloads
//! and infinities, which a GPU need not reproduce. Subnormal f16 scales are fine: the shaders
//! convert them exactly in integer arithmetic and every product stays ≥ 2^-24, normal.

use super::GpuError;
use crate::dequant::dequantize_reference;
use crate::quant::quantize_reference;
use crate::GgmlType;
use rayon::prelude::*;

/// Largest input magnitude the GPU quantizes (2^16).
pub(crate) const QUANT_MAX: f32 = 65536.0;
/// Smallest nonzero input magnitude the GPU quantizes (2^-24).
pub(crate) const QUANT_TINY: f32 = 1.0 / 16_777_216.0;
/// Smallest nonzero sub-block absmax the GPU quantizes (2^-16).
pub(crate) const SUB_AMAX_MIN: f32 = 1.0 / 65536.0;

/// Blocks per rayon task of the scans.
const SCAN_CHUNK: usize = 4096;

/// Values per sub-block with its own scale.
fn sub_block(ty: GgmlType) -> usize {
    if ty == GgmlType::Q6_K {
        16
    } else {
        32
    }
}

/// True when the GPU must not quantize this block (see the module notes).
pub(crate) fn quant_block_is_special(ty: GgmlType, block: &[f32]) -> bool {
    block.chunks(sub_block(ty)).any(|sub| {
        let mut amax = 0.0f32;
        for &x in sub {
            let a = x.abs();
            if !a.is_finite() || a > QUANT_MAX || (a != 0.0 && a < QUANT_TINY) {
                return true;
            }
            amax = amax.max(a);
        }
        amax != 0.0 && amax < SUB_AMAX_MIN
    })
}

/// Byte offsets of the f16 scale fields in one block of `ty`.
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[0],
    }
}

/// True when the GPU must not dequantize this block: an f16 scale is infinite or NaN.
pub(crate) fn dequant_block_is_special(ty: GgmlType, block: &[u8]) -> bool {
    scale_fields(ty).iter().any(|&o| {
        let h = u16::from_le_bytes([block[o], block[o + 1]]);
        h & 0x7c00 == 0x7c00
    })
}

/// Indices of the special blocks among `n` blocks of `unit` items of `items`.
fn scan<T: Sync>(items: &[T], unit: usize, special: impl Fn(&[T]) -> bool + Sync) -> Vec<usize> {
    items
        .par_chunks(unit * SCAN_CHUNK)
        .enumerate()
        .flat_map_iter(|(c, chunk)| {
            let special = &special;
            chunk.chunks_exact(unit).enumerate().filter(move |(_, b)| special(b)).map(move |(i, _)| c * SCAN_CHUNK + i)
        })
        .collect()
}

/// Indices of the blocks of `src` (whole `ty` blocks of f32) the GPU must not quantize.
pub fn quantize_cpu_blocks(ty: GgmlType, src: &[f32]) -> Vec<usize> {
    scan(src, ty.block_size(), |b| quant_block_is_special(ty, b))
}

/// Indices of the blocks of `src` (whole `ty` blocks) the GPU must not dequantize.
pub fn dequantize_cpu_blocks(ty: GgmlType, src: &[u8]) -> Vec<usize> {
    scan(src, ty.type_size(), |b| dequant_block_is_special(ty, b))
}

/// Overwrites blocks `idx` of `out` (quantized bytes) with the CPU reference of `src`.
pub(crate) fn patch_quantize(ty: GgmlType, src: &[f32], idx: &[usize], out: &mut [u8]) -> Result<(), GpuError> {
    let (bs, ts) = (ty.block_size(), ty.type_size());
    let mut buf = Vec::with_capacity(ts);
    for &i in idx {
        buf.clear();
        quantize_reference(ty, &src[i * bs..(i + 1) * bs], &mut buf).map_err(|e| GpuError::Reference {
            ty,
            op: "quantize",
            block: i,
            message: e.to_string(),
        })?;
        out[i * ts..(i + 1) * ts].copy_from_slice(&buf);
    }
    Ok(())
}

/// Overwrites blocks `idx` of `out` (f32) with the CPU reference dequantization of `src`.
pub(crate) fn patch_dequantize(ty: GgmlType, src: &[u8], idx: &[usize], out: &mut [f32]) -> Result<(), GpuError> {
    let (bs, ts) = (ty.block_size(), ty.type_size());
    for &i in idx {
        dequantize_reference(ty, &src[i * ts..(i + 1) * ts], &mut out[i * bs..(i + 1) * bs])
            .map_err(|e| GpuError::Reference { ty, op: "dequantize", block: i, message: e.to_string() })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quant_rules() {
        let ty = GgmlType::Q4_0;
        let ok = vec![0.5f32; 32];
        assert!(!quant_block_is_special(ty, &ok));
        assert!(!quant_block_is_special(ty, &[0.0f32; 32]));
        for bad in [f32::NAN, f32::INFINITY, -f32::INFINITY, 70000.0, -1e-9, 1e-30] {
            let mut b = ok.clone();
            b[7] = bad;
            assert!(quant_block_is_special(ty, &b), "{bad}");
        }
        let mut small = vec![0.0f32; 32];
        small[3] = 1e-5;
        assert!(quant_block_is_special(ty, &small));
        // Q6_K judges each 16-value sub-block on its own.
        let mut q6 = vec![0.5f32; 256];
        q6[16..32].fill(0.0);
        q6[20] = 1e-5;
        assert!(quant_block_is_special(GgmlType::Q6_K, &q6));
        q6[20] = 1e-3;
        assert!(!quant_block_is_special(GgmlType::Q6_K, &q6));
    }

    #[test]
    fn scan_finds_indices_across_chunks() {
        let ty = GgmlType::Q8_0;
        let n = SCAN_CHUNK * 2 + 5;
        let mut x = vec![1.0f32; n * 32];
        for &b in &[0usize, SCAN_CHUNK - 1, SCAN_CHUNK, n - 1] {
            x[b * 32 + 5] = f32::NAN;
        }
        assert_eq!(quantize_cpu_blocks(ty, &x), vec![0, SCAN_CHUNK - 1, SCAN_CHUNK, n - 1]);
    }

    #[test]
    fn dequant_rules() {
        let mut b = vec![0u8; 210];
        assert!(!dequant_block_is_special(GgmlType::Q6_K, &b));
        b[208..210].copy_from_slice(&0x7c00u16.to_le_bytes());
        assert!(dequant_block_is_special(GgmlType::Q6_K, &b));
        let mut q41 = vec![0u8; 20];
        q41[2..4].copy_from_slice(&0xfe01u16.to_le_bytes());
        assert!(dequant_block_is_special(GgmlType::Q4_1, &q41));
        q41[2..4].copy_from_slice(&0x0001u16.to_le_bytes());
        assert!(!dequant_block_is_special(GgmlType::Q4_1, &q41));
    }
}
