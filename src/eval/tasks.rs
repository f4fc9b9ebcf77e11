//! Multiple-choice tasks scored by log-likelihood, the way EleutherAI's lm-evaluation-harness
//! scores `multiple_choice` tasks (lm_eval/api/task.py `process_results`, lm_eval/models/
//! huggingface.py `_encode_pair` / `_loglikelihood_tokens`):
//!
//! - continuation = delimiter + choice; trailing whitespace of the context moves to the front
//!   of the continuation (`_encode_pair`);
//! - context tokens = tokens(context); continuation tokens = tokens(context + continuation)
//!   [len(context tokens)..] — the model sees context tokens ++ continuation tokens, so a
//!   token that would merge across the boundary is counted in the continuation;
//! - tokens are encoded without special tokens, then BOS is prepended when the model's
//!   tokenizer adds one (llama.cpp's `add_bos`, as our perplexity does; lm-eval's HF backend
//!   adds none by default except for Gemma). An empty context becomes [BOS] (else [EOS]),
//!   lm-eval's `prefix_token_id`;
//! - loglik(choice) = Σ log softmax(logits)[token] over the continuation tokens;
//!   `acc`: argmax loglik == label; `acc_norm`: argmax loglik / len(choice) == label, where
//!   len is the choice's length in characters (Unicode scalar values, Python's `len(str)`),
//!   without the delimiter; ties go to the first choice (`np.argmax`);
//! - ± is the standard error of the mean, sample standard deviation / √n (lm-eval `mean_stderr`).
//!
//! The context of an item runs once through the KV cache; each choice then runs from the
//! cached context (later choices overwrite the earlier continuation's positions). Items are
//! spread over the rayon pool, one cache per worker.

mod file;
mod lm_eval;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

pub use file::{TaskItem, TaskSet, BUILTIN_NLI, MAX_CHOICES, MAX_FILE_BYTES};

use crate::eval::perplexity::nll_of;
use crate::infer::{InferError, InferModel};
use crate::tokenizer::{Tokenizer, TokenizerError};

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {size} bytes exceed the cap of {cap} bytes for a task file", path.display())]
    FileTooLarge { path: PathBuf, size: u64, cap: u64 },
    #[error("{}: not valid UTF-8 (invalid byte sequence at byte offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{}:{line}: {}{msg}", path.display(), if key.is_empty() { String::new() } else { format!("key {key}: ") })]
    Line { path: PathBuf, line: usize, key: String, msg: String },
    #[error("{}: no items", path.display())]
    Empty { path: PathBuf },
    #[error("{}:{line}: choice {choice} adds no token to the context (its text merges into the context's last token)", path.display())]
    EmptyContinuation { path: PathBuf, line: usize, choice: usize },
    #[error("{}:{line}: {tokens} tokens (context + longest choice) exceed the model's context of {n_ctx}", path.display())]
    TooLong { path: PathBuf, line: usize, tokens: usize, n_ctx: usize },
    #[error("the tokenizer has neither BOS nor EOS to stand for an empty context ({}:{line})", path.display())]
    NoPrefixToken { path: PathBuf, line: usize },
    #[error("{}:{line}: tokenizing: {source}", path.display())]
    Tokenize { path: PathBuf, line: usize, source: TokenizerError },
    #[error("{}:{line}: {source}", path.display())]
    Infer { path: PathBuf, line: usize, source: Box<InferError> },
}

/// How to run the tasks.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    /// Score at most the first N items of each task.
    pub limit: Option<usize>,
}

/// What the model said about one item.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemResult {
    /// 1-based line in the task file.
    pub line: usize,
    pub label: usize,
    /// Σ log p(continuation tokens | context), per choice.
    pub loglik: Vec<f64>,
    /// Per choice: every continuation token was the argmax of its logits.
    pub is_greedy: Vec<bool>,
    /// Continuation tokens per choice.
    pub n_tokens: Vec<usize>,
    /// argmax loglik.
    pub pred: usize,
    /// argmax loglik / characters.
    pub pred_norm: usize,
}

impl ItemResult {
    /// Probability of the gold choice among the choices: softmax over `loglik`. A smooth
    /// alternative to accuracy (e.g. as a search fitness).
    pub fn p_gold(&self) -> f64 {
        let max = self.loglik.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = self.loglik.iter().map(|l| (l - max).exp()).sum();
        (self.loglik[self.label] - max).exp() / sum
    }
}

/// A mean over items and its standard error.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Metric {
    pub value: f64,
    pub stderr: f64,
}

impl Metric {
    /// Mean and sample standard deviation / √n (0 for fewer than two values).
    pub fn of(values: impl Iterator<Item = f64> + Clone) -> Metric {
        let n = values.clone().count();
        if n == 0 {
            return Metric { value: 0.0, stderr: 0.0 };
        }
        let mean = values.clone().sum::<f64>() / n as f64;
        let stderr = if n > 1 {
            let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        } else {
            0.0
        };
        Metric { value: mean, stderr }
    }
}

