//! Matrix products for the inference core with the weights in their stored GGML type.
//!
//! Scheme (ggml-cpu `ggml_compute_forward_mul_mat`): activations are converted ONCE per matmul
//! to the weight type's `vec_dot_type` (ggml `type_traits_cpu`; Q4_0 → Q8_0, Q4_1 → Q8_1,
//! K-quants → Q8_K, F16 → F16, …) with the quantizers ggml runs on x86 AVX2 ([`act`]), then
//! every output is a dot product of a weight row with an activation row.
//!
//! - [`vec_dot_reference`]: the scalar reference of one such dot product ([`reference`]).
//! - [`matmul`]: the fast path; see [`matmul`] for the tiling and the SIMD kernels.
//! - [`gemm_f32`]: plain f32 products (attention), `matrixmultiply` sgemm split with rayon.

mod act;
mod driver;
mod float;
mod kernel;
mod reference;
mod unpack;

pub use act::BlockQ8_1;
pub use driver::Isa;
pub use float::{gemm_f32, Trans};
pub use reference::vec_dot_reference;

use crate::dequant::{BlockQ8_0, BlockQ8_K};
use crate::{convert, quant, GgmlType, KernelError};
use rayon::prelude::*;

/// Activation type ggml pairs with a weight type (ggml-cpu `type_traits_cpu[w].vec_dot_type`).
pub fn vec_dot_type(w: GgmlType) -> Result<GgmlType, KernelError> {
    use GgmlType::*;
    Ok(match w {
        F32 => F32,
        F16 => F16,
        BF16 => BF16,
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => Q8_K,
        _ => return Err(KernelError::Unsupported { ty: w, op: "matmul" }),
    })
}

/// Activation rows in their converted form.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ActData {
    F32(Vec<f32>),
    /// F16 or BF16 bits.
    Half(Vec<u16>),
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
    Q8_K(Vec<BlockQ8_K>),
}

/// Activations (`rows` rows of `k` f32), converted once to the `vec_dot_type` of a weight type.
#[derive(Debug, Clone, PartialEq)]
pub struct Activations {
    /// The stored type (a `vec_dot_type`).
    pub ty: GgmlType,
    /// Elements per row.
    pub k: usize,
    /// Number of rows (tokens).
    pub rows: usize,
    data: ActData,
}

impl Activations {
    /// All rows as GGML bytes of `self.ty` (row `t` at `t * row_bytes`).
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            ActData::F32(v) => bytemuck::cast_slice(v),
            ActData::Half(v) => bytemuck::cast_slice(v),
            ActData::Q8_0(v) => bytemuck::cast_slice(v),
            ActData::Q8_1(v) => bytemuck::cast_slice(v),
            ActData::Q8_K(v) => bytemuck::cast_slice(v),
        }
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.k / self.ty.block_size() * self.ty.type_size()
    }

    /// Row `t` as GGML bytes of `self.ty`.
    pub fn row(&self, t: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.bytes()[t * rb..(t + 1) * rb]
    }
}

/// Converts `x` (rows of `k` f32) to the `vec_dot_type` of weight type `w_ty`.
pub fn prepare_activations(w_ty: GgmlType, x: &[f32], k: usize) -> Result<Activations, KernelError> {
    let ty = vec_dot_type(w_ty)?;
    let bs = w_ty.block_size();
    if k == 0 || !k.is_multiple_of(bs) {
        return Err(KernelError::RaggedBlocks { ty: w_ty, n_elements: k, block_size: bs });
    }
    if !x.len().is_multiple_of(k) {
        // The f32 input is not whole rows of k.
        return Err(KernelError::RaggedBlocks { ty: GgmlType::F32, n_elements: x.len(), block_size: k });
    }
    let rows = x.len() / k;
    let data = match ty {
        GgmlType::F32 => ActData::F32(x.to_vec()),
        GgmlType::F16 | GgmlType::BF16 => {
            let mut b = Vec::with_capacity(x.len() * 2);
            convert::from_f32(ty, x, &mut b)?;
            ActData::Half(b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
        }
        GgmlType::Q8_0 => {
            let mut v = Vec::with_capacity(x.len() / 32);
            act::quantize_row_q8_0(x, &mut v);
            ActData::Q8_0(v)
        }
        GgmlType::Q8_1 => {
            let mut v = Vec::with_capacity(x.len() / 32);
            act::quantize_row_q8_1(x, &mut v);
            ActData::Q8_1(v)
        }
        GgmlType::Q8_K => {
            // ggml x86 `quantize_row_q8_K` is `quantize_row_q8_K_ref`: the crate's quantizer.
            let mut b = Vec::with_capacity(x.len() / 256 * 292);
            quant::quantize(GgmlType::Q8_K, x, &mut b)?;
            ActData::Q8_K(b.chunks_exact(292).map(bytemuck::pod_read_unaligned).collect())
        }
        _ => unreachable!("vec_dot_type returns only the types above"),
    };
    Ok(Activations { ty, k, rows, data })
}

/// Weights: `rows` rows of `k` elements in GGUF layout (ne = [k, rows]), type `ty`, raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct WeightView<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub k: usize,
    pub bytes: &'a [u8],
}

