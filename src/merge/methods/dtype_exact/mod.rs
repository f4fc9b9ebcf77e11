//! `--arithmetic dtype`: mergekit 0.1.5's merge run in the config's `dtype` the way torch's
//! CPU kernels compute it, so that a published `dtype: float16`/`bfloat16` merge is reproduced
//! bit for bit (the default, [`super::merge_tensor`], computes in f64 and rounds once: more
//! accurate, and within one f16/bf16 step of mergekit).
//!
//! How torch 2.15 computes on CPU, as this module follows it (checked against mergekit's own
//! outputs, `fixtures/merge/mergekit_runs`):
//! - an element-wise op on f16/bf16 tensors converts to f32, computes, rounds to the dtype
//!   (round to nearest even) — one rounding per op ([`Dtype::round`]); a Python-float operand
//!   (`x * lambda`) enters as f32 (`opmath_t`), not rounded to the dtype;
//! - `sum(dim=0)` over the stacked models adds them in order in f32 and rounds once
//!   (aten `SumKernel.cpp`, outer reduction with `OuterSumCastLoadPolicy`);
//! - `sort`/`argsort` is libstdc++'s `std::sort` ([`std_sort`]);
//! - f32 `addcmul_` (linear) is contracted to a fused multiply-add by the compiler
//!   (`self + t1 * t2` in one rounding).
//!
//! Methods whose math needs whole-tensor reductions (norms, dot products, L1 sums) — slerp,
//! nuslerp, model_stock, `rescale: true` — are refused ([`unsupported`]): torch sums those with
//! a cascade whose order depends on the CPU's vector width and splits tensors above 32768
//! elements across its threads (so mergekit's own result changes with the machine), and
//! slerp's sin/acos are SLEEF's vectorized f32 functions. DARE and DELLA draw torch's random
//! masks, which no other program reproduces.

mod linear;
pub mod std_sort;
mod task_arithmetic;

use super::{GlobalParams, MergeError, MergeMethod, TensorInputs};

/// How a merge computes (`llmtool merge --arithmetic`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Arithmetic {
    /// f64 math, rounded once to f32 (more accurate than mergekit).
    #[default]
    F32,
    /// mergekit's per-operation rounding in the config's `dtype` (bit-identical outputs).
    Dtype,
}

/// The merge dtype (mergekit's `dtype:`): what every op rounds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    /// `x` (an f32 result) rounded to the dtype, as torch stores it.
    #[inline]
    pub fn round(self, x: f32) -> f32 {
        match self {
            Dtype::F32 => x,
            Dtype::F16 => half::f16::from_f32(x).to_f32(),
            Dtype::Bf16 => half::bf16::from_f32(x).to_f32(),
        }
    }

    /// A Python float made a dtype tensor (`torch.tensor([w], dtype=…)`): one rounding from f64.
    pub fn round_f64(self, x: f64) -> f32 {
        match self {
            Dtype::F32 => x as f32,
            Dtype::F16 => half::f16::from_f64(x).to_f32(),
            Dtype::Bf16 => half::bf16::from_f64(x).to_f32(),
        }
    }
}

/// Why `method` cannot be reproduced bit for bit (None: it can).
pub fn unsupported(method: MergeMethod) -> Option<&'static str> {
    match method {
        MergeMethod::Linear
        | MergeMethod::TaskArithmetic
        | MergeMethod::Ties
        | MergeMethod::Breadcrumbs
        | MergeMethod::BreadcrumbsTies
        | MergeMethod::Passthrough => None,
        MergeMethod::DareTies | MergeMethod::DareLinear | MergeMethod::Della | MergeMethod::DellaLinear => {
            Some("its masks are drawn by torch's random generator")
        }
        MergeMethod::Slerp | MergeMethod::Nuslerp | MergeMethod::ModelStock => Some(
            "its norms and dot products are whole-tensor torch reductions, summed in an order that depends on \
             the CPU's vector width and thread count, and its sin/acos are SLEEF's",
        ),
    }
}

/// Merges one tensor as mergekit does in `dtype`. Inputs must already hold `dtype` values
/// (the plan rounds them, as mergekit's loader casts them).
pub fn merge_tensor_dtype(
    method: MergeMethod,
    inputs: &TensorInputs,
    global: &GlobalParams,
    dtype: Dtype,
) -> Result<Vec<f32>, MergeError> {
    super::check_sizes(inputs)?;
    if let Some(why) = unsupported(method) {
        return Err(not_exact(inputs, method, why));
    }
    match method {
        MergeMethod::Linear => linear::merge(inputs, global, dtype),
        // the tensor itself: `scale` is applied by the caller (one f32 multiply, one rounding).
        MergeMethod::Passthrough => super::passthrough::merge(inputs, &GlobalParams::default()),
        _ => task_arithmetic::merge(method, inputs, global, dtype),
    }
}

pub(crate) fn not_exact(inputs: &TensorInputs, method: MergeMethod, why: &str) -> MergeError {
    MergeError::NotReproducible { tensor: inputs.name.into(), method: method.name(), why: why.into() }
}

/// torch's f32 sum of a short contiguous row (`sum(dim=-1)` of < 8 values, aten
/// `SumKernel.cpp` `row_sum`): four interleaved partial sums, the leftovers added to the
/// first, then the partials in order. None for longer rows (a vectorized cascade).
pub(crate) fn short_row_sum(v: &[f32]) -> Option<f32> {
    if v.len() >= 8 {
        return None;
    }
    let mut p = [0f32; 4];
    let full = v.len() / 4 * 4;
    for (i, &x) in v[..full].iter().enumerate() {
        p[i % 4] += x;
    }
    for &x in &v[full..] {
        p[0] += x;
    }
    Some(p[0] + p[1] + p[2] + p[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(Dtype::F16.round(0.1), half::f16::from_f32(0.1).to_f32());
        assert_eq!(Dtype::Bf16.round(1.0 + 1.0 / 256.0), 1.0); // tie to even
        assert_eq!(Dtype::F32.round(0.1), 0.1);
    }

    #[test]
    fn short_sums_pair_like_torch() {
        // five values: ((v0 + v4) + v1) + v2 + v3, not left to right
        let v = [1e8f32, 1.0, 1.0, 1.0, -1e8];
        assert_eq!(short_row_sum(&v), Some(3.0));
        assert_eq!(short_row_sum(&[0.5, 0.25]), Some(0.75));
        assert_eq!(short_row_sum(&[0.0; 8]), None);
    }
}
