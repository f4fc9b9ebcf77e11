//! `linear`: Σ wᵢ·xᵢ, divided by Σ wᵢ when `normalize` (default true).
//! mergekit `merge_methods/linear.py` `LinearMergeTask.execute`: every entry of `models`
//! (the base too when it is listed) with its `weight`.

use super::{par_elementwise, GlobalParams, MergeError, MergeMethod, TensorInputs};

/// The `weight` of every entry of `models` (at least one entry).
pub(crate) fn model_weights(inputs: &TensorInputs) -> Result<Vec<f64>, MergeError> {
    let method = MergeMethod::Linear;
    if inputs.models.is_empty() {
        return Err(MergeError::ModelCount {
            tensor: inputs.name.into(),
            method: method.name(),
            expected: "at least one model",
            found: 0,
        });
    }
    (0..inputs.models.len()).map(|i| inputs.weight(method, i)).collect()
}

/// `normalize` over weights summing to 0: mergekit divides by zero (a NaN/inf tensor); we refuse.
pub(crate) fn zero_sum(inputs: &TensorInputs) -> MergeError {
    MergeError::Degenerate { tensor: inputs.name.into(), why: "linear with normalize: the weights sum to 0".into() }
}

pub(crate) fn merge(inputs: &TensorInputs, global: &GlobalParams) -> Result<Vec<f32>, MergeError> {
    let weights = model_weights(inputs)?;
    let normalize = global.normalize.unwrap_or(true);
    let sum: f64 = weights.iter().sum();
    if normalize && sum == 0.0 {
        return Err(zero_sum(inputs));
    }
    let div = if normalize { sum } else { 1.0 };
    Ok(par_elementwise(inputs.models[0].data.len(), |i| {
        let s: f64 = inputs.models.iter().zip(&weights).map(|(m, w)| w * m.data[i] as f64).sum();
        (s / div) as f32
    }))
}
