//! bitsandbytes dequantization (the formats of `*-bnb-4bit` / `load_in_8bit` checkpoints):
//! scalar references, which are the specification.
//!
//! Facts from bitsandbytes 0.50 (`functional.py`: `get_4bit_type`, `dequantize_4bit`,
//! `dequantize_blockwise`, `int8_vectorwise_dequant`; `backends/default/ops.py`:
//! `_dequantize_4bit_compute`, `_dequantize_blockwise_compute`; `_ops.py`: the int8 dequant):
//!
//! - **4-bit** (NF4, FP4): element `i` of the flattened tensor is the 4-bit code in byte
//!   `i / 2`, high nibble for even `i`; value = `table[code] · absmax[i / blocksize]` in f32
//!   (the last block may be partial), then rounded to the quant state's dtype. The table is
//!   fixed by the quant type (the kernels ignore the stored `quant_map`).
//! - **Nested absmax** (double quantization, `bnb_4bit_use_double_quant`): the per-block
//!   absmax is itself 8-bit blockwise-quantized: `absmax[j] = code8[q[j]] · absmax2[j /
//!   nested_blocksize] + offset` in f32, with the stored 256-entry code (the "dynamic" map).
//! - **LLM.int8** rows: `w[r][c] = (q[r][c] · SCB[r]) · (1/127 as f32)`: bitsandbytes
//!   multiplies by the reciprocal 7.874015718698502e-3, not divides by 127.

use crate::{GgmlType, KernelError};

/// The NF4 code, `get_4bit_type("nf4")`: quantiles of N(0, 1), already in [-1, 1].
// bitsandbytes' literals verbatim (each the repr of an f32 as a double), so they can be
// checked against functional.py by eye.
#[allow(clippy::excessive_precision)]
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];

/// The FP4 code, `get_4bit_type("fp4")`: 1 sign, 2 exponent, 1 mantissa bit, listed in
/// bit-pattern order, then divided (in f32, as `data.div_(data.abs().max())` does) by 12.
pub const FP4_CODE: [f32; 16] = {
    const RAW: [f32; 16] =
        [0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0];
    let mut out = [0.0f32; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = RAW[i] / 12.0;
        i += 1;
    }
    out
};

/// The two 4-bit data types of bitsandbytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bnb4Type {
    Nf4,
    Fp4,
}

impl Bnb4Type {
    /// From the `quant_type` string of a quant state (`"nf4"`, `"fp4"`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "nf4" => Some(Bnb4Type::Nf4),
            "fp4" => Some(Bnb4Type::Fp4),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Bnb4Type::Nf4 => "nf4",
            Bnb4Type::Fp4 => "fp4",
        }
    }

    pub fn code(self) -> &'static [f32; 16] {
        match self {
            Bnb4Type::Nf4 => &NF4_CODE,
            Bnb4Type::Fp4 => &FP4_CODE,
        }
    }
}

/// Number of blocks of `blocksize` covering `n` elements (the last may be partial).
pub fn bnb_blocks(n: usize, blocksize: usize) -> usize {
    n.div_ceil(blocksize.max(1))
}

fn check(what: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
    if expected != found {
        return Err(KernelError::BnbLength { what, expected, found });
    }
    Ok(())
}

/// 4-bit dequantization of `out.len()` elements: `packed` holds `ceil(n / 2)` bytes,
/// `absmax` one f32 per block of `blocksize`.
pub fn dequantize_bnb_4bit(
    ty: Bnb4Type,
    packed: &[u8],
    absmax: &[f32],
    blocksize: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let n = out.len();
    if blocksize == 0 {
        return Err(KernelError::BnbLength { what: "blocksize", expected: 1, found: 0 });
    }
    check("packed 4-bit bytes", n.div_ceil(2), packed.len())?;
    check("absmax values", bnb_blocks(n, blocksize), absmax.len())?;
    let code = ty.code();
    for (block, (chunk, &scale)) in out.chunks_mut(blocksize).zip(absmax).enumerate() {
        let start = block * blocksize;
        for (k, y) in chunk.iter_mut().enumerate() {
            let i = start + k;
            let byte = packed[i / 2];
            let q = if i.is_multiple_of(2) { byte >> 4 } else { byte & 0x0F };
            *y = code[q as usize] * scale;
        }
    }
    Ok(())
}

