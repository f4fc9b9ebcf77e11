//! `nuslerp`: slerp of two models with t = w₁/(w₀+w₁) (0.5 when |w₀+w₁| < 1e-6), on the
//! task vectors when a base is given (result base + nuslerp(t, m₀−base, m₁−base)), per row,
//! per column or on the flattened tensor.
//! mergekit `merge_methods/nuslerp.py` `NuSlerpTask.execute` and `nuslerp()`:
//! - `nuslerp_flatten` (default true): one vector of all elements; otherwise vectors along the
//!   last axis, or along axis 0 with `nuslerp_row_wise` (default false; mergekit transposes
//!   dim 0 with the last one);
//! - unit vectors x/max(‖x‖, 1e-7), cos θ = Σ u₀u₁ clamped to [−1, 1], θ = acos;
//! - (sin((1−t)θ)·v₀ + sin(tθ)·v₁)/sin θ on the unnormalized vectors, lerp where 1 − cos²θ ≤ (1e-8)².

use rayon::prelude::*;

use super::{GlobalParams, MergeError, MergeMethod, TensorInputs};

const NORM_EPS: f64 = 1e-7;
const SIN_EPS: f64 = 1e-8;

pub(crate) fn merge(inputs: &TensorInputs, global: &GlobalParams) -> Result<Vec<f32>, MergeError> {
    let method = MergeMethod::Nuslerp;
    let base = inputs.base_data();
    let others: Vec<_> = inputs.others().collect();
    if others.is_empty() {
        if let Some(b) = base {
            return Ok(b.to_vec());
        }
    }
    if others.len() == 1 && base.is_none() {
        return Ok(others[0].1.data.to_vec()); // a single tensor: mergekit returns it
    }
    if others.len() != 2 {
        return Err(MergeError::ModelCount {
            tensor: inputs.name.into(),
            method: method.name(),
            expected: "exactly two models (plus an optional base model)",
            found: others.len(),
        });
    }
    let w0 = inputs.weight(method, others[0].0)?;
    let w1 = inputs.weight(method, others[1].0)?;
    let t = if (w0 + w1).abs() < 1e-6 { 0.5 } else { w1 / (w0 + w1) };
    let flatten = global.nuslerp_flatten.unwrap_or(true);
    let row_wise = global.nuslerp_row_wise.unwrap_or(false);
    let (a, b) = (others[0].1.data, others[1].1.data);
    let n = a.len();
    let layout = Layout::new(inputs.shape, n, flatten, row_wise);
    Ok(match base {
        Some(base) => {
            let da: Vec<f32> = a.iter().zip(base).map(|(x, y)| x - y).collect();
            let db: Vec<f32> = b.iter().zip(base).map(|(x, y)| x - y).collect();
            let delta = nuslerp(t, &da, &db, &layout);
            // base + delta: mergekit adds in the tensor dtype; we add in f64 and round once.
            delta.par_iter().zip(base.par_iter()).map(|(&d, &b)| (b as f64 + d) as f32).collect()
        }
        None => nuslerp(t, a, b, &layout).into_iter().map(|x| x as f32).collect(),
    })
}

/// The vectors nuslerp interpolates: `count` of them, element k of vector r at
/// `outer(r)·len·stride + k·stride + inner(r)`.
pub(crate) struct Layout {
    /// Elements per vector.
    len: usize,
    /// Distance between consecutive elements of one vector.
    stride: usize,
    count: usize,
}

impl Layout {
    fn new(shape: &[usize], n: usize, flatten: bool, row_wise: bool) -> Self {
        if flatten || shape.len() <= 1 {
            return Layout { len: n, stride: 1, count: usize::from(n > 0) };
        }
        if row_wise {
            // along axis 0: vector r = elements r, r+R, r+2R, … with R = prod(shape[1..]).
            let r = shape[1..].iter().product::<usize>();
            Layout { len: shape[0], stride: r, count: r }
        } else {
            let len = shape[shape.len() - 1];
            Layout { len, stride: 1, count: n.checked_div(len).unwrap_or(0) }
        }
    }

    fn index(&self, r: usize, k: usize) -> usize {
        if self.stride == 1 {
            r * self.len + k
        } else {
            k * self.stride + r
        }
    }
}

/// mergekit's `nuslerp(t, v0, v1)`; result in f64 (the caller rounds).
fn nuslerp(t: f64, v0: &[f32], v1: &[f32], layout: &Layout) -> Vec<f64> {
    let coeffs: Vec<(f64, f64)> = (0..layout.count)
        .into_par_iter()
        .map(|r| {
            let (mut s00, mut s11, mut s01) = (0f64, 0f64, 0f64);
            for k in 0..layout.len {
                let i = layout.index(r, k);
                let (p, q) = (v0[i] as f64, v1[i] as f64);
                s00 += p * p;
                s11 += q * q;
                s01 += p * q;
            }
            let cos = (s01 / (s00.sqrt().max(NORM_EPS) * s11.sqrt().max(NORM_EPS))).clamp(-1.0, 1.0);
            // mergekit ≥ 0.1.5: colinear when 1 − cos² ≤ eps² (i.e. |sin θ| ≤ 1e-8).
            if 1.0 - cos * cos <= SIN_EPS * SIN_EPS {
                (1.0 - t, t)
            } else {
                let theta = cos.acos();
                let sin = theta.sin();
                (((1.0 - t) * theta).sin() / sin, (t * theta).sin() / sin)
            }
        })
        .collect();
    let mut out = vec![0f64; v0.len()];
    if layout.stride == 1 && layout.len > 0 {
        out.par_chunks_mut(layout.len).zip(coeffs.par_iter()).enumerate().for_each(|(r, (o, &(c0, c1)))| {
            for (k, o) in o.iter_mut().enumerate() {
                let i = r * layout.len + k;
                *o = c0 * v0[i] as f64 + c1 * v1[i] as f64;
            }
        });
    } else {
        // column vectors: element i belongs to vector i % stride.
        out.par_iter_mut().enumerate().for_each(|(i, o)| {
            let (c0, c1) = coeffs[i % layout.stride];
            *o = c0 * v0[i] as f64 + c1 * v1[i] as f64;
        });
    }
    out
}