/// The aggregate of a set of items.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scores {
    pub n: usize,
    pub acc: Metric,
    pub acc_norm: Metric,
    /// Mean probability of the gold choice among the choices ([`ItemResult::p_gold`]).
    pub p_gold: Metric,
}

impl Scores {
    pub fn of(items: &[&ItemResult]) -> Scores {
        let it = || items.iter();
        Scores {
            n: items.len(),
            acc: Metric::of(it().map(|r| (r.pred == r.label) as u8 as f64)),
            acc_norm: Metric::of(it().map(|r| (r.pred_norm == r.label) as u8 as f64)),
            p_gold: Metric::of(it().map(|r| r.p_gold())),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskResult {
    pub name: String,
    pub path: PathBuf,
    #[serde(flatten)]
    pub scores: Scores,
    #[serde(skip)]
    pub items: Vec<ItemResult>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskReport {
    pub tasks: Vec<TaskResult>,
    /// All items of all tasks pooled (lm-eval's size-weighted group mean).
    pub overall: Scores,
    /// Forward tokens run (contexts once, continuations per choice).
    pub tokens_evaluated: usize,
    pub seconds: f64,
    pub items_per_second: f64,
}

/// An item ready to run: token ids and where it came from.
struct Encoded {
    task: usize,
    line: usize,
    label: usize,
    ctx: Vec<u32>,
    conts: Vec<Vec<u32>>,
    chars: Vec<usize>,
}

impl Encoded {
    fn len(&self) -> usize {
        self.ctx.len() + self.conts.iter().map(Vec::len).max().unwrap_or(0)
    }
}

/// lm-eval `_encode_pair`: (context tokens, continuation tokens) of each choice.
fn encode_item(tok: &Tokenizer, set: &TaskSet, task: usize, item: &TaskItem) -> Result<Encoded, TaskError> {
    let terr = |source| TaskError::Tokenize { path: set.path.clone(), line: item.line, source };
    let trimmed = item.context.trim_end();
    let moved = &item.context[trimmed.len()..];
    let bos: Vec<u32> = if tok.add_bos() { tok.bos().into_iter().collect() } else { Vec::new() };
    let enc = |s: &str| -> Result<Vec<u32>, TaskError> {
        let mut v = bos.clone();
        v.extend(tok.encode(s, false, false).map_err(terr)?);
        Ok(v)
    };
    let mut ctx = enc(trimmed)?;
    let mut conts = Vec::with_capacity(item.choices.len());
    if ctx.is_empty() {
        // Nothing to condition on: lm-eval's prefix token.
        let prefix = tok
            .bos()
            .or_else(|| tok.eos())
            .ok_or_else(|| TaskError::NoPrefixToken { path: set.path.clone(), line: item.line })?;
        ctx.push(prefix);
        for c in &item.choices {
            conts.push(tok.encode(&format!("{moved}{}{c}", set.delimiter), false, false).map_err(terr)?);
        }
    } else {
        for c in &item.choices {
            let whole = enc(&format!("{trimmed}{moved}{}{c}", set.delimiter))?;
            conts.push(whole.get(ctx.len()..).unwrap_or(&[]).to_vec());
        }
    }
    if let Some(choice) = conts.iter().position(Vec::is_empty) {
        return Err(TaskError::EmptyContinuation { path: set.path.clone(), line: item.line, choice });
    }
    Ok(Encoded {
        task,
        line: item.line,
        label: item.label,
        ctx,
        conts,
        chars: item.choices.iter().map(|c| c.chars().count()).collect(),
    })
}

/// First index of the maximum (`np.argmax`).
fn argmax(v: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in v.enumerate() {
        if x > best.1 || i == 0 {
            best = (i, x);
        }
    }
    best.0
}

/// Scores one encoded item with `kv` (capacity ≥ `e.len()`).
fn score_item(
    model: &InferModel,
    kv: &mut crate::infer::KvCache,
    e: &Encoded,
    path: &std::path::Path,
) -> Result<ItemResult, TaskError> {
    let ierr = |source| TaskError::Infer { path: path.to_path_buf(), line: e.line, source: Box::new(source) };
    let nv = model.cfg.n_vocab;
    kv.clear();
    let n = e.ctx.len();
    // The last context position's logits predict every choice's first token.
    let last = model.forward_from(&e.ctx, kv, 0, n - 1).map_err(ierr)?;
    let mut loglik = Vec::with_capacity(e.conts.len());
    let mut is_greedy = Vec::with_capacity(e.conts.len());
    for cont in &e.conts {
        let rest =
            if cont.len() > 1 { model.forward(&cont[..cont.len() - 1], kv, n).map_err(ierr)? } else { Vec::new() };
        let (mut ll, mut greedy) = (0.0f64, true);
        for (row, &t) in std::iter::once(&last[..]).chain(rest.chunks_exact(nv)).zip(cont) {
            ll -= nll_of(row, t);
            greedy &= argmax(row.iter().map(|&x| x as f64)) == t as usize;
        }
        loglik.push(ll);
        is_greedy.push(greedy);
    }
    let pred = argmax(loglik.iter().copied());
    let pred_norm = argmax(loglik.iter().zip(&e.chars).map(|(l, &c)| l / c as f64));
    Ok(ItemResult {
        line: e.line,
        label: e.label,
        loglik,
        is_greedy,
        n_tokens: e.conts.iter().map(Vec::len).collect(),
        pred,
        pred_norm,
    })
}

/// Scores every task; see the module docs for the method.
pub fn evaluate_tasks(
    model: &InferModel,
    tok: &Tokenizer,
    tasks: &[TaskSet],
    opts: &TaskOptions,
) -> Result<TaskReport, TaskError> {
    evaluate_tasks_with_progress(model, tok, tasks, opts, |_, _| {})
}

/// [`evaluate_tasks`], calling `progress(done, total)` after each item (from worker threads).
pub fn evaluate_tasks_with_progress(
    model: &InferModel,
    tok: &Tokenizer,
    tasks: &[TaskSet],
    opts: &TaskOptions,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<TaskReport, TaskError> {
    let t0 = std::time::Instant::now();
    let work: Vec<(usize, &TaskItem)> = tasks
        .iter()
        .enumerate()
        .flat_map(|(ti, s)| s.items.iter().take(opts.limit.unwrap_or(usize::MAX)).map(move |it| (ti, it)))
        .collect();
    let encoded: Vec<Encoded> =
        work.par_iter().map(|&(ti, it)| encode_item(tok, &tasks[ti], ti, it)).collect::<Result<_, _>>()?;
    let n_ctx = model.cfg.n_ctx_train;
    if let Some(e) = encoded.iter().find(|e| e.len() > n_ctx) {
        return Err(TaskError::TooLong { path: tasks[e.task].path.clone(), line: e.line, tokens: e.len(), n_ctx });
    }
    let cap = encoded.iter().map(Encoded::len).max().unwrap_or(1);
    let total = encoded.len();
    let done = AtomicUsize::new(0);
    let results: Vec<ItemResult> = encoded
        .par_iter()
        .map_init(
            || model.new_cache(cap),
            |kv, e| {
                let r = score_item(model, kv, e, &tasks[e.task].path);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                r
            },
        )
        .collect::<Result<_, _>>()?;
    let tokens_evaluated =
        encoded.iter().map(|e| e.ctx.len() + e.conts.iter().map(|c| c.len() - 1).sum::<usize>()).sum();

    let mut per_task: Vec<Vec<ItemResult>> = vec![Vec::new(); tasks.len()];
    for (e, r) in encoded.iter().zip(results) {
        per_task[e.task].push(r);
    }
    let all: Vec<&ItemResult> = per_task.iter().flatten().collect();
    let overall = Scores::of(&all);
    let task_results = tasks
        .iter()
        .zip(per_task)
        .map(|(s, items)| TaskResult {
            name: s.name.clone(),
            path: s.path.clone(),
            scores: Scores::of(&items.iter().collect::<Vec<_>>()),
            items,
        })
        .collect();
    let seconds = t0.elapsed().as_secs_f64();
    Ok(TaskReport {
        tasks: task_results,
        overall,
        tokens_evaluated,
        seconds,
        items_per_second: total as f64 / seconds.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_is_mean_and_sample_stderr() {
        // values 1,0,1,1: mean 0.75, sample var = (3·0.0625 + 0.5625)/3 = 0.25, stderr √(0.25/4)
        let m = Metric::of([1.0, 0.0, 1.0, 1.0].into_iter());
        assert_eq!(m.value, 0.75);
        assert!((m.stderr - 0.25).abs() < 1e-15);
        assert_eq!(Metric::of([0.5].into_iter()), Metric { value: 0.5, stderr: 0.0 });
    }

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax([1.0, 3.0, 3.0].into_iter()), 1);
        assert_eq!(argmax([f64::NEG_INFINITY, f64::NEG_INFINITY].into_iter()), 0);
        assert_eq!(argmax([-5.0, -2.0, -9.0].into_iter()), 1);
    }

    #[test]
    fn p_gold_is_softmax_over_choices() {
        let r = ItemResult {
            line: 1,
            label: 1,
            loglik: vec![(0.25f64).ln(), (0.5f64).ln(), (0.25f64).ln()],
            is_greedy: vec![false; 3],
            n_tokens: vec![1; 3],
            pred: 1,
            pred_norm: 1,
        };
        assert!((r.p_gold() - 0.5).abs() < 1e-12);
    }
}
