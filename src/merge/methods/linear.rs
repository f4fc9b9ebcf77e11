//! `linear`: Σ wᵢ·xᵢ, divided by Σ wᵢ when `normalize` (default true).
//! mergekit `merge_methods/linear.py` `LinearMergeTask.execute`: every entry of `models`
//! (the base too when it is listed) with its `weight`.

use rayon::prelude::*;

use super::{GlobalParams, MergeError, MergeMethod, TensorInputs, CHUNK};

pub(crate) fn merge(inputs: &TensorInputs, global: &GlobalParams) -> Result<Vec<f32>, MergeError> {
    let method = MergeMethod::Linear;
    if inputs.models.is_empty() {
        return Err(MergeError::ModelCount {
            tensor: inputs.name.into(),
            method: method.name(),
            expected: "at least one model",
            found: 0,
        });
    }
    let weights: Vec<f64> = (0..inputs.models.len()).map(|i| inputs.weight(method, i)).collect::<Result<_, _>>()?;
    let normalize = global.normalize.unwrap_or(true);
    let sum: f64 = weights.iter().sum();
    if normalize && sum == 0.0 {
        // mergekit divides by zero here (NaN/inf tensor); refuse instead.
        return Err(MergeError::Degenerate {
            tensor: inputs.name.into(),
            why: "linear with normalize: the weights sum to 0".into(),
        });
    }
    let div = if normalize { sum } else { 1.0 };
    let n = inputs.models[0].data.len();
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        let start = c * CHUNK;
        for (k, v) in o.iter_mut().enumerate() {
            let i = start + k;
            let s: f64 = inputs.models.iter().zip(&weights).map(|(m, w)| w * m.data[i] as f64).sum();
            *v = (s / div) as f32;
        }
    });
    Ok(out)
}
