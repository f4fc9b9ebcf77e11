//! The deterministic task arithmetic methods (task_arithmetic, ties, breadcrumbs,
//! breadcrumbs_ties) as mergekit 0.1.5 computes them in the dtype
//! (`merge_methods/generalized_task_arithmetic.py` `merge_group`, `get_mask`;
//! `sparsify.py` `magnitude`, `magnitude_outliers`), one rounding per torch op:
//!
//! 1. δᵢ = round(xᵢ − base); sparsified by a mask from torch's `argsort`/`sort` of |δᵢ|
//!    ([`super::std_sort`]): `magnitude` keeps the first k = max(1, ⌊density·n⌋) of the
//!    descending order, `magnitude_outliers` positions n_bot..n_bot+⌊density·n⌋ of the ascending
//!    one (masking multiplies by 0/1: exact);
//! 2. the weights become a dtype tensor (rounded), δᵢ ← round(wᵢ·δᵢ);
//! 3. TIES sign consensus: s = round(Σ δᵢ) (f32 sum, one rounding), majority + where s ≥ 0; δᵢ is
//!    kept when sign(δᵢ) equals it (a zero δᵢ never does); mixed = round(Σ kept δᵢ),
//!    divisor = round(Σ kept wᵢ), 0 → 1. Otherwise mixed = round(Σ δᵢ), divisor = round(Σ wᵢ)
//!    (summed in torch's `row_sum` order; |divisor| < 1e-8 → 1);
//! 4. `normalize`: mixed ← round(mixed / divisor); `lambda` ≠ 1: mixed ← round(mixed · f32(λ));
//! 5. round(base + mixed).

use rayon::prelude::*;

use super::{not_exact, short_row_sum, std_sort, Dtype};
use crate::merge::methods::sparsify::{magnitude_keep, outlier_range};
use crate::merge::methods::{par_elementwise, GlobalParams, MergeError, MergeMethod, TensorInputs};

/// Models summed over the stacked axis in plain order: torch's outer reduction adds up to
/// 16 rows in one accumulator before its cascade levels start.
const MAX_MODELS: usize = 15;

pub(super) fn merge(
    method: MergeMethod,
    inputs: &TensorInputs,
    global: &GlobalParams,
    dtype: Dtype,
) -> Result<Vec<f32>, MergeError> {
    // (consensus, sparsification: None / magnitude / outliers, default normalize) from
    // mergekit's registry; none of these rescales by default.
    let (consensus, outliers, magnitude, default_normalize) = match method {
        MergeMethod::TaskArithmetic => (false, false, false, false),
        MergeMethod::Ties => (true, false, true, true),
        MergeMethod::Breadcrumbs => (false, true, false, false),
        MergeMethod::BreadcrumbsTies => (true, true, false, false),
        _ => return Err(not_exact(inputs, method, "not a deterministic task arithmetic method")),
    };
    if global.rescale == Some(true) && (magnitude || outliers) {
        return Err(not_exact(
            inputs,
            method,
            "`rescale: true` (its L1 norms are whole-tensor torch reductions, summed in an order that depends on \
             the CPU)",
        ));
    }
    let base = inputs.need_base(method)?;
    let others: Vec<_> = inputs.others().collect();
    if others.is_empty() {
        return Ok(base.to_vec());
    }
    if others.len() > MAX_MODELS {
        return Err(not_exact(inputs, method, "more than 15 models (torch's cascade sum over the models)"));
    }
    let n = base.len();
    if others.len() >= 4 && n % 8 != 0 {
        // torch's outer sum runs 8 f32 lanes (AVX2) and adds the last n % 8 elements with its
        // scalar `row_sum`, which pairs four or more rows differently.
        return Err(not_exact(inputs, method, "4 or more models on a tensor whose size is not a multiple of 8"));
    }
    let normalize = global.normalize.unwrap_or(default_normalize);
    let lambda = global.lambda.unwrap_or(1.0);

    let mut weights = Vec::with_capacity(others.len());
    let mut deltas: Vec<Vec<f32>> = Vec::with_capacity(others.len());
    for &(i, m) in &others {
        let w = dtype.round_f64(inputs.weight(method, i)?);
        weights.push(w);
        let mut d: Vec<f32> = m.data.par_iter().zip(base.par_iter()).map(|(&x, &b)| dtype.round(x - b)).collect();
        let density = m.params.density.unwrap_or(1.0);
        if density.is_nan() {
            return Err(MergeError::BadParam {
                tensor: inputs.name.into(),
                param: "density",
                value: density,
                whose: format!("model {i}"),
                why: "not a number".into(),
            });
        }
        if density < 1.0 && (magnitude || outliers) {
            let keep = if magnitude {
                if density <= 0.0 || n == 0 {
                    None
                } else {
                    let mags: Vec<f32> = d.iter().map(|x| x.abs()).collect();
                    Some(mask_of(n, &std_sort::argsort(&mags, true)[..magnitude_keep(n, density)]))
                }
            } else {
                let gamma = m.params.gamma.unwrap_or(0.01);
                let (lo, hi) = outlier_range(n, density, gamma);
                let mags: Vec<f32> = d.iter().map(|x| x.abs()).collect();
                Some(mask_of(n, &std_sort::argsort(&mags, false)[lo..hi]))
            };
            match keep {
                None => d.iter_mut().for_each(|x| *x = 0.0),
                // torch multiplies by the 0/1 mask: a dropped negative becomes −0.
                Some(k) => d.iter_mut().zip(&k).filter(|(_, &k)| !k).for_each(|(x, _)| *x *= 0.0),
            }
        }
        d.par_iter_mut().for_each(|x| *x = dtype.round(*x * w));
        deltas.push(d);
    }

    let sum = |vals: &mut dyn Iterator<Item = f32>| -> f32 { dtype.round(vals.fold(0f32, |a, v| a + v)) };
    // `weights.sum(dim=0)` of the [n, 1, …] weight tensor is a contiguous (inner) reduction:
    // torch's `row_sum` order, not the models' order.
    let plain_div = match short_row_sum(&weights).map(|d| dtype.round(d)) {
        Some(d) if d.abs() < 1e-8 => 1.0,
        Some(d) => d,
        None if consensus || !normalize => 1.0, // not used
        None => {
            return Err(not_exact(inputs, method, "normalize over more than 7 models (torch's vectorized sum)"));
        }
    };
    let lambda32 = lambda as f32;
    Ok(par_elementwise(n, |i| {
        let (mut mixed, div) = if consensus {
            let majority = if sum(&mut deltas.iter().map(|d| d[i])) >= 0.0 { 1.0 } else { -1.0 };
            let kept = |d: f32| d != 0.0 && d.signum() == majority;
            let mixed = sum(&mut deltas.iter().map(|d| if kept(d[i]) { d[i] } else { 0.0 }));
            let div = sum(&mut deltas.iter().zip(&weights).map(|(d, &w)| if kept(d[i]) { w } else { 0.0 }));
            (mixed, if div == 0.0 { 1.0 } else { div })
        } else {
            (sum(&mut deltas.iter().map(|d| d[i])), plain_div)
        };
        if normalize {
            mixed = dtype.round(mixed / div);
        }
        if lambda != 1.0 {
            mixed = dtype.round(mixed * lambda32);
        }
        dtype.round(base[i] + mixed)
    }))
}

fn mask_of(n: usize, kept: &[usize]) -> Vec<bool> {
    let mut m = vec![false; n];
    for &i in kept {
        m[i] = true;
    }
    m
}
