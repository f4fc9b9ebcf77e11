//! `passthrough`: the single model's tensor, times `scale` when given.
//! mergekit `merge_methods/passthrough.py` `PassthroughMergeTask.execute` (slices are the
//! config layer's business).

use super::{GlobalParams, MergeError, MergeMethod, TensorInputs};

pub(crate) fn merge(inputs: &TensorInputs, global: &GlobalParams) -> Result<Vec<f32>, MergeError> {
    if inputs.models.len() != 1 {
        return Err(MergeError::ModelCount {
            tensor: inputs.name.into(),
            method: MergeMethod::Passthrough.name(),
            expected: "exactly one model",
            found: inputs.models.len(),
        });
    }
    let data = inputs.models[0].data;
    Ok(match global.scale {
        Some(s) => data.iter().map(|&x| (x as f64 * s) as f32).collect(),
        None => data.to_vec(),
    })
}
