//! `linear` as mergekit 0.1.5 computes it (`merge_methods/linear.py` `linear_merge`): in f32
//! whatever the dtype — f32 weights, `result.addcmul_(tensor, weight)` from zero for each model
//! in order (a fused multiply-add), divided by `weight.sum()` when `normalize` — then rounded to
//! the dtype once.

use super::{not_exact, short_row_sum, Dtype};
use crate::merge::methods::{linear, par_elementwise, GlobalParams, MergeError, MergeMethod, TensorInputs};

pub(super) fn merge(inputs: &TensorInputs, global: &GlobalParams, dtype: Dtype) -> Result<Vec<f32>, MergeError> {
    let weights: Vec<f32> = linear::model_weights(inputs)?.into_iter().map(|w| w as f32).collect();
    let normalize = global.normalize.unwrap_or(true);
    let den = match short_row_sum(&weights) {
        Some(d) => d,
        None if !normalize => 1.0, // not used
        None => {
            let why = "normalize over more than 7 models (torch sums the weights with a vectorized cascade)";
            return Err(not_exact(inputs, MergeMethod::Linear, why));
        }
    };
    if normalize && den == 0.0 {
        return Err(linear::zero_sum(inputs));
    }
    Ok(par_elementwise(inputs.models[0].data.len(), |i| {
        let mut r = 0f32;
        for (m, &w) in inputs.models.iter().zip(&weights) {
            r = m.data[i].mul_add(w, r);
        }
        if normalize {
            r /= den;
        }
        dtype.round(r)
    }))
}
