//! The importance matrix, computed on the core as llama.cpp's `llama-imatrix` computes it
//! (tools/imatrix/imatrix.cpp `IMatrixCollector::collect_imatrix`, `compute_imatrix`): for
//! every matrix product with a layer weight (`blk.*`; `output.weight` too with
//! `process_output`) over at least 16 tokens, the sum over tokens of each input column's
//! square, and the number of tokens. The text is cut into windows exactly as for perplexity
//! (BOS over each window's first token, the cache cleared per window), every token of a
//! window goes through the model, and the perplexity of the windows is reported alongside.
//!
//! Mixture of Experts: the stacked expert weights (`MUL_MAT_ID` in llama.cpp) are collected
//! per expert whatever the row count — `n_cols × n_expert` sums and one count per expert, each
//! (token, expert) routing counting once.
//!
//! Sums are accumulated in f64 (llama.cpp: f32) and stored as f32.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use llmtool_formats::imatrix::{Imatrix, ImatrixEntry};

use super::perplexity::{perplexity_from, ChunkStat, EvalError, PplOptions, PplResult};
use crate::infer::{InferModel, MatmulObserver};

/// llama-imatrix ignores products over fewer tokens ("why are small batches ignored (<16
/// tokens)?" in its source).
const MIN_TOKENS: usize = 16;

/// One weight's statistics: Σx² per column (per expert, experts one after the other) and the
/// token count (per expert).
type Stat = (Vec<f64>, Vec<u64>);

/// Accumulates Σx² per input column and token counts per weight.
#[derive(Default)]
pub struct ImatrixCollector {
    process_output: bool,
    stats: Mutex<BTreeMap<String, Stat>>,
}

impl ImatrixCollector {
    pub fn new(process_output: bool) -> Self {
        ImatrixCollector { process_output, stats: Mutex::default() }
    }

    /// The collected statistics as an [`Imatrix`].
    pub fn to_imatrix(&self, datasets: Vec<String>, chunk_count: u32, chunk_size: u32) -> Imatrix {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let entries = stats
            .iter()
            .map(|(name, (sums, counts))| {
                let e = ImatrixEntry {
                    sums: sums.iter().map(|&s| s as f32).collect(),
                    counts: counts.iter().map(|&c| c as i64).collect(),
                };
                (name.clone(), e)
            })
            .collect();
        Imatrix { entries, datasets, chunk_count, chunk_size, is_legacy: false }
    }
}

impl MatmulObserver for ImatrixCollector {
    fn wants(&self, weight: &str, n_tokens: usize) -> bool {
        n_tokens >= MIN_TOKENS && (weight.starts_with("blk.") || (self.process_output && weight == "output.weight"))
    }

    fn observe(&self, weight: &str, x: &[f32], n_tokens: usize, k: usize) {
        // Column sums of squares outside the lock (the products of one forward run in order).
        let col = column_sq_sums(x, n_tokens, k);
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let (sums, counts) = stats.entry(weight.to_string()).or_insert_with(|| (vec![0.0; k], vec![0]));
        if sums.len() == k {
            sums.iter_mut().zip(&col).for_each(|(s, c)| *s += c);
            counts[0] += n_tokens as u64;
        }
    }

    fn observe_expert(&self, weight: &str, expert: usize, n_expert: usize, x: &[f32], n_rows: usize, k: usize) {
        let col = column_sq_sums(x, n_rows, k);
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let (sums, counts) =
            stats.entry(weight.to_string()).or_insert_with(|| (vec![0.0; k * n_expert], vec![0; n_expert]));
        if sums.len() == k * n_expert && expert < n_expert {
            sums[expert * k..(expert + 1) * k].iter_mut().zip(&col).for_each(|(s, c)| *s += c);
            counts[expert] += n_rows as u64;
        }
    }
}

/// Σ over the first `n` rows of `x` (`k` wide) of each column's square.
fn column_sq_sums(x: &[f32], n: usize, k: usize) -> Vec<f64> {
    let mut col = vec![0f64; k];
    for row in x.chunks_exact(k).take(n) {
        for (c, &v) in col.iter_mut().zip(row) {
            *c += v as f64 * v as f64;
        }
    }
    col
}

/// Runs the windows of `tokens` through `model` with `collector` observing every product;
/// returns the perplexity of the windows (scored as `perplexity` scores them).
pub fn compute_imatrix(
    model: &mut InferModel,
    collector: Arc<ImatrixCollector>,
    tokens: &[u32],
    opts: &PplOptions,
    on_chunk: impl FnMut(&ChunkStat),
) -> Result<PplResult, EvalError> {
    // The output product runs over every token only when it is observed (llama-imatrix asks
    // for all logits); otherwise only the scored half needs it.
    let logits_from = if collector.process_output { 0 } else { opts.n_ctx / 2 };
    model.set_observer(Some(collector));
    let r = perplexity_from(model, tokens, opts, logits_from, on_chunk);
    model.set_observer(None);
    r
}