/// 8-bit blockwise dequantization plus an offset, as for a nested (double-quantized) absmax:
/// `out[j] = code[q[j]] · absmax[j / blocksize] + offset`, rounded to f32 at each step.
pub fn dequantize_bnb_blockwise(
    q: &[u8],
    code: &[f32],
    absmax: &[f32],
    blocksize: usize,
    offset: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    if blocksize == 0 {
        return Err(KernelError::BnbLength { what: "blocksize", expected: 1, found: 0 });
    }
    check("8-bit code entries", 256, code.len())?;
    check("8-bit values", out.len(), q.len())?;
    check("nested absmax values", bnb_blocks(q.len(), blocksize), absmax.len())?;
    for ((qs, ys), &scale) in q.chunks(blocksize).zip(out.chunks_mut(blocksize)).zip(absmax) {
        for (&v, y) in qs.iter().zip(ys) {
            *y = code[v as usize] * scale + offset;
        }
    }
    Ok(())
}

/// LLM.int8 row-wise dequantization: `q` is a row-major int8 matrix of `scb.len()` rows of
/// `out.len() / scb.len()` columns.
pub fn dequantize_bnb_int8(q: &[u8], scb: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    check("int8 values", out.len(), q.len())?;
    let rows = scb.len();
    if rows == 0 {
        return check("int8 values", 0, q.len());
    }
    if !q.len().is_multiple_of(rows) {
        return Err(KernelError::RaggedBlocks { ty: GgmlType::I8, n_elements: q.len(), block_size: rows });
    }
    let cols = q.len() / rows;
    if cols == 0 {
        return Ok(());
    }
    // bitsandbytes `int8_vectorwise_dequant`: A * stats.view(-1, 1) * 7.874015718698502e-3,
    // in f32 (the Python scalar is applied as f32).
    const RECIP_127: f32 = 7.874_015_718_698_502e-3_f64 as f32;
    for ((qs, ys), &s) in q.chunks_exact(cols).zip(out.chunks_exact_mut(cols)).zip(scb) {
        for (&v, y) in qs.iter().zip(ys) {
            *y = (v as i8 as f32 * s) * RECIP_127;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp4_code_is_the_bit_pattern_table_over_12() {
        assert_eq!(FP4_CODE[3], 1.0);
        assert_eq!(FP4_CODE[11], -1.0);
        assert_eq!(FP4_CODE[2], 8.0f32 / 12.0);
        assert_eq!(FP4_CODE[1], 0.0625f32 / 12.0);
        assert!(FP4_CODE[8] == 0.0 && FP4_CODE[8].is_sign_negative());
    }

    #[test]
    fn nf4_code_is_sorted_in_unit_range() {
        assert!(NF4_CODE.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((NF4_CODE[0], NF4_CODE[7], NF4_CODE[15]), (-1.0, 0.0, 1.0));
    }

    #[test]
    fn four_bit_high_nibble_first_and_partial_last_block() {
        // 5 elements, blocksize 4: two blocks, the second holds one element.
        let packed = [0xF0, 0x7F, 0x30];
        let absmax = [2.0, 0.5];
        let mut out = [0.0; 5];
        dequantize_bnb_4bit(Bnb4Type::Nf4, &packed, &absmax, 4, &mut out).unwrap();
        assert_eq!(out, [2.0, -2.0, 0.0, 2.0, NF4_CODE[3] * 0.5]);
        let mut fp = [0.0; 2];
        dequantize_bnb_4bit(Bnb4Type::Fp4, &[0x3B], &[3.0], 64, &mut fp).unwrap();
        assert_eq!(fp, [3.0, -3.0]);
    }

    #[test]
    fn four_bit_length_errors() {
        let mut out = [0.0; 5];
        let e = dequantize_bnb_4bit(Bnb4Type::Nf4, &[0; 2], &[1.0; 2], 4, &mut out).unwrap_err();
        assert_eq!(e, KernelError::BnbLength { what: "packed 4-bit bytes", expected: 3, found: 2 });
        let e = dequantize_bnb_4bit(Bnb4Type::Nf4, &[0; 3], &[1.0; 1], 4, &mut out).unwrap_err();
        assert_eq!(e, KernelError::BnbLength { what: "absmax values", expected: 2, found: 1 });
    }

    #[test]
    fn nested_absmax_adds_the_offset() {
        let mut code = [0.0f32; 256];
        code[1] = 0.5;
        code[255] = 1.0;
        let mut out = [0.0; 3];
        dequantize_bnb_blockwise(&[1, 255, 1], &code, &[2.0, 4.0], 2, 0.25, &mut out).unwrap();
        assert_eq!(out, [1.25, 2.25, 2.25]);
    }

    #[test]
    fn int8_rows_scale_by_scb_over_127() {
        let q = [127u8, 0x81, 1, 0]; // 127, -127, 1, 0
        let mut out = [0.0; 4];
        dequantize_bnb_int8(&q, &[1.0, 2.0], &mut out).unwrap();
        let r = 7.874_015_718_698_502e-3_f64 as f32;
        assert_eq!(out, [127.0 * r, -127.0 * r, 2.0 * r, 0.0]);
    }
}
