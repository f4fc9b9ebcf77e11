//! Scalar reference dot products: one weight row (GGUF bytes) · one activation row (bytes of
//! the weight type's `vec_dot_type`), with ggml's arithmetic structure (ggml-cpu `quants.c`
//! `ggml_vec_dot_*_generic`): an exact integer sum per block, then f32 scaling per block.
//!
//! The integer weights are NOT unpacked by hand here: each weight block is copied with its
//! f16 scale set to 1 and its minimum/`dmin` set to 0 and decoded by the crate's tested
//! dequantizer ([`crate::dequant`], itself judged against gguf-py), which yields exactly
//! `scale_j · q` (small integers, exact in f32); a second copy with `d = 0, dmin = 1` yields
//! `-m_j` per element. This keeps the reference independent of the SIMD unpacking code
//! it judges.

use super::act::BlockQ8_1;
use crate::dequant::{self, BlockQ8_0, BlockQ8_K};
use crate::{GgmlType, KernelError};
use half::{bf16, f16};

const F16_ONE: [u8; 2] = [0x00, 0x3C];
const F16_ZERO: [u8; 2] = [0x00, 0x00];

/// Where a weight block keeps its f16 scale and (optional) f16 minimum / dmin.
#[derive(Clone, Copy)]
pub(crate) struct ScaleOffsets {
    pub d: usize,
    pub m: Option<usize>,
}

/// Scale offsets of the supported block types (ggml `ggml-common.h` block layouts).
pub(crate) fn scale_offsets(ty: GgmlType) -> Option<ScaleOffsets> {
    use GgmlType::*;
    let (d, m) = match ty {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL => (0, None),
        Q4_1 | Q5_1 | Q4_K | Q5_K => (0, Some(2)),
        Q2_K => (80, Some(82)),
        Q3_K => (108, None),
        Q6_K => (208, None),
        _ => return None,
    };
    Some(ScaleOffsets { d, m })
}

fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_le_bytes([b[off], b[off + 1]]).to_f32()
}

/// Decodes `block` with its scales replaced: (`d`, `m`) bytes.
fn decode_patched(ty: GgmlType, block: &[u8], so: ScaleOffsets, d: [u8; 2], m: [u8; 2], out: &mut [f32]) {
    let mut b = block.to_vec();
    b[so.d..so.d + 2].copy_from_slice(&d);
    if let Some(mo) = so.m {
        b[mo..mo + 2].copy_from_slice(&m);
    }
    dequant::dequantize_reference(ty, &b, out).expect("one whole block of a supported type");
}

/// Checks `k` and both row lengths for `vec_dot_reference`.
pub(crate) fn check_row(w_ty: GgmlType, act_ty: GgmlType, w: &[u8], a: &[u8], k: usize) -> Result<(), KernelError> {
    KernelError::check_len(w_ty, k, w.len())?;
    KernelError::check_len(act_ty, k, a.len())
}

/// `dot(weight row, activation row)` for a weight of type `w_ty` and an activation row in
/// `vec_dot_type(w_ty)` bytes, both of `k` elements.
pub fn vec_dot_reference(w_ty: GgmlType, w: &[u8], a: &[u8], k: usize) -> Result<f32, KernelError> {
    let act_ty = super::vec_dot_type(w_ty)?;
    check_row(w_ty, act_ty, w, a, k)?;
    Ok(match act_ty {
        GgmlType::F32 => float_dot(w_ty, w, a, k),
        GgmlType::F16 | GgmlType::BF16 => float_dot(w_ty, w, a, k),
        GgmlType::Q8_0 => legacy_dot(w_ty, w, a, |blk| {
            let y: BlockQ8_0 = bytemuck::pod_read_unaligned(blk);
            (y.d.to_f32(), 0.0, y.qs)
        }),
        GgmlType::Q8_1 => legacy_dot(w_ty, w, a, |blk| {
            let y: BlockQ8_1 = bytemuck::pod_read_unaligned(blk);
            (y.d.to_f32(), y.s.to_f32(), y.qs)
        }),
        GgmlType::Q8_K if iq_multiplier(w_ty).is_some() => iq_dot(w_ty, w, a),
        GgmlType::Q8_K => k_dot(w_ty, w, a),
        _ => return Err(KernelError::Unsupported { ty: w_ty, op: "vec_dot" }),
    })
}

/// F32/F16/BF16: products of f32-decoded values (exact for F16·F16 and BF16·BF16) summed in
/// f64 (ggml `ggml_vec_dot_f16` generic accumulates in `ggml_float` = double).
fn float_dot(ty: GgmlType, w: &[u8], a: &[u8], k: usize) -> f32 {
    let dec = |b: &[u8], i: usize| -> f32 {
        match ty {
            GgmlType::F32 => f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]),
            GgmlType::F16 => f16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f32(),
            _ => bf16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f32(),
        }
    };
    (0..k).map(|i| (dec(w, i) * dec(a, i)) as f64).sum::<f64>() as f32
}

