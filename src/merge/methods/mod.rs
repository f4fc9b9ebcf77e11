//! TEMPORARY stand-in for the merge-method math (branch `mergemath` provides the real module
//! with this exact API; the integrator takes that file). Only `linear` and `passthrough` are
//! computed here; every other method returns [`MergeError::NotImplemented`].

use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMethod {
    Linear,
    Slerp,
    Nuslerp,
    TaskArithmetic,
    Ties,
    DareTies,
    DareLinear,
    Breadcrumbs,
    BreadcrumbsTies,
    Della,
    DellaLinear,
    ModelStock,
    Passthrough,
}

const ALL: [MergeMethod; 13] = [
    MergeMethod::Linear,
    MergeMethod::Slerp,
    MergeMethod::Nuslerp,
    MergeMethod::TaskArithmetic,
    MergeMethod::Ties,
    MergeMethod::DareTies,
    MergeMethod::DareLinear,
    MergeMethod::Breadcrumbs,
    MergeMethod::BreadcrumbsTies,
    MergeMethod::Della,
    MergeMethod::DellaLinear,
    MergeMethod::ModelStock,
    MergeMethod::Passthrough,
];

impl MergeMethod {
    pub fn from_name(s: &str) -> Option<Self> {
        ALL.iter().copied().find(|m| m.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            MergeMethod::Linear => "linear",
            MergeMethod::Slerp => "slerp",
            MergeMethod::Nuslerp => "nuslerp",
            MergeMethod::TaskArithmetic => "task_arithmetic",
            MergeMethod::Ties => "ties",
            MergeMethod::DareTies => "dare_ties",
            MergeMethod::DareLinear => "dare_linear",
            MergeMethod::Breadcrumbs => "breadcrumbs",
            MergeMethod::BreadcrumbsTies => "breadcrumbs_ties",
            MergeMethod::Della => "della",
            MergeMethod::DellaLinear => "della_linear",
            MergeMethod::ModelStock => "model_stock",
            MergeMethod::Passthrough => "passthrough",
        }
    }

    /// mergekit: every method but linear, nuslerp (optional) and passthrough needs a base.
    pub fn needs_base(self) -> bool {
        !matches!(self, MergeMethod::Linear | MergeMethod::Nuslerp | MergeMethod::Passthrough)
    }

    /// Per-model parameters (mergekit `tensor_parameters()`).
    pub fn model_params(self) -> &'static [&'static str] {
        match self {
            MergeMethod::Linear | MergeMethod::Nuslerp | MergeMethod::TaskArithmetic => &["weight"],
            MergeMethod::Ties | MergeMethod::DareTies | MergeMethod::DareLinear => &["weight", "density"],
            MergeMethod::Breadcrumbs | MergeMethod::BreadcrumbsTies => &["weight", "density", "gamma"],
            MergeMethod::Della | MergeMethod::DellaLinear => &["weight", "density", "epsilon"],
            MergeMethod::Slerp | MergeMethod::ModelStock | MergeMethod::Passthrough => &[],
        }
    }

    /// Global parameters (mergekit `parameters()`).
    pub fn global_params(self) -> &'static [&'static str] {
        match self {
            MergeMethod::Linear => &["normalize"],
            MergeMethod::Slerp => &["t"],
            MergeMethod::Nuslerp => &["nuslerp_flatten", "nuslerp_row_wise"],
            MergeMethod::ModelStock => &["filter_wise"],
            MergeMethod::Passthrough => &[],
            _ => &["normalize", "rescale", "lambda", "int8_mask", "dare_rescale_legacy"],
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ModelParams {
    pub weight: Option<f64>,
    pub density: Option<f64>,
    pub gamma: Option<f64>,
    pub epsilon: Option<f64>,
}

#[derive(Clone, Debug, Default)]
pub struct GlobalParams {
    pub normalize: Option<bool>,
    pub rescale: Option<bool>,
    pub lambda: Option<f64>,
    pub int8_mask: Option<bool>,
    pub t: Option<f64>,
    pub nuslerp_flatten: Option<bool>,
    pub nuslerp_row_wise: Option<bool>,
    pub filter_wise: Option<bool>,
    pub dare_rescale_legacy: Option<bool>,
}

pub struct ModelTensor<'a> {
    pub data: &'a [f32],
    pub params: ModelParams,
    pub is_base: bool,
}

pub struct TensorInputs<'a> {
    pub name: &'a str,
    /// Row-major (torch order).
    pub shape: &'a [usize],
    pub base: Option<&'a [f32]>,
    /// Every entry of `models` in order, the base flagged.
    pub models: Vec<ModelTensor<'a>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("tensor '{tensor}': merge method {method} is not implemented yet")]
    NotImplemented { tensor: String, method: &'static str },
    #[error("tensor '{tensor}': {reason}")]
    Invalid { tensor: String, reason: String },
}

pub fn merge_tensor(
    method: MergeMethod,
    inputs: &TensorInputs,
    global: &GlobalParams,
    _seed: u64,
) -> Result<Vec<f32>, MergeError> {
    let invalid = |reason: String| MergeError::Invalid { tensor: inputs.name.to_string(), reason };
    let n: usize = inputs.shape.iter().product();
    if let Some(m) = inputs.models.iter().find(|m| m.data.len() != n) {
        return Err(invalid(format!("input of {} elements, shape {:?} needs {n}", m.data.len(), inputs.shape)));
    }
    match method {
        MergeMethod::Passthrough => match inputs.models.as_slice() {
            [one] => Ok(one.data.to_vec()),
            m => Err(invalid(format!("passthrough takes exactly one input tensor, found {}", m.len()))),
        },
        MergeMethod::Linear => {
            if inputs.models.is_empty() {
                return Err(invalid("linear merge of no models".into()));
            }
            let mut weights = Vec::with_capacity(inputs.models.len());
            for (i, m) in inputs.models.iter().enumerate() {
                weights
                    .push(m.params.weight.ok_or_else(|| invalid(format!("model {i}: parameter weight is required")))?);
            }
            let sum: f64 = weights.iter().sum();
            let normalize = global.normalize.unwrap_or(true);
            if normalize && sum == 0.0 {
                return Err(invalid("linear merge with normalize: the weights sum to 0".into()));
            }
            let mut out = vec![0f32; n];
            out.par_chunks_mut(1 << 14).enumerate().for_each(|(c, chunk)| {
                let start = c << 14;
                for (j, o) in chunk.iter_mut().enumerate() {
                    let mut acc = 0f64;
                    for (m, w) in inputs.models.iter().zip(&weights) {
                        acc += w * m.data[start + j] as f64;
                    }
                    *o = if normalize { (acc / sum) as f32 } else { acc as f32 };
                }
            });
            Ok(out)
        }
        other => Err(MergeError::NotImplemented { tensor: inputs.name.to_string(), method: other.name() }),
    }
}
