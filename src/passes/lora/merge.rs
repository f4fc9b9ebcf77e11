//! The merged model as a lazy [`TensorSource`]: untouched tensors are the base's bytes (byte
//! for byte, borrowed), touched ones are decoded to f32, edited in order and encoded back to
//! the base tensor's type (re-quantized with llmtool_kernels for quantized bases) — or, when
//! the output is a float type anyway ([`LoraMerged::with_float_output`]), left as exact f32
//! W + ΔW, so the result is PEFT's `merge_and_unload` of the dequantized base rather than a
//! re-quantization of it.

use std::borrow::Cow;
use std::collections::HashMap;

use llmtool_formats::{FormatError, TensorInfo, TensorSource};
use rayon::prelude::*;

use super::map::{Edit, EditKind, LowRank};

pub struct LoraMerged<'a> {
    base: &'a dyn TensorSource,
    edits: HashMap<String, Vec<Edit>>,
    /// The base's infos, with touched quantized tensors as F32 under float output.
    infos: Vec<TensorInfo>,
    float_output: bool,
}

impl<'a> LoraMerged<'a> {
    /// Touched tensors keep the base tensor's type (quantized ones are re-quantized).
    pub fn new(base: &'a dyn TensorSource, edits: HashMap<String, Vec<Edit>>) -> Self {
        let infos = base.tensor_infos().to_vec();
        LoraMerged { base, edits, infos, float_output: false }
    }

    /// Touched tensors are produced as F32 (W + ΔW unrounded), for outputs written in a float
    /// type (HF dirs, GGUF with an explicit float `--outtype`), which round them once to that
    /// type — never first to the base's type (a quantized or f16 base).
    pub fn with_float_output(mut self) -> Self {
        for info in &mut self.infos {
            if self.edits.contains_key(&info.name) {
                info.ty = llmtool_formats::GgmlType::F32;
            }
        }
        self.float_output = true;
        self
    }

    /// GGUF names of the tensors that change.
    pub fn touched(&self) -> impl Iterator<Item = &str> {
        self.edits.keys().map(String::as_str)
    }

    fn merged(&self, info: &TensorInfo, edits: &[Edit]) -> Result<Vec<u8>, FormatError> {
        let err = |what: String| FormatError::Other(format!("lora merge, tensor '{}': {what}", info.name));
        let n = info.n_elements().ok_or_else(|| err("shape overflows".into()))? as usize;
        let bytes = self.base.tensor_bytes(&info.name)?;
        let mut w = vec![0f32; n];
        llmtool_kernels::dequant::dequantize(info.ty, &bytes, &mut w).map_err(|e| err(e.to_string()))?;
        drop(bytes);
        for e in edits {
            match &e.kind {
                EditKind::Replace(v) => {
                    if v.len() != n {
                        return Err(err(format!("{}: {} values for {n} elements", e.origin, v.len())));
                    }
                    w.copy_from_slice(v);
                }
                EditKind::Add(lr) => add_low_rank(&mut w, lr),
                EditKind::Dora(lr, m) => {
                    add_low_rank(&mut w, lr);
                    // PEFT DoraLinearLayer: norm of each output row of W + s·B·A (dim=1), detached.
                    w.par_chunks_mut(lr.n_in).zip(m.par_iter()).for_each(|(row, &mag)| {
                        let norm = row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() as f32;
                        let f = mag / norm;
                        row.iter_mut().for_each(|x| *x *= f);
                    });
                }
            }
        }
        if self.float_output {
            return Ok(w.iter().flat_map(|x| x.to_le_bytes()).collect());
        }
        let mut out = Vec::with_capacity(info.n_bytes().unwrap_or(0) as usize);
        llmtool_kernels::quant::quantize(info.ty, &w, &mut out).map_err(|e| err(e.to_string()))?;
        Ok(out)
    }
}

/// w[o][i] += scale · Σ_k b[o][k]·a[k][i], accumulated in f32 row by row.
fn add_low_rank(w: &mut [f32], lr: &LowRank) {
    let (r, n_in) = (lr.r, lr.n_in);
    w.par_chunks_mut(n_in).enumerate().for_each(|(o, row)| {
        let mut acc = vec![0f32; n_in];
        for k in 0..r {
            let bk = lr.b[o * r + k];
            if bk == 0.0 {
                continue;
            }
            let a = &lr.a[k * n_in..(k + 1) * n_in];
            acc.iter_mut().zip(a).for_each(|(x, &ai)| *x += bk * ai);
        }
        row.iter_mut().zip(&acc).for_each(|(x, &d)| *x += lr.scale * d);
    });
}

impl TensorSource for LoraMerged<'_> {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        match self.edits.get(name) {
            None => self.base.tensor_bytes(name),
            Some(edits) => {
                let info = self.base.tensor_info(name).ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))?;
                Ok(Cow::Owned(self.merged(info, edits)?))
            }
        }
    }

    fn release(&self, name: &str) {
        self.base.release(name)
    }
}
