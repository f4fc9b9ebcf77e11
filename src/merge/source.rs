//! The merged model as a lazy [`TensorSource`]: each tensor is computed when the writer asks
//! for it (the writer's one-ahead look-ahead computes tensor i+1 while tensor i is written,
//! `crate::stream`), so memory holds the f32 inputs and result of about one tensor at a time.

use std::borrow::Cow;

use llmtool_formats::{FormatError, GgmlType, TensorInfo, TensorSource};
use llmtool_kernels::convert;
use rayon::prelude::*;

use super::error::MergeRunError;
use super::inputs::{apply_fix_f32, F32Tensor, InputTensors};
use super::methods::dtype_exact::{merge_tensor_dtype, Arithmetic};
use super::methods::{merge_tensor, ModelTensor, TensorInputs};
use super::plan::{MergePlan, TensorPlan};

/// A merge computed on demand.
/// `I` is the inputs' provider, owned or borrowed (`&InputCache`).
pub struct MergedSource<I: InputTensors> {
    pub plan: MergePlan,
    inputs: I,
    infos: Vec<TensorInfo>,
}

impl<I: InputTensors> MergedSource<I> {
    pub fn new(plan: MergePlan, inputs: I) -> Self {
        let infos = plan.tensors.iter().map(|t| t.out.clone()).collect();
        MergedSource { plan, inputs, infos }
    }

    /// The merged tensor as f32 in HF layout (before the GGUF fix and the output type).
    pub fn merged_f32(&self, tp: &TensorPlan) -> Result<Vec<f32>, MergeRunError> {
        let mut data: Vec<F32Tensor> = Vec::with_capacity(tp.inputs.len());
        for input in &tp.inputs {
            let mut d = self.inputs.tensor_f32(input.model, &input.tensor)?;
            if let Some(ty) = self.plan.input_round {
                let owned = std::sync::Arc::make_mut(&mut d);
                round_through(owned, ty);
            }
            data.push(d);
        }
        let exact = match self.plan.arithmetic {
            Arithmetic::F32 => None,
            Arithmetic::Dtype => Some(
                self.plan
                    .merge_dtype()
                    .ok_or_else(|| MergeRunError::Plan("--arithmetic dtype needs the config's dtype".into()))?,
            ),
        };
        // One weight: `part` of `n_parts` equal chunks of every input (the whole tensor, or one
        // expert of a stacked tensor), merged under its HF name and shape.
        let merge_part = |name: &str, shape: &[usize], part: usize, n_parts: usize, seed: u64| {
            fn chunk(d: &F32Tensor, part: usize, n_parts: usize) -> &[f32] {
                let len = d.len() / n_parts;
                &d.as_slice()[part * len..(part + 1) * len]
            }
            let chunk = |d| chunk(d, part, n_parts);
            let base = tp.inputs.iter().position(|p| p.is_base).map(|i| chunk(&data[i]));
            let models = tp
                .inputs
                .iter()
                .zip(&data)
                .map(|(p, d)| ModelTensor { data: chunk(d), params: p.params.clone(), is_base: p.is_base })
                .collect();
            let ti = TensorInputs { name, shape, base, models };
            match exact {
                None => merge_tensor(self.plan.method, &ti, &tp.global, seed),
                Some(dtype) => merge_tensor_dtype(self.plan.method, &ti, &tp.global, dtype),
            }
        };
        let mut out = match &tp.experts {
            None => merge_part(&tp.hf_name, &tp.shape, 0, 1, tp.seed)?,
            Some(names) => {
                let mut out = Vec::with_capacity(data.first().map_or(0, |d| d.len()));
                for (e, name) in names.iter().enumerate() {
                    let seed = super::plan::tensor_seed(tp.seed, name);
                    out.extend(merge_part(name, &tp.shape[1..], e, names.len(), seed)?);
                }
                out
            }
        };
        drop(data);
        if let Some(scale) = tp.inputs.first().and_then(|p| p.scale) {
            // passthrough's `scale`: torch multiplies by the Python float as f32 and rounds.
            let s = scale as f32;
            match exact {
                None => out.par_iter_mut().for_each(|x| *x *= s),
                Some(dtype) => out.par_iter_mut().for_each(|x| *x = dtype.round(*x * s)),
            }
        }
        Ok(out)
    }

    fn compute(&self, tp: &TensorPlan) -> Result<Vec<u8>, MergeRunError> {
        if let Some((model, name)) = &tp.copy_from {
            return self.inputs.raw_bytes(*model, name);
        }
        let merged = self.merged_f32(tp)?;
        let fixed = apply_fix_f32(&tp.out, merged, tp.to_gguf)
            .map_err(|e| MergeRunError::Plan(format!("tensor '{}': {e}", tp.out.name)))?;
        let mut bytes = Vec::new();
        convert::from_f32(tp.out.ty, &fixed, &mut bytes)
            .map_err(|e| MergeRunError::Plan(format!("tensor '{}': {e}", tp.out.name)))?;
        Ok(bytes)
    }
}

/// Rounds every value to `ty` and back (mergekit casts inputs to `dtype` before merging).
fn round_through(data: &mut [f32], ty: GgmlType) {
    match ty {
        GgmlType::F16 => data.par_iter_mut().for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
        GgmlType::BF16 => data.par_iter_mut().for_each(|x| *x = half::bf16::from_f32(*x).to_f32()),
        _ => {}
    }
}

impl<I: InputTensors> TensorSource for MergedSource<I> {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let tp = self
            .plan
            .tensors
            .iter()
            .find(|t| t.out.name == name)
            .ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))?;
        self.compute(tp).map(Cow::Owned).map_err(|e| FormatError::Other(e.to_string()))
    }

    fn release(&self, name: &str) {
        if let Some(tp) = self.plan.tensors.iter().find(|t| t.out.name == name) {
            for p in &tp.inputs {
                self.inputs.release(p.model, &p.tensor);
            }
        }
    }
}
