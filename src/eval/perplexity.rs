//! Perplexity exactly as llama.cpp's `llama-perplexity` computes it (tools/perplexity/
//! perplexity.cpp, `perplexity()`): the token stream is cut into non-overlapping windows of
//! `n_ctx` tokens (a partial tail is dropped), the cache is cleared per window, the first
//! token of each window is replaced by BOS when the model adds one, and the second half of
//! each window is scored: the logits at positions n_ctx/2 … n_ctx-2 predict the tokens at
//! n_ctx/2+1 … n_ctx-1 (255 tokens per 512-window). PPL = exp(mean NLL); the ± is
//! PPL · sqrt((E[nll²] − E[nll]²) / (N − 1)).

use llmtool_kernels::vexp;
use rayon::prelude::*;

use crate::infer::{InferError, InferModel, KvCache};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(
        "the text has {n_tokens} tokens; perplexity with a context of {n_ctx} needs at least {need} (two windows)"
    )]
    TooShort { n_tokens: usize, n_ctx: usize, need: usize },
    #[error("context {n_ctx} is larger than the model's training context {n_ctx_train}")]
    ContextTooLarge { n_ctx: usize, n_ctx_train: usize },
    #[error("context {0} is too small (at least 4 tokens: half of it is scored)")]
    ContextTooSmall(usize),
    #[error("batch size {batch} must be between 1 and the context {n_ctx}, or a multiple of the context (whole windows per pass)")]
    BadBatch { batch: usize, n_ctx: usize },
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("KL divergence base: {0}")]
    Base(String),
    #[error("KL divergence base {path}: {source}")]
    BaseIo { path: std::path::PathBuf, source: std::io::Error },
}

/// How to cut and run the windows.
#[derive(Debug, Clone)]
pub struct PplOptions {
    pub n_ctx: usize,
    /// At most this many windows (None: all).
    pub n_chunks: Option<usize>,
    /// Tokens per forward call: 1..=n_ctx (positions continue within a window), or a
    /// multiple of n_ctx: that many whole windows per pass (llama.cpp's n_seq = n_batch / n_ctx),
    /// for perplexity; other evaluations run such a batch one window per pass.
    pub batch: usize,
    /// The BOS id written over each window's first token (the model's add_bos), if any.
    pub bos: Option<u32>,
}

/// What one window contributed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChunkStat {
    /// 1-based window index.
    pub chunk: usize,
    /// PPL over all windows so far (llama.cpp's `[i]` values).
    pub running_ppl: f64,
    /// Seconds this window took.
    pub seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PplResult {
    pub ppl: f64,
    pub ppl_uncertainty: f64,
    pub n_ctx: usize,
    pub n_chunks: usize,
    /// Tokens scored (n_chunks · (n_ctx − 1 − n_ctx/2)).
    pub n_scored: usize,
    /// Tokens evaluated (n_chunks · n_ctx).
    pub n_evaluated: usize,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub chunks: Vec<ChunkStat>,
}

/// Running sums of negative log-likelihoods.
#[derive(Debug, Clone, Copy, Default)]
pub struct NllSums {
    pub nll: f64,
    pub nll2: f64,
    pub count: usize,
}

impl NllSums {
    pub fn add(&mut self, v: f64) {
        self.nll += v;
        self.nll2 += v * v;
        self.count += 1;
    }

    pub fn ppl(&self) -> f64 {
        (self.nll / self.count as f64).exp()
    }

    /// llama.cpp's ± : PPL · sqrt(var(nll) / (N − 1)).
    pub fn ppl_uncertainty(&self) -> f64 {
        let n = self.count as f64;
        let mean = self.nll / n;
        let var = self.nll2 / n - mean * mean;
        if var > 0.0 && self.count > 1 {
            (var / (n - 1.0)).sqrt() * self.ppl()
        } else {
            0.0
        }
    }
}

/// −log softmax(logits)[tok], as perplexity.cpp's `log_softmax`: f32 max, Σ expf(l − max)
/// accumulated in f64 (vectorized exp, `vexp::sum_exp_sub`).
pub fn nll_of(logits: &[f32], tok: u32) -> f64 {
    let max = vexp::max(logits);
    let sum = vexp::sum_exp_sub(logits, max);
    -((logits[tok as usize] - max) as f64 - sum.ln())
}

/// The geometry checks shared by perplexity and KL divergence; returns the window count.
pub fn plan(model: &InferModel, n_tokens: usize, opts: &PplOptions) -> Result<usize, EvalError> {
    let n_ctx = opts.n_ctx;
    if n_ctx < 4 {
        return Err(EvalError::ContextTooSmall(n_ctx));
    }
    if n_ctx > model.cfg.n_ctx_train {
        return Err(EvalError::ContextTooLarge { n_ctx, n_ctx_train: model.cfg.n_ctx_train });
    }
    if opts.batch == 0 || (opts.batch > n_ctx && !opts.batch.is_multiple_of(n_ctx)) {
        return Err(EvalError::BadBatch { batch: opts.batch, n_ctx });
    }
    if n_tokens < 2 * n_ctx {
        return Err(EvalError::TooShort { n_tokens, n_ctx, need: 2 * n_ctx });
    }
    let max = n_tokens / n_ctx;
    Ok(opts.n_chunks.map_or(max, |c| c.clamp(1, max)))
}

/// The tokens of windows `i..i + count`, each one's first token replaced by the BOS (if any).
fn window_tokens(tokens: &[u32], i: usize, count: usize, opts: &PplOptions) -> Vec<u32> {
    let n_ctx = opts.n_ctx;
    let mut wins = tokens[i * n_ctx..(i + count) * n_ctx].to_vec();
    if let Some(bos) = opts.bos {
        wins.iter_mut().step_by(n_ctx).for_each(|t| *t = bos);
    }
    wins
}

