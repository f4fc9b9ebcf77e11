//! The generalized task arithmetic family: task_arithmetic, ties, dare_ties, dare_linear,
//! breadcrumbs, breadcrumbs_ties, della, della_linear.
//! mergekit `merge_methods/generalized_task_arithmetic.py` (`GTATask.execute`,
//! `get_task_vectors`, `get_mask`) with the registry's settings (`merge_methods/registry.py`):
//!
//! 1. task vectors δᵢ = xᵢ − base of every non-base model (the base is not one);
//! 2. each sparsified ([`super::sparsify`]) with its `density` (default 1 = untouched),
//!    `gamma` (breadcrumbs, default 0.01), `epsilon` (della, default 0.15), rescaled when
//!    `rescale`;
//! 3. weighted wᵢ·δᵢ; with sign consensus (TIES "sum" method) only the terms whose sign equals
//!    the sign of Σ wᵢδᵢ (≥ 0 counts as +) are kept, and the divisor is Σ wᵢ over the kept
//!    terms (0 → 1); without consensus the divisor is Σ wᵢ (|Σ| < 1e-8 → 1);
//! 4. mixed delta divided by the divisor when `normalize`, times `lambda` (default 1);
//! 5. base + mixed delta. With no task vector the base is returned.
//!
//! `int8_mask` only changes the dtype of mergekit's mask tensor: no effect on the result.

use rayon::prelude::*;

use super::sparsify::{self, Rescale};
use super::{GlobalParams, Masks, MergeError, MergeMethod, TensorInputs, CHUNK};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sparsification {
    Magnitude,
    Random,
    MagnitudeOutliers,
    DellaMagprune,
}

/// (consensus, sparsification, default normalize, default rescale) from mergekit's registry.
fn settings(method: MergeMethod) -> (bool, Option<Sparsification>, bool, bool) {
    use Sparsification::*;
    match method {
        MergeMethod::TaskArithmetic => (false, None, false, false),
        MergeMethod::Ties => (true, Some(Magnitude), true, false),
        MergeMethod::DareTies => (true, Some(Random), false, true),
        MergeMethod::DareLinear => (false, Some(Random), false, true),
        MergeMethod::Breadcrumbs => (false, Some(MagnitudeOutliers), false, false),
        MergeMethod::BreadcrumbsTies => (true, Some(MagnitudeOutliers), false, false),
        MergeMethod::Della => (true, Some(DellaMagprune), true, true),
        MergeMethod::DellaLinear => (false, Some(DellaMagprune), false, true),
        _ => unreachable!("not a task arithmetic method: {method}"),
    }
}

/// A task vector: computed on the fly from the model (untouched) or sparsified and stored.
enum Delta<'a> {
    Raw(&'a [f32]),
    Owned(Vec<f32>),
}

