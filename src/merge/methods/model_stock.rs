//! `model_stock`: w_h = t·w_avg + (1−t)·w₀ with t = N·cos/(1+(N−1)·cos), cos the mean pairwise
//! cosine between the task vectors wᵢ − w₀ (N = number of non-base models).
//! mergekit `merge_methods/model_stock.py` `ModelStockMergeTask.execute`: per row (last axis;
//! a 1-D tensor is one row) with `filter_wise`, else on the flattened tensor; cosine
//! Σab / max(‖a‖·‖b‖, 1e-6) clamped to [−1, 1]; needs the base plus at least two models (only
//! the base: the base is returned). Where 1+(N−1)·cos is within 1e-6 of 0, t = 0 (mergekit
//! ≥ 0.1.5 keeps the base rather than divide by ~0).

use rayon::prelude::*;

use super::{GlobalParams, MergeError, MergeMethod, TensorInputs};

pub(crate) fn merge(inputs: &TensorInputs, global: &GlobalParams) -> Result<Vec<f32>, MergeError> {
    let method = MergeMethod::ModelStock;
    let w0 = inputs.need_base(method)?;
    let ws: Vec<&[f32]> = inputs.others().map(|(_, m)| m.data).collect();
    if ws.is_empty() {
        return Ok(w0.to_vec());
    }
    if ws.len() < 2 {
        return Err(MergeError::ModelCount {
            tensor: inputs.name.into(),
            method: method.name(),
            expected: "the base plus at least two models",
            found: ws.len() + 1,
        });
    }
    let n = w0.len();
    let row = if global.filter_wise.unwrap_or(false) && inputs.shape.len() >= 2 {
        inputs.shape[inputs.shape.len() - 1]
    } else {
        n
    };
    if n == 0 || row == 0 {
        return Ok(Vec::new());
    }
    let k = ws.len() as f64;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(row).enumerate().for_each(|(r, o)| {
        let range = r * row..(r + 1) * row;
        let base = &w0[range.clone()];
        // task vectors of this row, as f32 differences like mergekit's `w - w_0`.
        let offs: Vec<Vec<f32>> =
            ws.iter().map(|w| w[range.clone()].iter().zip(base).map(|(a, b)| a - b).collect()).collect();
        let norms: Vec<f64> = offs.iter().map(|v| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()).collect();
        let mut cos_sum = 0f64;
        let mut pairs = 0usize;
        for i in 0..offs.len() {
            for j in i + 1..offs.len() {
                let dot: f64 = offs[i].iter().zip(&offs[j]).map(|(&a, &b)| a as f64 * b as f64).sum();
                cos_sum += (dot / (norms[i] * norms[j]).max(1e-6)).clamp(-1.0, 1.0);
                pairs += 1;
            }
        }
        let cos = cos_sum / pairs as f64;
        let den = 1.0 + (k - 1.0) * cos;
        // mergekit ≥ 0.1.5: at the singularity (|den| < 1e-6) keep the base (t = 0).
        let t = if den.abs() < 1e-6 { 0.0 } else { k * cos / den };
        for (c, o) in o.iter_mut().enumerate() {
            let avg = ws.iter().map(|w| w[range.start + c] as f64).sum::<f64>() / k;
            *o = (t * avg + (1.0 - t) * base[c] as f64) as f32;
        }
    });
    Ok(out)
}
