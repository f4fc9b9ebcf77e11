//! `linear` as mergekit 0.1.5 computes it (`merge_methods/linear.py` `linear_merge`): in f32
//! whatever the dtype — f32 weights, `result.addcmul_(tensor, weight)` from zero for each model
//! in order (a fused multiply-add), divided by `weight.sum()` when `normalize` — then rounded to
//! the dtype once.

use rayon::prelude::*;

use super::{not_exact, short_row_sum, Dtype};
use crate::merge::methods::{GlobalParams, MergeError, MergeMethod, TensorInputs, CHUNK};

pub(super) fn merge(inputs: &TensorInputs, global: &GlobalParams, dtype: Dtype) -> Result<Vec<f32>, MergeError> {
    let method = MergeMethod::Linear;
    if inputs.models.is_empty() {
        return Err(MergeError::ModelCount {
            tensor: inputs.name.into(),
            method: method.name(),
            expected: "at least one model",
            found: 0,
        });
    }
    let weights: Vec<f32> =
        (0..inputs.models.len()).map(|i| inputs.weight(method, i).map(|w| w as f32)).collect::<Result<_, _>>()?;
    let normalize = global.normalize.unwrap_or(true);
    let den = short_row_sum(&weights).ok_or_else(|| {
        not_exact(inputs, method, "more than 7 models (torch sums the weights with a vectorized cascade)")
    })?;
    if normalize && den == 0.0 {
        return Err(MergeError::Degenerate {
            tensor: inputs.name.into(),
            why: "linear with normalize: the weights sum to 0".into(),
        });
    }
    let n = inputs.models[0].data.len();
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        let start = c * CHUNK;
        for (k, v) in o.iter_mut().enumerate() {
            let i = start + k;
            let mut r = 0f32;
            for (m, &w) in inputs.models.iter().zip(&weights) {
                r = m.data[i].mul_add(w, r);
            }
            if normalize {
                r /= den;
            }
            *v = dtype.round(r);
        }
    });
    Ok(out)
}