/// Runs window `i` and writes into `logits` (cleared first; its memory is reused across
/// windows) the logits of positions `from` … n_ctx−2 (`(n_ctx − 1 − from) × n_vocab`).
pub fn window_logits_into(
    model: &InferModel,
    kv: &mut KvCache,
    tokens: &[u32],
    i: usize,
    opts: &PplOptions,
    from: usize,
    logits: &mut Vec<f32>,
) -> Result<(), EvalError> {
    let n_ctx = opts.n_ctx;
    let first = from.min(n_ctx - 1);
    let win = window_tokens(tokens, i, 1, opts);
    kv.clear();
    let n_vocab = model.cfg.n_vocab;
    logits.clear();
    let mut pos = 0;
    while pos < n_ctx {
        let end = (pos + opts.batch).min(n_ctx);
        // Only positions >= first need logits; the last position's logits predict nothing.
        let want_end = end.min(n_ctx - 1);
        if want_end <= first {
            model.forward_from(&win[pos..end], kv, pos, end - pos)?;
        } else {
            let from = first.saturating_sub(pos);
            let start = logits.len();
            model.forward_append(&win[pos..end], kv, pos, from, logits)?;
            logits.truncate(start + (want_end - (pos + from)) * n_vocab);
        }
        pos = end;
    }
    Ok(())
}

/// Windows `i..i + kvs.len()` in one forward pass (one cache each), into `logits`: each
/// window's rows for positions `from` … n_ctx−2, one window after the other. One cache runs
/// [`window_logits_into`] (batches within the window).
pub fn windows_logits_into(
    model: &InferModel,
    kvs: &mut [KvCache],
    tokens: &[u32],
    i: usize,
    opts: &PplOptions,
    from: usize,
    logits: &mut Vec<f32>,
) -> Result<(), EvalError> {
    if let [kv] = kvs {
        return window_logits_into(model, kv, tokens, i, opts, from, logits);
    }
    let (n_ctx, n_vocab) = (opts.n_ctx, model.cfg.n_vocab);
    let first = from.min(n_ctx - 1);
    let wins = window_tokens(tokens, i, kvs.len(), opts);
    kvs.iter_mut().for_each(KvCache::clear);
    logits.clear();
    model.forward_seqs_append(&wins, kvs, 0, first, logits)?;
    // Each window returned rows first..n_ctx; its last row predicts nothing.
    let (got, keep) = ((n_ctx - first) * n_vocab, (n_ctx - 1 - first) * n_vocab);
    for w in 1..kvs.len() {
        logits.copy_within(w * got..w * got + keep, w * keep);
    }
    logits.truncate(kvs.len() * keep);
    Ok(())
}

/// Computes the perplexity of `tokens`; `on_chunk` sees each window's running value.
pub fn perplexity(
    model: &InferModel,
    tokens: &[u32],
    opts: &PplOptions,
    on_chunk: impl FnMut(&ChunkStat),
) -> Result<PplResult, EvalError> {
    perplexity_from(model, tokens, opts, opts.n_ctx / 2, on_chunk)
}

/// [`perplexity`], with the output projection run from position `logits_from` of each
/// window on (at most n_ctx/2, the first scored position) — 0 when something observes it.
pub fn perplexity_from(
    model: &InferModel,
    tokens: &[u32],
    opts: &PplOptions,
    logits_from: usize,
    mut on_chunk: impl FnMut(&ChunkStat),
) -> Result<PplResult, EvalError> {
    let n_chunks = plan(model, tokens.len(), opts)?;
    let logits_from = logits_from.min(opts.n_ctx / 2);
    let n_ctx = opts.n_ctx;
    let first = n_ctx / 2;
    let n_vocab = model.cfg.n_vocab;
    // Windows per pass: a batch of whole windows runs them together.
    let per_pass = if opts.batch > n_ctx { opts.batch / n_ctx } else { 1 }.min(n_chunks);
    let mut kvs: Vec<KvCache> = (0..per_pass).map(|_| model.new_cache(n_ctx)).collect();
    let mut sums = NllSums::default();
    let mut chunks = Vec::with_capacity(n_chunks);
    let t0 = std::time::Instant::now();
    let mut logits = Vec::new();
    let rows = (n_ctx - 1 - logits_from) * n_vocab;
    let mut i = 0;
    while i < n_chunks {
        let tc = std::time::Instant::now();
        let count = per_pass.min(n_chunks - i);
        windows_logits_into(model, &mut kvs[..count], tokens, i, opts, logits_from, &mut logits)?;
        let seconds = tc.elapsed().as_secs_f64() / count as f64;
        for (w, window) in logits.chunks_exact(rows).enumerate() {
            let scored = &window[(first - logits_from) * n_vocab..];
            let targets = &tokens[(i + w) * n_ctx + first + 1..(i + w + 1) * n_ctx];
            let nlls: Vec<f64> =
                scored.par_chunks_exact(n_vocab).zip(targets.par_iter()).map(|(row, &t)| nll_of(row, t)).collect();
            nlls.iter().for_each(|&v| sums.add(v));
            let stat = ChunkStat { chunk: i + w + 1, running_ppl: sums.ppl(), seconds };
            on_chunk(&stat);
            chunks.push(stat);
        }
        i += count;
    }
    let seconds = t0.elapsed().as_secs_f64();
    Ok(PplResult {
        ppl: sums.ppl(),
        ppl_uncertainty: sums.ppl_uncertainty(),
        n_ctx,
        n_chunks,
        n_scored: sums.count,
        n_evaluated: n_chunks * n_ctx,
        seconds,
        tokens_per_second: (n_chunks * n_ctx) as f64 / seconds.max(1e-9),
        chunks,
    })
}
