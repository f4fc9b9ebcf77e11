//! Matrix products for the inference core with the weights in their stored GGML type.
//!
//! Scheme (ggml-cpu `ggml_compute_forward_mul_mat`): activations are converted ONCE per matmul
//! to the weight type's `vec_dot_type` (ggml `type_traits_cpu`; Q4_0/Q5_0/Q8_0/IQ4_NL → Q8_0,
//! Q4_1/Q5_1 → Q8_1, Q2_K…Q6_K and the 256-block i-quants IQ1_S…IQ4_XS → Q8_K, F16 → F16,
//! BF16 → BF16, F32 → F32) with the quantizers
//! ggml runs on x86 AVX2 (`act.rs`: byte-identical, judged against llama.cpp's own
//! `from_float`), then every output is a dot product of a weight row with an activation row
//! whose integer part per block equals ggml's `vec_dot` exactly; only the f32 accumulation
//! order across blocks differs (relative effect ~1e-7).
//!
//! ggml's x86 repacked path (`repack.cpp`, Q4_0 → `q4_0_8x8` and Q4_K → `q4_K_8x8` when
//! rows % 8 == 0, AVX2) quantizes activations with `ggml_quantize_mat_q8_0_4x8` /
//! `_q8_K_4x8`, which compute the same scale (amax/127 and 127/amax) and the same
//! half-to-even rounding as `quantize_row_q8_0` / the Q8_K reference — the "mirror"
//! comments in ggml say so — and the same exact integer block sums: numerically it changes
//! only the f32 summation order, like our kernels.
//!
//! - [`vec_dot_reference`]: the scalar reference of one dot product (`reference.rs`; decodes
//!   the integer weights through the crate's dequantizers, independent of the fast path).
//! - [`matmul`]: the fast path (`driver.rs`): rayon over tiles of 16 weight rows; a tile is
//!   unpacked once (`unpack.rs`: i8/u8 weights + scales, in the layout of the instruction set
//!   that multiplies them) and multiplied by every token in register tiles of 4 weight rows ×
//!   2 tokens, the instruction set picked at run time ([`Isa::best`]): AVX-512 VNNI
//!   (`kernel_avx512.rs`: 64-byte `vpdpbusd` for every quantized type, the K-quants and
//!   i-quants through a by-group layout), else AVX2 (`kernel.rs`: `maddubs`/`madd`, or AVX-VNNI
//!   `vpdpbusd` for the 32-blocks), else the scalar kernel. F32/F16/BF16 weights: with AVX-512,
//!   packing-free register tiles on the stored weights (`float_avx512.rs`: 4 rows × 6 tokens,
//!   widened in registers); otherwise tiles widened to f32 (F16C) and `matrixmultiply` sgemm,
//!   dot products below 4 tokens.
//! - [`gemm_f32`]: plain f32 products, `matrixmultiply` sgemm split with rayon (attention has
//!   its own fused kernel, `crate::attention`).
//!   Chosen over the `gemm` crate: on this machine (2 threads, 576×576·576×512) the issue
//!   measured `matrixmultiply` ≈ 124 GFLOP/s against `gemm` ≈ 107.

mod act;
mod driver;
mod float;
#[cfg(target_arch = "x86_64")]
mod float_avx512;
mod iq;
mod kernel;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
mod reference;
mod unpack;

pub use act::{quantize_row_q8_0, quantize_row_q8_1, BlockQ8_1};
pub use driver::Isa;
pub use float::{gemm_f32, Trans};
pub use reference::vec_dot_reference;

use crate::dequant::{BlockQ8_0, BlockQ8_K};
use crate::{convert, GgmlType, KernelError};
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
        IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS | IQ3_S | IQ1_S | IQ1_M | IQ4_XS => Q8_K,
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
        GgmlType::F16 => {
            let mut h = vec![0u16; x.len()];
            float::narrow_f16(x, &mut h);
            ActData::Half(h)
        }
        GgmlType::BF16 => {
            let mut b = Vec::with_capacity(x.len() * 2);
            convert::from_f32(ty, x, &mut b)?;
            ActData::Half(b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect())
        }
        GgmlType::Q8_0 => ActData::Q8_0(act::quantize_par(x, 32, act::quantize_q8_0_fast)),
        GgmlType::Q8_1 => ActData::Q8_1(act::quantize_par(x, 32, act::quantize_q8_1_fast)),
        // ggml x86 `quantize_row_q8_K` is `quantize_row_q8_K_ref`: the crate's quantizer (or
        // its AVX2 transcription, same bytes).
        GgmlType::Q8_K => ActData::Q8_K(act::quantize_par(x, 256, act::quantize_q8_k_fast)),
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
    vec_dot_type(w.ty)?;
    let n_elements = w.rows.checked_mul(w.k).ok_or(KernelError::TooLarge { ty: w.ty, n_elements: usize::MAX })?;
    // Each row must be whole blocks (not only the whole tensor).
    if w.k == 0 || !w.k.is_multiple_of(w.ty.block_size()) {
        return Err(KernelError::RaggedBlocks { ty: w.ty, n_elements: w.k, block_size: w.ty.block_size() });
    }
    KernelError::check_len(w.ty, n_elements, w.bytes.len())?;
    check_acts_out(w.ty, w.rows, w.k, x, out_len)
}

