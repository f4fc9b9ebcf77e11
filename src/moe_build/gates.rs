//! Router weights, as mergekit-moe's `get_gate_params` (mergekit/moe/router.py) makes them:
//! one `[n_expert × n_embd]` matrix per layer (row e routes to expert e).
//!
//! - `cheap_embed` (`get_cheap_embedding`): the sum of the token embeddings of all of an
//!   expert's positive prompts (each tokenized as `bos_token + prompt` without other special
//!   tokens, `tokenize_prompts`), divided by its L2 norm (clamped at 1e-8); with negative
//!   prompts, their vector (same recipe) is subtracted and the result normalised again. The
//!   same vector in every layer.
//! - `hidden`: the base model's hidden states, by our core (`hidden.rs`).
//! - `random`: `torch.randn((n_layer, n_expert, n_embd))` after `torch.manual_seed(seed)`.
//! - `uniform_random`: `torch.rand(...) * 2 * scale - scale`, `scale = sqrt(1 / n_embd)`.

use super::config::{GateMode, MoeConfig};
use super::inputs::{tensor_f32, MoeInputs};
use super::torch_rng;
use super::MoeError;
use crate::tokenizer::Tokenizer;

/// Every prompt of every gated expert ([`MoeConfig::gated`]) as token ids (`[bos] + prompt`), positive then negative;
/// a prompt giving no tokens of its own is an error (checked before anything is computed).
pub type Prompts = Vec<(Vec<Vec<u32>>, Vec<Vec<u32>>)>;

/// Empty for the random modes, which use no prompts.
pub fn tokenize_prompts(cfg: &MoeConfig, inputs: &MoeInputs) -> Result<Prompts, MoeError> {
    if !cfg.gate_mode.needs_prompts() {
        return Ok(Vec::new());
    }
    let vocab =
        Tokenizer::from_gguf_metadata(inputs.base.stage.metadata).map_err(|e| MoeError::Tokenizer(e.to_string()))?;
    let encode = |expert: usize, p: &String| -> Result<Vec<u32>, MoeError> {
        let ids = vocab.encode(p, false, true).map_err(|e| MoeError::Tokenizer(e.to_string()))?;
        if ids.is_empty() {
            return Err(MoeError::EmptyPrompt { expert, prompt: p.clone() });
        }
        Ok(vocab.bos().into_iter().chain(ids).collect())
    };
    cfg.gated()
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let pos = e.positive_prompts.iter().flatten().map(|p| encode(i, p)).collect::<Result<_, _>>()?;
            let neg = e.negative_prompts.iter().flatten().map(|p| encode(i, p)).collect::<Result<_, _>>()?;
            Ok((pos, neg))
        })
        .collect()
}

/// `v / max(|v|, 1e-8)`.
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt().max(1e-8) as f32;
    v.iter_mut().for_each(|x| *x /= norm);
}

/// `get_cheap_embedding` of a set of prompts: the normalised sum of their token embeddings.
fn cheap_embedding(embed: &[f32], n_embd: usize, prompts: &[Vec<u32>]) -> Result<Vec<f32>, MoeError> {
    let mut sum = vec![0f64; n_embd];
    for &id in prompts.iter().flatten() {
        let row = embed.get(id as usize * n_embd..(id as usize + 1) * n_embd).ok_or_else(|| MoeError::Gates {
            mode: "cheap_embed",
            reason: format!("token {id} is outside the embedding matrix"),
        })?;
        sum.iter_mut().zip(row).for_each(|(s, &x)| *s += x as f64);
    }
    let mut v: Vec<f32> = sum.into_iter().map(|x| x as f32).collect();
    normalize(&mut v);
    Ok(v)
}

/// The router matrices, one per layer (`n_gated × n_embd`, row-major; the shared expert's
/// gate, when there is one, is the last row).
pub fn router_weights(
    cfg: &MoeConfig,
    inputs: &MoeInputs,
    prompts: &Prompts,
    seed: u64,
) -> Result<Vec<Vec<f32>>, MoeError> {
    let (n_layer, n_expert, d) = (inputs.n_layer as usize, cfg.gated().len(), inputs.n_embd as usize);
    let per_layer = |flat: Vec<f32>| flat.chunks_exact(n_expert * d).map(<[f32]>::to_vec).collect();
    match cfg.gate_mode {
        GateMode::Random => {
            let flat = torch_rng::randn(seed, n_layer * n_expert * d)
                .ok_or_else(|| MoeError::Gates { mode: "random", reason: "fewer than 16 router weights".into() })?;
            Ok(per_layer(flat))
        }
        GateMode::UniformRandom => {
            let scale = (1.0f64 / d as f64).sqrt() as f32;
            let flat = torch_rng::rand(seed, n_layer * n_expert * d).into_iter().map(|u| u * 2.0 * scale - scale);
            Ok(per_layer(flat.collect()))
        }
        GateMode::CheapEmbed => {
            let embed = tensor_f32(inputs.base, "token_embd.weight")?;
            let mut layer = Vec::with_capacity(n_expert * d);
            for (pos, neg) in prompts {
                let mut v = cheap_embedding(&embed, d, pos)?;
                if !neg.is_empty() {
                    let n = cheap_embedding(&embed, d, neg)?;
                    v.iter_mut().zip(&n).for_each(|(a, b)| *a -= b);
                }
                normalize(&mut v);
                layer.extend(v);
            }
            Ok(vec![layer; n_layer])
        }
        GateMode::Hidden => super::hidden::hidden_routers(inputs.base, n_layer, d, prompts),
    }
}

/// The layers whose router is degenerate as mergekit's `warn_degenerate_gates` judges it:
/// `torch.linalg.cond(gates) > 5` (largest over smallest singular value); such a layer's
/// prompts are too similar and some experts will be underused. A matrix the SVD cannot
/// factor counts as degenerate.
pub fn degenerate_layers(routers: &[Vec<f32>], d: usize) -> Vec<usize> {
    const THRESHOLD: f64 = 5.0;
    let cond = |r: &[f32]| -> f64 {
        let rows = r.len() / d.max(1);
        let m = faer::Mat::<f64>::from_fn(rows, d, |i, j| r[i * d + j] as f64);
        let Ok(svd) = m.thin_svd() else { return f64::INFINITY };
        let s: Vec<f64> = svd.S().column_vector().iter().copied().collect();
        let (max, min) = s.iter().fold((0f64, f64::INFINITY), |(a, b), &x| (a.max(x), b.min(x)));
        if min > 0.0 {
            max / min
        } else {
            f64::INFINITY
        }
    };
    routers.iter().enumerate().filter(|(_, r)| cond(r) > THRESHOLD).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_router_rows_are_degenerate() {
        // orthonormal rows: cond 1; nearly parallel rows: cond far above 5
        let ortho = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let parallel = vec![1.0, 0.0, 0.0, 1.0, 0.01, 0.0];
        assert_eq!(degenerate_layers(&[ortho, parallel], 3), vec![1]);
    }
}
