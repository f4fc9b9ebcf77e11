//! Weights in their stored type and the one operation on them: out = x · Wᵀ.
//!
//! `W` is `rows × k` (GGUF ne = [k, rows]); `x` is `n_tokens × k` f32; `out` is
//! `n_tokens × rows`. Quantized weights are never expanded as a whole: the product runs on
//! the stored blocks.

use std::borrow::Cow;

use llmtool_formats::{GgmlType, TensorSource};
use llmtool_kernels::matmul as mm;
use rayon::prelude::*;

use super::InferError;

/// One weight matrix (or vector when `rows == 1`) as stored.
pub struct Weight<'a> {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub k: usize,
    pub bytes: Cow<'a, [u8]>,
}

impl<'a> Weight<'a> {
    /// Loads `name` and checks its shape is `[k, rows]` (GGUF order).
    pub fn load(src: &'a dyn TensorSource, name: &str, k: usize, rows: usize) -> Result<Self, InferError> {
        let info =
            src.tensor_infos().iter().find(|t| t.name == name).ok_or_else(|| InferError::MissingTensor(name.into()))?;
        let expected = if rows == 1 { vec![k as u64] } else { vec![k as u64, rows as u64] };
        let found: Vec<u64> = {
            let mut ne = info.ne.clone();
            while ne.len() > expected.len() && ne.last() == Some(&1) {
                ne.pop();
            }
            ne
        };
        if found != expected {
            return Err(InferError::Shape { name: name.into(), expected, found: info.ne.clone() });
        }
        let row_bytes =
            info.ty.row_bytes(k as u64).filter(|_| info.ty.block_size() > 0 && k.is_multiple_of(info.ty.block_size()));
        let Some(row_bytes) = row_bytes else {
            return Err(InferError::TensorType { name: name.into(), ty: info.ty });
        };
        if !llmtool_kernels::convert::can_decode(info.ty) {
            return Err(InferError::TensorType { name: name.into(), ty: info.ty });
        }
        let bytes = src.tensor_bytes(name)?;
        if bytes.len() as u64 != row_bytes * rows as u64 {
            return Err(InferError::Shape {
                name: name.into(),
                expected: vec![row_bytes * rows as u64],
                found: vec![bytes.len() as u64],
            });
        }
        Ok(Weight { name: name.into(), ty: info.ty, rows, k, bytes })
    }

    pub fn row_bytes(&self) -> usize {
        self.bytes.len() / self.rows
    }

    /// Row `r` decoded to f32 (embedding lookup).
    pub fn row_f32(&self, r: usize, out: &mut [f32]) -> Result<(), InferError> {
        let rb = self.row_bytes();
        llmtool_kernels::convert::to_f32(self.ty, &self.bytes[r * rb..(r + 1) * rb], out)
            .map_err(|source| InferError::Kernel { name: self.name.clone(), source })
    }

    /// The whole tensor as f32 (only for small vectors: norms, biases).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, InferError> {
        let mut v = vec![0.0; self.rows * self.k];
        llmtool_kernels::convert::to_f32(self.ty, &self.bytes, &mut v)
            .map_err(|source| InferError::Kernel { name: self.name.clone(), source })?;
        Ok(v)
    }
}

/// Rows of `W` decoded per task by the f32 path.
const ROW_BLOCK: usize = 16;

/// out[t][r] = Σ_i x[t][i] · W[r][i], computed like ggml: the activations are converted to
/// the weight type's `vec_dot_type` (Q8_0, Q8_1, Q8_K, F16, …) and multiplied with the stored
/// blocks (`llmtool_kernels::matmul`; every quantized type ggml-cpu gives a `vec_dot_type`,
/// the i-quants included). Types without such a kernel (TQ1_0, TQ2_0, MXFP4) take the f32
/// path: tiles of rows decoded to f32.
pub fn matmul(w: &Weight<'_>, x: &[f32], n_tokens: usize, out: &mut [f32]) -> Result<(), InferError> {
    debug_assert_eq!(x.len(), n_tokens * w.k);
    debug_assert_eq!(out.len(), n_tokens * w.rows);
    if mm::vec_dot_type(w.ty).is_ok() {
        let view = mm::WeightView { ty: w.ty, rows: w.rows, k: w.k, bytes: &w.bytes };
        return mm::matmul_f32(&view, x, n_tokens, out)
            .map_err(|source| InferError::Kernel { name: w.name.clone(), source });
    }
    matmul_dequant(w, x, n_tokens, out)
}

