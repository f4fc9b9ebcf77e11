//! The Mixture-of-Experts feed-forward block (Mixtral, Qwen2-MoE, Qwen3-MoE), after llama.cpp
//! `llm_graph_context::build_moe_ffn` and transformers' `*SparseMoeBlock`s:
//!
//! ```text
//! p = softmax(h·Wrouterᵀ)                      over all experts (f32)
//! S = the n_used experts of largest p          (top-k)
//! w_e = p_e for e in S [/ Σ_S p: norm_topk]     Mixtral and Qwen3-MoE renormalise (= softmax over
//!                                               the top-k logits), Qwen2-MoE does not (norm_topk_prob)
//! y = Σ_{e∈S} w_e · down_e(silu(gate_e(h)) ⊙ up_e(h))
//! [Qwen2-MoE: y += sigmoid(h·w_shexp_gate) · down_s(silu(gate_s(h)) ⊙ up_s(h))]
//! ```
//!
//! The experts are the 3-D `ffn_{gate,up,down}_exps` tensors (ne = [k, rows, n_expert]); each
//! expert's matrix is its contiguous slice of the stored bytes, multiplied by the same
//! quantized kernels as any other weight ([`super::linear::matmul`]) — nothing is dequantized
//! as a whole. Tokens are grouped per expert so each expert's matrices run once per batch.

use std::borrow::Cow;

use llmtool_formats::{GgmlType, TensorSource};

use super::config::MoeConfig;
use super::linear::Weight;
use super::{ops, InferError};

/// A stack of `n_expert` matrices `rows × k` as stored (GGUF ne = [k, rows, n_expert]).
pub(super) struct Stacked<'a> {
    name: String,
    ty: GgmlType,
    rows: usize,
    k: usize,
    n_expert: usize,
    bytes: Cow<'a, [u8]>,
}

impl<'a> Stacked<'a> {
    /// Loads `name` and checks its shape is `[k, rows, n_expert]`.
    pub fn load(
        src: &'a dyn TensorSource,
        name: &str,
        k: usize,
        rows: usize,
        n_expert: usize,
    ) -> Result<Self, InferError> {
        let info = src.tensor_info(name).ok_or_else(|| InferError::MissingTensor(name.into()))?;
        let expected = vec![k as u64, rows as u64, n_expert as u64];
        if info.ne != expected {
            return Err(InferError::Shape { name: name.into(), expected, found: info.ne.clone() });
        }
        let row_bytes =
            info.ty.row_bytes(k as u64).filter(|_| info.ty.block_size() > 0 && k.is_multiple_of(info.ty.block_size()));
        if row_bytes.is_none() || !llmtool_kernels::convert::can_decode(info.ty) {
            return Err(InferError::TensorType { name: name.into(), ty: info.ty });
        }
        let bytes = src.tensor_bytes(name)?;
        let want = row_bytes.unwrap_or(0) * (rows * n_expert) as u64;
        if bytes.len() as u64 != want {
            return Err(InferError::Shape { name: name.into(), expected: vec![want], found: vec![bytes.len() as u64] });
        }
        Ok(Stacked { name: name.into(), ty: info.ty, rows, k, n_expert, bytes })
    }

    /// Expert `e`'s matrix: a view of its slice of the stored bytes.
    pub fn expert(&self, e: usize) -> Weight<'_> {
        let len = self.bytes.len() / self.n_expert;
        Weight {
            name: self.name.clone(),
            ty: self.ty,
            rows: self.rows,
            k: self.k,
            bytes: Cow::Borrowed(&self.bytes[e * len..(e + 1) * len]),
        }
    }
}

/// Qwen2-MoE's shared expert: a dense gated FFN scaled by sigmoid(h · gate_inp).
pub(super) struct SharedExpert<'a> {
    pub gate: Weight<'a>,
    pub up: Weight<'a>,
    pub down: Weight<'a>,
    /// `ffn_gate_inp_shexp` [n_embd].
    pub gate_inp: Vec<f32>,
}

pub(super) struct MoeFfn<'a> {
    pub router: Weight<'a>, // [n_embd → n_expert], `ffn_gate_inp`
    pub gate: Stacked<'a>,  // [n_embd → n_ff_exp] × n_expert
    pub up: Stacked<'a>,
    pub down: Stacked<'a>, // [n_ff_exp → n_embd] × n_expert
    pub shared: Option<SharedExpert<'a>>,
}

/// A matrix product as the model runs it (timing, observer).
pub(super) type Mm<'m> = dyn Fn(&Weight<'_>, &[f32], usize, &mut [f32]) -> Result<(), InferError> + 'm;

impl<'a> MoeFfn<'a> {
    /// Loads layer `il`'s block (`blk.{il}.ffn_*`), checking every shape.
    pub fn load(src: &'a dyn TensorSource, il: usize, d: usize, m: &MoeConfig) -> Result<Self, InferError> {
        let n = |s: &str| format!("blk.{il}.{s}");
        let (ne, ff) = (m.n_expert, m.n_ff_exp);
        // llama.cpp's Mixtral GGUFs from before the stacking (early 2024) hold 2-D experts.
        if src.tensor_info(&n("ffn_gate_exps.weight")).is_none() && src.tensor_info(&n("ffn_gate.0.weight")).is_some() {
            return Err(InferError::Unsupported {
                what: "MoE layout",
                detail: format!(
                    "{} is one expert's 2-D tensor (llama.cpp's layout before it stacked experts into \
                     {}); convert the model again from its HF checkpoint",
                    n("ffn_gate.0.weight"),
                    n("ffn_gate_exps.weight")
                ),
            });
        }
        let shared = match m.n_ff_shexp {
            None => None,
            Some(fs) => Some(SharedExpert {
                gate: Weight::load(src, &n("ffn_gate_shexp.weight"), d, fs)?,
                up: Weight::load(src, &n("ffn_up_shexp.weight"), d, fs)?,
                down: Weight::load(src, &n("ffn_down_shexp.weight"), fs, d)?,
                gate_inp: Weight::load(src, &n("ffn_gate_inp_shexp.weight"), d, 1)?.to_f32_vec()?,
            }),
        };
        Ok(MoeFfn {
            router: Weight::load(src, &n("ffn_gate_inp.weight"), d, ne)?,
            gate: Stacked::load(src, &n("ffn_gate_exps.weight"), d, ff, ne)?,
            up: Stacked::load(src, &n("ffn_up_exps.weight"), d, ff, ne)?,
            down: Stacked::load(src, &n("ffn_down_exps.weight"), ff, d, ne)?,
            shared,
        })
    }

