//! `slerp`: spherical interpolation between the base (t = 0) and the other model (t = 1).
//! mergekit `merge_methods/slerp.py` `SlerpTask.execute` and `slerp()`: both tensors flattened
//! and normalized (only when the norm exceeds eps = 1e-8), dot product of the directions; when
//! |dot| > DOT_THRESHOLD = 0.9995 the vectors are nearly colinear and plain lerp
//! (1−t)·v0 + t·v1 is used; otherwise θ₀ = acos(dot), s0 = sin(θ₀−tθ₀)/sin θ₀,
//! s1 = sin(tθ₀)/sin θ₀ and the result s0·v0 + s1·v1 of the unnormalized tensors.

use rayon::prelude::*;

use super::{GlobalParams, MergeError, MergeMethod, TensorInputs, CHUNK};

pub(crate) const DOT_THRESHOLD: f64 = 0.9995;
pub(crate) const EPS: f64 = 1e-8;

pub(crate) fn merge(inputs: &TensorInputs, global: &GlobalParams) -> Result<Vec<f32>, MergeError> {
    let method = MergeMethod::Slerp;
    let base = inputs.need_base(method)?;
    let others: Vec<_> = inputs.others().collect();
    let other = match others.as_slice() {
        [] => return Ok(base.to_vec()), // only the base: mergekit returns it
        [(_, m)] => m.data,
        _ => {
            return Err(MergeError::ModelCount {
                tensor: inputs.name.into(),
                method: method.name(),
                expected: "exactly two models (the base and one other)",
                found: others.len() + 1,
            })
        }
    };
    let t = global.t.ok_or_else(|| MergeError::MissingGlobalParam {
        tensor: inputs.name.into(),
        method: method.name(),
        param: "t",
    })?;
    Ok(slerp(t, base, other))
}

/// (Σa², Σb², Σab) in f64, in parallel chunks.
pub(crate) fn dots(a: &[f32], b: &[f32]) -> (f64, f64, f64) {
    a.par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .map(|(x, y)| {
            let mut s = (0f64, 0f64, 0f64);
            for (&p, &q) in x.iter().zip(y) {
                let (p, q) = (p as f64, q as f64);
                s.0 += p * p;
                s.1 += q * q;
                s.2 += p * q;
            }
            s
        })
        .reduce(|| (0.0, 0.0, 0.0), |u, v| (u.0 + v.0, u.1 + v.1, u.2 + v.2))
}

/// mergekit's `slerp(t, v0, v1)` on whole (flattened) tensors.
pub fn slerp(t: f64, v0: &[f32], v1: &[f32]) -> Vec<f32> {
    let (s00, s11, s01) = dots(v0, v1);
    let n0 = s00.sqrt();
    let n1 = s11.sqrt();
    // normalize() divides only when the norm exceeds eps.
    let d0 = if n0 > EPS { n0 } else { 1.0 };
    let d1 = if n1 > EPS { n1 } else { 1.0 };
    let dot = s01 / (d0 * d1);
    let (c0, c1) = if dot.abs() > DOT_THRESHOLD {
        (1.0 - t, t)
    } else {
        let theta0 = dot.acos();
        let sin0 = theta0.sin();
        let theta_t = theta0 * t;
        ((theta0 - theta_t).sin() / sin0, theta_t.sin() / sin0)
    };
    combine(c0, v0, c1, v1)
}

/// c0·a + c1·b element-wise, rounded to f32.
pub(crate) fn combine(c0: f64, a: &[f32], c1: f64, b: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((o, x), y)| {
        for ((o, &p), &q) in o.iter_mut().zip(x).zip(y) {
            *o = (c0 * p as f64 + c1 * q as f64) as f32;
        }
    });
    out
}