/// [`matmul`] of several weights over the same input `x` (Q, K and V; gate and up): the
/// activations are converted once per `vec_dot_type` and shared, as the conversion depends
/// on that type only (same bytes as one [`matmul`] each).
pub fn matmul_shared(jobs: &mut [(&Weight<'_>, &mut [f32])], x: &[f32], n_tokens: usize) -> Result<(), InferError> {
    let mut converted: Vec<mm::Activations> = Vec::new();
    for (w, out) in jobs.iter_mut() {
        debug_assert_eq!(x.len(), n_tokens * w.k);
        let Ok(ty) = mm::vec_dot_type(w.ty) else {
            matmul_dequant(w, x, n_tokens, out)?;
            continue;
        };
        let kernel = |source| InferError::Kernel { name: w.name.clone(), source };
        let i = match converted.iter().position(|a| a.ty == ty && a.k == w.k) {
            Some(i) => i,
            None => {
                converted.push(mm::prepare_activations(w.ty, x, w.k).map_err(kernel)?);
                converted.len() - 1
            }
        };
        let view = mm::WeightView { ty: w.ty, rows: w.rows, k: w.k, bytes: &w.bytes };
        mm::matmul(&view, &converted[i], out).map_err(kernel)?;
    }
    Ok(())
}

/// The f32 path: tiles of rows decoded to f32, dotted with every token.
pub fn matmul_dequant(w: &Weight<'_>, x: &[f32], n_tokens: usize, out: &mut [f32]) -> Result<(), InferError> {
    let k = w.k;
    let rb = w.row_bytes();
    let n_blocks = w.rows.div_ceil(ROW_BLOCK);
    // Each task decodes ROW_BLOCK rows and multiplies them by every token; the transposed
    // partial results are scattered afterwards.
    let parts: Vec<Vec<f32>> = (0..n_blocks)
        .into_par_iter()
        .map(|b| -> Result<Vec<f32>, InferError> {
            let r0 = b * ROW_BLOCK;
            let nr = ROW_BLOCK.min(w.rows - r0);
            let mut wf = vec![0.0f32; nr * k];
            llmtool_kernels::convert::to_f32(w.ty, &w.bytes[r0 * rb..(r0 + nr) * rb], &mut wf)
                .map_err(|source| InferError::Kernel { name: w.name.clone(), source })?;
            let mut part = vec![0.0f32; nr * n_tokens];
            for t in 0..n_tokens {
                let xt = &x[t * k..(t + 1) * k];
                for r in 0..nr {
                    part[t * nr + r] = dot(xt, &wf[r * k..(r + 1) * k]);
                }
            }
            Ok(part)
        })
        .collect::<Result<_, _>>()?;
    for (b, part) in parts.iter().enumerate() {
        let r0 = b * ROW_BLOCK;
        let nr = part.len() / n_tokens.max(1);
        for t in 0..n_tokens {
            out[t * w.rows + r0..t * w.rows + r0 + nr].copy_from_slice(&part[t * nr..(t + 1) * nr]);
        }
    }
    Ok(())
}

/// f32 dot product with 8 independent accumulators (vectorizes; summation order fixed).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rbm) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rbm) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `rows × k` weight of `ty` from a deterministic f32 pattern.
    fn weight(ty: GgmlType, rows: usize, k: usize, seed: u32) -> Weight<'static> {
        let f: Vec<f32> = (0..rows * k)
            .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16_777_216.0) - 0.5)
            .collect();
        let mut bytes = Vec::new();
        if ty == GgmlType::TQ2_0 {
            // No quantizer: ggml block_tq2_0 by hand (64 bytes of 2-bit codes, f16 d = 0.01).
            for b in 0..rows * k / 256 {
                bytes.extend((0..64).map(|i| (b * 31 + i * 7 + seed as usize) as u8));
                bytes.extend_from_slice(&half::f16::from_f32(0.01).to_le_bytes());
            }
        } else if ty.is_quantized() {
            llmtool_kernels::quant::quantize(ty, &f, &mut bytes).unwrap();
        } else {
            llmtool_kernels::convert::from_f32(ty, &f, &mut bytes).unwrap();
        }
        Weight { name: format!("{ty}"), ty, rows, k, bytes: Cow::Owned(bytes) }
    }

    #[test]
    fn shared_activations_give_the_bytes_of_one_matmul_each() {
        let (k, n) = (256, 3);
        let x: Vec<f32> = (0..n * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        // Types sharing a vec_dot_type (Q4_0/Q8_0: Q8_0; Q4_K/Q6_K: Q8_K), one of their own
        // (Q4_1: Q8_1, F16) and one with none (TQ2_0: the f32 path).
        let types = [
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::Q4_1,
            GgmlType::F16,
            GgmlType::TQ2_0,
        ];
        let ws: Vec<Weight> = types.iter().enumerate().map(|(i, &t)| weight(t, 5 + i, k, i as u32)).collect();
        let mut shared: Vec<Vec<f32>> = ws.iter().map(|w| vec![0.0; n * w.rows]).collect();
        {
            let mut jobs: Vec<(&Weight, &mut [f32])> =
                ws.iter().zip(shared.iter_mut()).map(|(w, o)| (w, o.as_mut_slice())).collect();
            matmul_shared(&mut jobs, &x, n).unwrap();
        }
        for (w, got) in ws.iter().zip(&shared) {
            let mut one = vec![0.0; n * w.rows];
            matmul(w, &x, n, &mut one).unwrap();
            let (a, b): (Vec<u32>, Vec<u32>) =
                (one.iter().map(|v| v.to_bits()).collect(), got.iter().map(|v| v.to_bits()).collect());
            assert_eq!(a, b, "{}", w.name);
        }
    }
}