    /// out[t] = the block's output for h[t] (`h`, `out`: n × d). `mm` runs (and shows the
    /// observer) the router's and shared expert's products, `mm_expert` the experts', whose
    /// inputs go to `observer` per expert.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        m: &MoeConfig,
        mm: &Mm<'_>,
        mm_expert: &Mm<'_>,
        observer: Option<&dyn super::MatmulObserver>,
        h: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> Result<(), InferError> {
        let d = self.down.rows;
        let ff = m.n_ff_exp;
        let mut logits = vec![0.0f32; n * m.n_expert];
        mm(&self.router, h, n, &mut logits)?;
        // per expert: the tokens routed to it and their weights
        let mut assigned: Vec<Vec<(usize, f32)>> = vec![Vec::new(); m.n_expert];
        for (t, row) in logits.chunks_exact(m.n_expert).enumerate() {
            for (e, w) in route(row, m.n_used, m.norm_topk) {
                assigned[e].push((t, w));
            }
        }
        out.iter_mut().for_each(|v| *v = 0.0);
        for (e, toks) in assigned.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
            let c = toks.len();
            let mut x = Vec::with_capacity(c * d);
            for &(t, _) in toks {
                x.extend_from_slice(&h[t * d..(t + 1) * d]);
            }
            let (mut g, mut u, mut y) = (vec![0.0f32; c * ff], vec![0.0f32; c * ff], vec![0.0f32; c * d]);
            if let Some(o) = observer {
                o.observe_expert(&self.gate.name, e, m.n_expert, &x, c, d);
                o.observe_expert(&self.up.name, e, m.n_expert, &x, c, d);
            }
            mm_expert(&self.gate.expert(e), &x, c, &mut g)?;
            mm_expert(&self.up.expert(e), &x, c, &mut u)?;
            ops::swiglu_in_place(&mut g, &u);
            if let Some(o) = observer {
                o.observe_expert(&self.down.name, e, m.n_expert, &g, c, ff);
            }
            mm_expert(&self.down.expert(e), &g, c, &mut y)?;
            for (&(t, w), yr) in toks.iter().zip(y.chunks_exact(d)) {
                for (o, v) in out[t * d..(t + 1) * d].iter_mut().zip(yr) {
                    *o += w * v;
                }
            }
        }
        if let Some(s) = &self.shared {
            let fs = s.gate.rows;
            let (mut g, mut u, mut y) = (vec![0.0f32; n * fs], vec![0.0f32; n * fs], vec![0.0f32; n * d]);
            mm(&s.gate, h, n, &mut g)?;
            mm(&s.up, h, n, &mut u)?;
            ops::swiglu_in_place(&mut g, &u);
            mm(&s.down, &g, n, &mut y)?;
            for t in 0..n {
                let z: f32 = h[t * d..(t + 1) * d].iter().zip(&s.gate_inp).map(|(a, b)| a * b).sum();
                let gate = 1.0 / (1.0 + (-z).exp());
                for (o, v) in out[t * d..(t + 1) * d].iter_mut().zip(&y[t * d..(t + 1) * d]) {
                    *o += gate * v;
                }
            }
        }
        Ok(())
    }
}

/// The experts one token goes to and their weights: softmax over all router logits, the
/// `n_used` largest probabilities (ties: the lower index, as torch.topk and ggml's argsort
/// keep), renormalised to sum 1 when `norm`.
pub fn route(logits: &[f32], n_used: usize, norm: bool) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let mut sel: Vec<(usize, f32)> = order[..n_used].iter().map(|&e| (e, exps[e] / sum)).collect();
    if norm {
        let s: f32 = sel.iter().map(|(_, w)| w).sum();
        sel.iter_mut().for_each(|(_, w)| *w /= s);
    }
    sel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_softmax_then_top_k_with_or_without_renormalisation() {
        let logits = [0.0f32, 2.0, 1.0, -1.0];
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        let plain = route(&logits, 2, false);
        assert_eq!(plain.iter().map(|(e, _)| *e).collect::<Vec<_>>(), [1, 2]);
        assert!((plain[0].1 - 2f32.exp() / z).abs() < 1e-7);
        assert!((plain[1].1 - 1f32.exp() / z).abs() < 1e-7);
        // renormalised = softmax over the top-k logits (Mixtral's formulation)
        let norm = route(&logits, 2, true);
        let z2 = 2f32.exp() + 1f32.exp();
        assert!((norm[0].1 - 2f32.exp() / z2).abs() < 1e-7);
        assert!((norm[0].1 + norm[1].1 - 1.0).abs() < 1e-6);
        // ties go to the lower index
        assert_eq!(route(&[1.0, 1.0, 1.0], 1, true)[0].0, 0);
    }
}
