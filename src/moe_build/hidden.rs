//! `gate_mode: hidden` (mergekit/moe/router.py `get_hidden_states`, `average=False`): the
//! base model is run on each prompt by our inference core; for every layer the input of the
//! layer (transformers' `hidden_states[:-1]`: the embeddings, then each block's output but
//! the last) at the prompt's last token is taken, averaged over the prompts. mergekit batches
//! the prompts left-padded with masked padding, so each prompt's last token sees only that
//! prompt (RoPE depends on relative positions only): running each prompt alone is the same.
//! Negative prompts' average is subtracted, then each layer's vector is L2-normalised
//! (clamped at 1e-8) in `get_gate_params`.
//!
//! mergekit loads the model in bfloat16 for this; the core computes in f32 (weights as stored).

use std::sync::{Arc, Mutex};

use super::MoeError;
use crate::infer::{layer_input_name, InferModel, MatmulObserver};
use crate::pipeline::Input;

/// Keeps the last token's row of every layer's input.
struct LastRows {
    names: Vec<String>,
    rows: Mutex<Vec<Vec<f32>>>,
}

impl MatmulObserver for LastRows {
    fn wants(&self, weight: &str, _n_tokens: usize) -> bool {
        self.names.iter().any(|n| n == weight)
    }
    fn observe(&self, weight: &str, x: &[f32], n_tokens: usize, k: usize) {
        if let Some(il) = self.names.iter().position(|n| n == weight) {
            let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
            rows[il] = x[(n_tokens - 1) * k..n_tokens * k].to_vec();
        }
    }
}

fn err(reason: String) -> MoeError {
    MoeError::Gates { mode: "hidden", reason }
}

/// Per layer, the mean over `prompts` of the last token's layer input (`n_layer × n_embd`).
fn mean_last_states(
    model: &mut InferModel<'_>,
    n_layer: usize,
    d: usize,
    prompts: &[Vec<u32>],
) -> Result<Vec<Vec<f32>>, MoeError> {
    let obs = Arc::new(LastRows {
        names: (0..n_layer).map(layer_input_name).collect(),
        rows: Mutex::new(vec![Vec::new(); n_layer]),
    });
    model.set_observer(Some(obs.clone()));
    let mut sum = vec![vec![0f64; d]; n_layer];
    for ids in prompts {
        let mut kv = model.new_cache(ids.len());
        model.forward_from(ids, &mut kv, 0, ids.len()).map_err(|e| err(e.to_string()))?;
        let rows = obs.rows.lock().unwrap_or_else(|e| e.into_inner());
        for (s, r) in sum.iter_mut().zip(rows.iter()) {
            if r.len() != d {
                return Err(err("the core showed no layer input".into()));
            }
            s.iter_mut().zip(r).for_each(|(a, &b)| *a += b as f64);
        }
    }
    model.set_observer(None);
    let n = prompts.len().max(1) as f64;
    Ok(sum.into_iter().map(|s| s.into_iter().map(|x| (x / n) as f32).collect()).collect())
}

/// The routers of `hidden` mode: one `n_expert × n_embd` matrix per layer.
pub fn hidden_routers(
    base: Input<'_>,
    n_layer: usize,
    d: usize,
    prompts: &super::gates::Prompts,
) -> Result<Vec<Vec<f32>>, MoeError> {
    let mut model = InferModel::from_source(base.stage.metadata, base.stage.tensors).map_err(|e| err(e.to_string()))?;
    let mut layers = vec![Vec::with_capacity(prompts.len() * d); n_layer];
    for (pos, neg) in prompts {
        let mut v = mean_last_states(&mut model, n_layer, d, pos)?;
        if !neg.is_empty() {
            let n = mean_last_states(&mut model, n_layer, d, neg)?;
            for (a, b) in v.iter_mut().zip(&n) {
                a.iter_mut().zip(b).for_each(|(x, y)| *x -= y);
            }
        }
        for (layer, mut row) in layers.iter_mut().zip(v) {
            super::gates::normalize(&mut row);
            layer.extend(row);
        }
    }
    Ok(layers)
}
