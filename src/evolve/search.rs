//! The search loop of `llmtool merge --evolve`: CMA-ES asks for λ genomes; each is decoded
//! to a mergekit configuration, merged in memory over one shared [`InputCache`] (inputs read
//! and dequantized once per run), run by the inference core and scored; CMA-ES is told
//! −fitness (it minimizes).
//!
//! Candidates are evaluated one after another, each using every core through rayon inside the
//! merge and the forward passes (on a 2-core machine parallel candidates would only compete
//! for the same cores and multiply the memory of the merged weights).
//!
//! After every generation the CMA-ES state and the history ([`super::state`]) are written to
//! `OUT_DIR/checkpoint.json` (temp file + rename), with `history.csv` and `fitness.svg`. A
//! resumed run restores that state and continues exactly as the uninterrupted run would
//! (CMA-ES state is bit-exact, evaluation is deterministic); a `max_seconds` budget counts
//! the time of earlier runs too.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::cmaes::{exact, CmaesError};
use super::config::{EvolveConfig, TaskMetric};
use super::genome::{decode, Decoded};
pub use super::state::{best_of, history_csv, HistoryRow, SearchState, CHECKPOINT};
use crate::eval::perplexity::{perplexity, PplOptions};
use crate::eval::tasks::{evaluate_tasks, TaskOptions, TaskSet};
use crate::infer::InferModel;
use crate::merge::config::MergeConfig;
use crate::merge::inputs::{InputCache, InputTensors};
use crate::merge::memory::merge_in_memory;
use crate::tokenizer::Tokenizer;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Config(#[from] super::config::EvolveConfigError),
    #[error("candidate configuration: {0}")]
    MergeConfig(#[from] crate::merge::config::ConfigError),
    #[error("merge: {0}")]
    Merge(#[from] crate::merge::error::MergeRunError),
    #[error("inference: {0}")]
    Infer(#[from] crate::infer::InferError),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error("task: {0}")]
    Task(#[from] crate::eval::tasks::TaskError),
    #[error("perplexity of {path}: {msg}")]
    Ppl { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Io { path: PathBuf, msg: String },
    #[error("CMA-ES: {0}")]
    Cmaes(#[from] CmaesError),
    #[error("tell: {0}")]
    Tell(String),
    #[error("genome has {found} values, expected {expected}")]
    GenomeLen { expected: usize, found: usize },
    #[error("{path}: checkpoint does not match this EVOLVE.yml ({what}); start without --resume or use a new OUT_DIR")]
    CheckpointMismatch { path: PathBuf, what: String },
}

/// One fitness term's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    /// acc / acc_norm, or perplexity.
    #[serde(with = "exact")]
    pub value: f64,
    /// What it adds to the fitness (weight · value, or weight · −ln PPL).
    #[serde(with = "exact")]
    pub contribution: f64,
}

/// The score of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Score {
    /// Σ contributions (higher is better); −inf for a failed candidate.
    #[serde(with = "exact")]
    pub fitness: f64,
    pub components: Vec<Component>,
}

/// The fitness inputs (texts tokenized once) and the input cache of a run.
pub struct Evaluator {
    pub cfg: EvolveConfig,
    pub cache: InputCache,
    pub n_layers: usize,
    pub merge_seed: u64,
    tok: Tokenizer,
    ppl: Vec<(PathBuf, f64, Vec<u32>)>,
    tasks: Vec<TaskSet>,
}

/// A candidate merged and scored.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub decoded: Decoded,
    pub score: Score,
    pub seconds: f64,
}

fn n_layers_of(md: &llmtool_formats::Metadata) -> Option<usize> {
    let arch = md.get_str("general.architecture")?;
    md.get_u64(&format!("{arch}.block_count")).map(|n| n as usize)
}

impl Evaluator {
    /// Loads every model once (dequantized to f32 in memory), reads and tokenizes the texts
    /// and task files. `merge_seed` seeds the random methods (DARE) as `llmtool merge --seed`.
    pub fn new(cfg: EvolveConfig, merge_seed: u64) -> Result<Self, SearchError> {
        // Any genome references every model; one group avoids needing the layer count yet.
        let mut one = cfg.clone();
        one.layer_groups = 1;
        one.search.x0 = None;
        let probe = decode(&one, &one.initial_genome(), 1);
        let mc = MergeConfig::parse(&probe.yaml, &cfg.origin)?;
        let cache = InputCache::load(&mc)?;
        let md = cache.metadata(0);
        let n_layers = n_layers_of(md).ok_or_else(|| SearchError::Io {
            path: cache.path(0).to_path_buf(),
            msg: "no <arch>.block_count in the metadata".into(),
        })?;
        if cfg.layer_groups > n_layers {
            return Err(SearchError::Config(super::config::EvolveConfigError::Invalid {
                origin: cfg.origin.clone(),
                key: "layer_groups".into(),
                reason: format!("{} groups for a model of {n_layers} layers", cfg.layer_groups),
            }));
        }
        let tok = Tokenizer::from_gguf_metadata(md)?;
        let need = cfg.eval.ctx * cfg.eval.chunks;
        let mut ppl = Vec::new();
        for t in &cfg.fitness.perplexity {
            let text = std::fs::read_to_string(&t.file)
                .map_err(|e| SearchError::Io { path: t.file.clone(), msg: e.to_string() })?;
            ppl.push((t.file.clone(), t.weight, tokenize_prefix(&tok, &text, need)?));
        }
        let tasks = cfg.fitness.tasks.iter().map(|t| TaskSet::read(&t.file)).collect::<Result<Vec<_>, _>>()?;
        Ok(Evaluator { cfg, cache, n_layers, merge_seed, tok, ppl, tasks })
    }

    /// The mergekit configuration of `genome`.
    pub fn decode(&self, genome: &[f64]) -> Result<(Decoded, MergeConfig), SearchError> {
        if genome.len() != self.cfg.genome_len() {
            return Err(SearchError::GenomeLen { expected: self.cfg.genome_len(), found: genome.len() });
        }
        let d = decode(&self.cfg, genome, self.n_layers);
        let mc = MergeConfig::parse(&d.yaml, "candidate")?;
        Ok((d, mc))
    }

    /// Scores a model (any tensor source) with the configured fitness terms.
    pub fn score(&self, model: &InferModel) -> Result<Score, SearchError> {
        let mut components = Vec::new();
        let bos = self.tok.bos().filter(|_| self.tok.add_bos());
        for (path, weight, tokens) in &self.ppl {
            let opts = PplOptions {
                n_ctx: self.cfg.eval.ctx,
                n_chunks: Some(self.cfg.eval.chunks),
                batch: self.cfg.eval.ctx,
                bos,
            };
            let r = perplexity(model, tokens, &opts, |_| {})
                .map_err(|e| SearchError::Ppl { path: path.clone(), msg: e.to_string() })?;
            let c = if r.ppl.is_finite() { -weight * r.ppl.ln() } else { f64::NEG_INFINITY };
            components.push(Component { name: format!("ppl:{}", file_name(path)), value: r.ppl, contribution: c });
        }
        for (term, set) in self.cfg.fitness.tasks.iter().zip(&self.tasks) {
            let rep = evaluate_tasks(model, &self.tok, std::slice::from_ref(set), &TaskOptions { limit: term.limit })?;
            let (label, v) = match term.metric {
                TaskMetric::Acc => ("acc", rep.overall.acc.value),
                TaskMetric::AccNorm => ("acc_norm", rep.overall.acc_norm.value),
            };
            components.push(Component {
                name: format!("{label}:{}", file_name(&term.file)),
                value: v,
                contribution: term.weight * v,
            });
        }
        let mut fitness: f64 = components.iter().map(|c| c.contribution).sum();
        if fitness.is_nan() {
            fitness = f64::NEG_INFINITY;
        }
        Ok(Score { fitness, components })
    }

    /// Decodes, merges in memory (each tensor computed once and kept by the model) and scores
    /// one genome.
    pub fn evaluate(&self, genome: &[f64]) -> Result<Evaluation, SearchError> {
        let t0 = Instant::now();
        let (decoded, mc) = self.decode(genome)?;
        let merged = merge_in_memory(&mc, &self.cache, self.merge_seed)?;
        let model = InferModel::from_source(&merged.metadata, merged.tensors.as_ref())?;
        let score = self.score(&model)?;
        Ok(Evaluation { decoded, score, seconds: t0.elapsed().as_secs_f64() })
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The first `need` tokens of `text` (with the tokenizer's BOS), tokenizing a prefix cut at a
/// line break when the text is long: the prefix is used only if a prefix twice as long gives
/// the same first `need` tokens.
fn tokenize_prefix(tok: &Tokenizer, text: &str, need: usize) -> Result<Vec<u32>, SearchError> {
    let cut = |n: usize| -> &str {
        let mut n = n.min(text.len());
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        &text[..text[..n].rfind('\n').map_or(n, |i| i + 1)]
    };
    let mut len = need.saturating_mul(8).max(4096);
    while len.saturating_mul(2) < text.len() {
        let short = tok.encode(cut(len), true, false)?;
        if short.len() > need + 64 {
            let long = tok.encode(cut(2 * len), true, false)?;
            if long.len() > need && long[..need] == short[..need] {
                return Ok(long[..need].to_vec());
            }
        }
        len *= 2;
    }
    Ok(tok.encode(text, true, false)?)
}

/// How the loop reports.
pub struct SearchOptions {
    pub resume: bool,
    pub quiet: bool,
    /// Stop after this many generations in this call (tests simulate an interruption).
    pub max_generations_this_run: Option<u64>,
}

/// Runs (or resumes) the search, checkpointing into `out_dir`; returns the final state.
pub fn run_search(ev: &Evaluator, out_dir: &Path, opts: &SearchOptions) -> Result<SearchState, SearchError> {
    std::fs::create_dir_all(out_dir).map_err(|e| SearchError::Io { path: out_dir.into(), msg: e.to_string() })?;
    let cfg = &ev.cfg;
    let mut state = SearchState::load_or_fresh(out_dir, cfg, opts.resume)?;
    // A state an external driver left between ask and tell: its pending candidates are
    // evaluated here (ask returns them again); the time since that ask is not counted.
    state.asked_at = None;
    let started = Instant::now();
    let elapsed0 = state.elapsed;
    let evals_start = state.cmaes.evaluations();
    let mut gens_this_run = 0u64;
    while !state.finished(cfg) && opts.max_generations_this_run.is_none_or(|m| gens_this_run < m) {
        let generation = state.cmaes.generation();
        let xs = state.cmaes.ask();
        let mut rows = Vec::with_capacity(xs.len());
        for (i, x) in xs.iter().enumerate() {
            rows.push(HistoryRow::new(generation, i, x, ev.evaluate(x)?));
            if !opts.quiet {
                let done = state.cmaes.evaluations() + i as u64 + 1;
                let run_secs = started.elapsed().as_secs_f64();
                let rate = (done - evals_start) as f64 / run_secs.max(1e-9);
                let best = best_of(state.history.iter().chain(&rows)).map_or(f64::NAN, |b| b.score.fitness);
                let eta = cfg
                    .search
                    .max_evals
                    .map(|m| format!(", ETA {:.0} s", m.saturating_sub(done) as f64 / rate.max(1e-9)))
                    .unwrap_or_default();
                eprint!(
                    "\rgeneration {generation}: eval {}/{}, {done} evals, best fitness {best:.5}, {:.3} evals/s{eta}   ",
                    i + 1,
                    xs.len(),
                    rate
                );
            }
        }
        state.tell_generation(rows)?;
        state.elapsed = elapsed0 + started.elapsed().as_secs_f64();
        gens_this_run += 1;
        state.write_outputs(out_dir)?;
    }
    if !opts.quiet {
        eprintln!();
    }
    state.write_outputs(out_dir)?;
    Ok(state)
}