impl WeightView<'_> {
    fn row_bytes(&self) -> usize {
        self.k / self.ty.block_size() * self.ty.type_size()
    }

    fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.bytes[r * rb..(r + 1) * rb]
    }
}

/// Checks the weight bytes, the activation type/shape and the output length.
fn check_shapes(w: &WeightView, x: &Activations, out_len: usize) -> Result<(), KernelError> {
    let act_ty = vec_dot_type(w.ty)?;
    let n_elements = w.rows.checked_mul(w.k).ok_or(KernelError::TooLarge { ty: w.ty, n_elements: usize::MAX })?;
    if w.k == 0 {
        return Err(KernelError::RaggedBlocks { ty: w.ty, n_elements: 0, block_size: w.ty.block_size() });
    }
    KernelError::check_len(w.ty, n_elements, w.bytes.len())?;
    if x.ty != act_ty {
        return Err(KernelError::Unsupported { ty: x.ty, op: "matmul with activations of another vec_dot_type" });
    }
    if x.k != w.k {
        let expected = x.k / x.ty.block_size() * x.ty.type_size();
        return Err(KernelError::ByteLength {
            ty: x.ty,
            n_elements: w.k,
            expected: w.k / x.ty.block_size() * x.ty.type_size(),
            found: expected,
        });
    }
    let n_out =
        x.rows.checked_mul(w.rows).ok_or(KernelError::TooLarge { ty: GgmlType::F32, n_elements: usize::MAX })?;
    if out_len != n_out {
        return Err(KernelError::ByteLength {
            ty: GgmlType::F32,
            n_elements: n_out,
            expected: n_out * 4,
            found: out_len * 4,
        });
    }
    Ok(())
}

/// `out[t * w.rows + r] = dot(weight row r, activation row t)` (out: n_tokens × w.rows).
///
/// Quantized weights: tiles of weight rows are unpacked once to i8 + scales and multiplied
/// by every token (AVX2 `maddubs` integer kernels, 4 weight rows per activation load; scalar
/// fallback), rayon over row tiles. F32/F16/BF16 weights: see [`driver`]'s float path
/// (weight tiles widened to f32, `matrixmultiply` sgemm).
pub fn matmul(w: &WeightView, x: &Activations, out: &mut [f32]) -> Result<(), KernelError> {
    matmul_with(w, x, out, Isa::best())
}

/// [`matmul`] with an explicit instruction set (tests and benchmarks compare them); `Isa::Avx2`
/// on a CPU without AVX2/FMA is an `Unsupported` error.
pub fn matmul_with(w: &WeightView, x: &Activations, out: &mut [f32], isa: Isa) -> Result<(), KernelError> {
    check_shapes(w, x, out.len())?;
    if isa == Isa::Avx2 && !kernel::has_avx2() {
        return Err(KernelError::Unsupported { ty: w.ty, op: "matmul on AVX2 (this CPU lacks AVX2/FMA)" });
    }
    if out.is_empty() {
        return Ok(());
    }
    driver::run(w, x, out, isa);
    Ok(())
}

/// The reference product: [`vec_dot_reference`] for every (row, token) pair.
pub fn matmul_reference(w: &WeightView, x: &Activations, out: &mut [f32]) -> Result<(), KernelError> {
    check_shapes(w, x, out.len())?;
    if out.is_empty() {
        return Ok(());
    }
    out.par_chunks_mut(w.rows).enumerate().try_for_each(|(t, o)| {
        let a = x.row(t);
        for (r, v) in o.iter_mut().enumerate() {
            *v = vec_dot_reference(w.ty, w.row(r), a, w.k)?;
        }
        Ok(())
    })
}

/// Convenience: [`prepare_activations`] + [`matmul`]; `x` holds `n_tokens` rows of `w.k`.
pub fn matmul_f32(w: &WeightView, x: &[f32], n_tokens: usize, out: &mut [f32]) -> Result<(), KernelError> {
    let expected =
        n_tokens.checked_mul(w.k).ok_or(KernelError::TooLarge { ty: GgmlType::F32, n_elements: usize::MAX })?;
    if x.len() != expected {
        return Err(KernelError::ByteLength {
            ty: GgmlType::F32,
            n_elements: expected,
            expected: expected * 4,
            found: x.len() * 4,
        });
    }
    let acts = prepare_activations(w.ty, x, w.k)?;
    matmul(w, &acts, out)
}