/// Checks the activations (type, k) against weights of type `ty`, `rows` × `k`, and the output
/// length.
fn check_acts_out(ty: GgmlType, rows: usize, k: usize, x: &Activations, out_len: usize) -> Result<(), KernelError> {
    if x.ty != vec_dot_type(ty)? {
        return Err(KernelError::Unsupported { ty: x.ty, op: "matmul with activations of another vec_dot_type" });
    }
    if x.k != k {
        return Err(KernelError::ByteLength {
            ty: x.ty,
            n_elements: k,
            expected: k / x.ty.block_size() * x.ty.type_size(),
            found: x.k / x.ty.block_size() * x.ty.type_size(),
        });
    }
    // `rows`/`k` are public fields: the stored data must still match them.
    let n_act = x.rows.checked_mul(x.k).ok_or(KernelError::TooLarge { ty: x.ty, n_elements: usize::MAX })?;
    KernelError::check_len(x.ty, n_act, x.bytes().len())?;
    let n_out = x.rows.checked_mul(rows).ok_or(KernelError::TooLarge { ty: GgmlType::F32, n_elements: usize::MAX })?;
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
/// by every token (integer kernels of the best [`Isa`] this CPU has, 4 weight rows × 2 tokens
/// per register tile), rayon over row tiles. F32/F16/BF16 weights: see `driver.rs`'s float path
/// (weight tiles widened to f32, `matrixmultiply` sgemm).
pub fn matmul(w: &WeightView, x: &Activations, out: &mut [f32]) -> Result<(), KernelError> {
    matmul_with(w, x, out, Isa::best())
}

/// [`matmul`] with an explicit instruction set (tests and benchmarks compare them); an `Isa`
/// this CPU lacks ([`Isa::available`]) is an `Unsupported` error.
pub fn matmul_with(w: &WeightView, x: &Activations, out: &mut [f32], isa: Isa) -> Result<(), KernelError> {
    check_shapes(w, x, out.len())?;
    if !isa.available() {
        return Err(KernelError::Unsupported { ty: w.ty, op: "matmul with an instruction set this CPU lacks" });
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

/// Quantized weights unpacked once (i8/u8 per weight + f32 scales: about 1.1–1.6 bytes per
/// weight), for products repeated on the same weights — generation, where unpacking on every
/// call would dominate. Same results as [`matmul`] bit for bit (same tiles, same kernels).
pub struct PackedWeights {
    /// The instruction set the tiles are laid out for.
    isa: Isa,
    ty: GgmlType,
    rows: usize,
    k: usize,
    kind: unpack::Kind,
    tiles: Vec<unpack::Tile>,
}

impl PackedWeights {
    /// Unpacks `w` (a quantized type [`matmul`] supports; float types are `Unsupported`: they
    /// are already in a directly usable form) for this CPU's best kernels.
    pub fn new(w: &WeightView) -> Result<Self, KernelError> {
        Self::with_isa(w, Isa::best())
    }

    /// [`PackedWeights::new`] laid out for `isa`'s kernels (an `isa` this CPU lacks is an
    /// `Unsupported` error).
    pub fn with_isa(w: &WeightView, isa: Isa) -> Result<Self, KernelError> {
        if !isa.available() {
            return Err(KernelError::Unsupported { ty: w.ty, op: "matmul with an instruction set this CPU lacks" });
        }
        let kind = unpack::kind(w.ty).ok_or(KernelError::Unsupported { ty: w.ty, op: "PackedWeights" })?;
        let n_elements = w.rows.checked_mul(w.k).ok_or(KernelError::TooLarge { ty: w.ty, n_elements: usize::MAX })?;
        if w.k == 0 || !w.k.is_multiple_of(w.ty.block_size()) {
            return Err(KernelError::RaggedBlocks { ty: w.ty, n_elements: w.k, block_size: w.ty.block_size() });
        }
        KernelError::check_len(w.ty, n_elements, w.bytes.len())?;
        Ok(PackedWeights { isa, ty: w.ty, rows: w.rows, k: w.k, kind, tiles: driver::pack(w, isa) })
    }

    /// [`matmul`] with these weights: `out[t * rows + r]`.
    pub fn matmul(&self, x: &Activations, out: &mut [f32]) -> Result<(), KernelError> {
        self.matmul_with(x, out, self.isa)
    }

    /// [`matmul_with`] with these weights; `isa` must use the layout they were packed for
    /// (that of [`PackedWeights::with_isa`]'s `isa`), else `Unsupported`.
    pub fn matmul_with(&self, x: &Activations, out: &mut [f32], isa: Isa) -> Result<(), KernelError> {
        check_acts_out(self.ty, self.rows, self.k, x, out.len())?;
        if !isa.available() {
            return Err(KernelError::Unsupported { ty: self.ty, op: "matmul with an instruction set this CPU lacks" });
        }
        if isa.layout() != self.isa.layout() {
            return Err(KernelError::Unsupported {
                ty: self.ty,
                op: "matmul with weights packed for another instruction set",
            });
        }
        if out.is_empty() {
            return Ok(());
        }
        driver::run_packed(&self.tiles, self.rows, x, out, isa, self.kind);
        Ok(())
    }
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