/// 32-element weight blocks · Q8_0/Q8_1 blocks: Σ_blocks (dx·dy)·sumi + mx·sy.
fn legacy_dot(ty: GgmlType, w: &[u8], a: &[u8], act: impl Fn(&[u8]) -> (f32, f32, [i8; 32])) -> f32 {
    let so = scale_offsets(ty).expect("legacy type");
    let act_size = if so.m.is_some() { 36 } else { 34 };
    let mut wi = [0f32; 32];
    let mut sumf = 0f32;
    for (wb, ab) in w.chunks_exact(ty.type_size()).zip(a.chunks_exact(act_size)) {
        decode_patched(ty, wb, so, F16_ONE, F16_ZERO, &mut wi);
        let (dy, sy, qy) = act(ab);
        let sumi: i32 = wi.iter().zip(qy).map(|(&x, y)| x as i32 * y as i32).sum();
        let dx = f16_at(wb, so.d);
        sumf += (dx * dy) * sumi as f32;
        if let Some(mo) = so.m {
            sumf += f16_at(wb, mo) * sy;
        }
    }
    sumf
}

/// 256-element K-quant blocks · Q8_K blocks: Σ (y.d·d)·Σ sc·q·y − (y.d·dmin)·Σ m·bsums.
fn k_dot(ty: GgmlType, w: &[u8], a: &[u8]) -> f32 {
    let so = scale_offsets(ty).expect("k type");
    let mut wi = [0f32; 256];
    let mut mi = [0f32; 256];
    let mut sumf = 0f32;
    for (wb, ab) in w.chunks_exact(ty.type_size()).zip(a.chunks_exact(std::mem::size_of::<BlockQ8_K>())) {
        let y: BlockQ8_K = bytemuck::pod_read_unaligned(ab);
        decode_patched(ty, wb, so, F16_ONE, F16_ZERO, &mut wi);
        let sumi: i32 = wi.iter().zip(y.qs).map(|(&x, q)| x as i32 * q as i32).sum();
        let dall = y.d * f16_at(wb, so.d);
        sumf += dall * sumi as f32;
        if let Some(mo) = so.m {
            decode_patched(ty, wb, so, F16_ZERO, F16_ONE, &mut mi);
            // mi = -m_j per element; Σ m_j·q equals ggml's Σ_j m_j·bsums_j.
            let summ: i32 = -mi.iter().zip(y.qs).map(|(&x, q)| x as i32 * q as i32).sum::<i32>();
            sumf -= y.d * f16_at(wb, mo) * summ as f32;
        }
    }
    sumf
}

/// For the 256-block i-quants: the power of two `m` such that a block decoded with super-scale
/// 1 is (integer group scale × integer weight) / m (`dequant/iq*.rs`: IQ2_* `(0.5 + s)·0.25·grid`
/// = (2s + 1)·grid / 8; IQ3_XXS `(0.5 + s)·0.5·grid` = (2s + 1)·grid / 4; IQ1_* `(2s + 1)·(grid
/// ± 1/8)` = (2s + 1)·(8·grid ± 1) / 8; IQ3_S `(1 + 2s)·grid` and IQ4_XS `ls·kvalue`: 1).
fn iq_multiplier(ty: GgmlType) -> Option<f32> {
    use GgmlType::*;
    match ty {
        IQ2_XXS | IQ2_XS | IQ2_S | IQ1_S | IQ1_M => Some(8.0),
        IQ3_XXS => Some(4.0),
        IQ3_S | IQ4_XS => Some(1.0),
        _ => None,
    }
}

/// Sets an i-quant block's f16 super-scale to `bits` and returns the old value as f32. IQ1_M
/// keeps it in the top nibbles of its four u16 scales (ggml `iq1m_scale_t`: nibble k of the
/// f16 in the top nibble of `scales[k]`, bytes 48..56 of the block); the others in bytes 0..2.
fn swap_super_scale(ty: GgmlType, b: &mut [u8], bits: u16) -> f32 {
    if ty != GgmlType::IQ1_M {
        let old = f16_at(b, 0);
        b[..2].copy_from_slice(&bits.to_le_bytes());
        return old;
    }
    let mut old = 0u16;
    for k in 0..4 {
        let hi = &mut b[48 + 2 * k + 1];
        old |= ((*hi >> 4) as u16) << (4 * k);
        *hi = (*hi & 0x0F) | ((((bits >> (4 * k)) & 0x0F) as u8) << 4);
    }
    f16::from_bits(old).to_f32()
}

/// i-quant blocks · Q8_K blocks: Σ (d·y.d)·Σ ls·q·y, times 1/m (ggml applies the constant to
/// the whole sum, e.g. `*s = 0.125f * sumf` for IQ2_XXS). The integer weights come from the
/// dequantizer with the super-scale set to 1, times `m` (exact: small dyadic values).
fn iq_dot(ty: GgmlType, w: &[u8], a: &[u8]) -> f32 {
    let m = iq_multiplier(ty).expect("i-quant");
    let mut wi = [0f32; 256];
    let mut sumf = 0f32;
    for (wb, ab) in w.chunks_exact(ty.type_size()).zip(a.chunks_exact(std::mem::size_of::<BlockQ8_K>())) {
        let y: BlockQ8_K = bytemuck::pod_read_unaligned(ab);
        let mut b = wb.to_vec();
        let d = swap_super_scale(ty, &mut b, 0x3C00);
        dequant::dequantize_reference(ty, &b, &mut wi).expect("one whole block of a supported type");
        let sumi: i32 = wi
            .iter()
            .zip(y.qs)
            .map(|(&x, q)| {
                let v = x * m;
                assert_eq!(v.fract(), 0.0, "{ty}: decoded weight {x} times {m} is not an integer");
                v as i32 * q as i32
            })
            .sum();
        sumf += (d * y.d) * sumi as f32;
    }
    sumf / m
}