pub(crate) fn merge(
    method: MergeMethod,
    inputs: &TensorInputs,
    global: &GlobalParams,
    masks: Masks,
) -> Result<Vec<f32>, MergeError> {
    let (consensus, sparsification, default_normalize, default_rescale) = settings(method);
    let base = inputs.need_base(method)?;
    let normalize = global.normalize.unwrap_or(default_normalize);
    let rescale = global.rescale.unwrap_or(default_rescale);
    let legacy = global.dare_rescale_legacy.unwrap_or(false);
    let lambda = global.lambda.unwrap_or(1.0);
    let name = inputs.name;
    let bad = |param: &'static str, value: f64, model: usize, why: &str| MergeError::BadParam {
        tensor: name.into(),
        param,
        value,
        whose: format!("model {model}"),
        why: why.into(),
    };

    let others: Vec<_> = inputs.others().collect();
    if others.is_empty() {
        return Ok(base.to_vec());
    }
    if let Masks::Given(m) = masks {
        if sparsification.is_some_and(|s| matches!(s, Sparsification::Random | Sparsification::DellaMagprune))
            && m.len() != others.len()
        {
            return Err(MergeError::MaskCount { tensor: name.into(), found: m.len(), expected: others.len() });
        }
    }
    let n = base.len();
    let mut weights = Vec::with_capacity(others.len());
    let mut deltas = Vec::with_capacity(others.len());
    for (j, &(i, m)) in others.iter().enumerate() {
        weights.push(inputs.weight(method, i)?);
        let density = m.params.density.unwrap_or(1.0);
        let Some(sp) = sparsification else {
            deltas.push(Delta::Raw(m.data));
            continue;
        };
        if density.is_nan() {
            return Err(bad("density", density, i, "not a number"));
        }
        if density >= 1.0 {
            deltas.push(Delta::Raw(m.data));
            continue;
        }
        let mut delta: Vec<f32> = m.data.par_iter().zip(base.par_iter()).map(|(x, b)| x - b).collect();
        let l1 = if rescale { Rescale::L1 } else { Rescale::None };
        let given = |j: usize| -> Result<&[bool], MergeError> {
            let Masks::Given(ms) = masks else { unreachable!() };
            let mask = &ms[j];
            if mask.len() != n {
                return Err(MergeError::SizeMismatch {
                    tensor: name.into(),
                    what: format!("the mask of model {i}"),
                    found: mask.len(),
                    expected: n,
                    shape: inputs.shape.to_vec(),
                });
            }
            Ok(mask)
        };
        match sp {
            Sparsification::Magnitude => {
                if density <= 0.0 || n == 0 {
                    deltas.push(Delta::Owned(vec![0.0; n]));
                    continue;
                }
                let k = sparsify::magnitude_keep(n, density);
                let mask = sparsify::rank_range_mask(&delta, n - k, n);
                sparsify::apply_mask_in_place(&mut delta, &mask, l1)
            }
            Sparsification::MagnitudeOutliers => {
                let gamma = m.params.gamma.unwrap_or(0.01);
                if gamma.is_nan() || gamma < 0.0 {
                    return Err(bad("gamma", gamma, i, "must be ≥ 0"));
                }
                let (lo, hi) = sparsify::outlier_range(n, density, gamma);
                let mask = sparsify::rank_range_mask(&delta, lo, hi);
                sparsify::apply_mask_in_place(&mut delta, &mask, l1)
            }
            Sparsification::Random => {
                if density < 0.0 {
                    return Err(bad("density", density, i, "must be in [0, 1]"));
                }
                let drawn;
                let mask = match masks {
                    Masks::Seeded(seed) => {
                        drawn = sparsify::random_mask(n, density, sparsify::stream_seed(seed, j as u64));
                        &drawn[..]
                    }
                    Masks::Given(_) => given(j)?,
                };
                let r = if rescale && legacy { Rescale::Density(density) } else { l1 };
                sparsify::apply_mask_in_place(&mut delta, mask, r)
            }
            Sparsification::DellaMagprune => {
                if density <= 0.0 {
                    deltas.push(Delta::Owned(vec![0.0; n]));
                    continue;
                }
                let eps = m.params.epsilon.unwrap_or(0.15);
                if density + eps >= 1.0 || density - eps <= 0.0 {
                    return Err(bad(
                        "epsilon",
                        eps,
                        i,
                        &format!("density ± epsilon must lie in (0, 1) (density {density})"),
                    ));
                }
                let probs = sparsify::della_probabilities(&delta, inputs.shape, density, eps);
                let drawn;
                let mask = match masks {
                    Masks::Seeded(seed) => {
                        drawn = sparsify::bernoulli_mask(n, sparsify::stream_seed(seed, j as u64), |k| probs[k] as f64);
                        &drawn[..]
                    }
                    Masks::Given(_) => given(j)?,
                };
                let r = if rescale && legacy { Rescale::Probs(&probs) } else { l1 };
                sparsify::apply_mask_in_place(&mut delta, mask, r)
            }
        }
        deltas.push(Delta::Owned(delta));
    }

    let wsum: f64 = weights.iter().sum();
    let linear_div = if wsum.abs() < 1e-8 { 1.0 } else { wsum };
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        let start = c * CHUNK;
        let mut wd = vec![0f64; deltas.len()];
        for (k, o) in o.iter_mut().enumerate() {
            let i = start + k;
            let b = base[i];
            for ((wd, d), &w) in wd.iter_mut().zip(&deltas).zip(&weights) {
                let d = match d {
                    Delta::Raw(x) => x[i] - b,
                    Delta::Owned(v) => v[i],
                };
                *wd = w * d as f64;
            }
            let (mixed, div) = if consensus {
                let majority_pos = wd.iter().sum::<f64>() >= 0.0;
                let (mut mixed, mut div) = (0f64, 0f64);
                for (&v, &w) in wd.iter().zip(&weights) {
                    if (majority_pos && v > 0.0) || (!majority_pos && v < 0.0) {
                        mixed += v;
                        div += w;
                    }
                }
                (mixed, if div == 0.0 { 1.0 } else { div })
            } else {
                (wd.iter().sum::<f64>(), linear_div)
            };
            let mixed = if normalize { mixed / div } else { mixed };
            *o = (b as f64 + mixed * lambda) as f32;
        }
    });
    Ok(out)
}
