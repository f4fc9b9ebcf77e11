//! The importance matrix of a stage as a library call: the stage is loaded on the inference
//! core (in memory or from a file, [`Stage`] either way), the text cut into windows as
//! `llama-imatrix` cuts it, and every layer product observed ([`crate::eval::imatrix`]).
//! `llmtool imatrix` and a build's imatrix step both call [`compute_imatrix`].

use std::sync::Arc;

use llmtool_formats::imatrix::Imatrix;

use super::{PipelineError, Stage};
use crate::eval::imatrix::ImatrixCollector;
use crate::eval::validate::{bos_of, tokenize, Scored};
use crate::eval::{ChunkStat, PplOptions, PplResult};
use crate::infer::KvPrecision;

/// How an importance matrix is computed (llama-imatrix's options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImatrixOptions {
    /// Window (context) length, as llama-imatrix's `-c`.
    pub ctx: usize,
    /// At most this many windows (`None`: all the text gives).
    pub chunks: Option<usize>,
    /// Keep the KV cache in f32 (default f16, llama-imatrix's default cache, so the
    /// statistics are those llama.cpp computes).
    pub kv_f32: bool,
    /// Also collect `output.weight` (llama-imatrix `--process-output`).
    pub process_output: bool,
}

impl ImatrixOptions {
    /// `ctx`-token windows, at most `chunks`, llama-imatrix's defaults otherwise.
    pub fn new(ctx: usize, chunks: Option<usize>) -> Self {
        ImatrixOptions { ctx, chunks, kv_f32: false, process_output: false }
    }
}

/// A computed importance matrix and the perplexity of the windows it was computed on.
pub struct ImatrixRun {
    pub imatrix: Imatrix,
    pub ppl: PplResult,
}

/// Computes the importance matrix of `stage` on `text` (tokenized whole, as llama-imatrix
/// does); `dataset` is the name recorded in the matrix (llama.cpp records the text's path).
/// `progress(window, n_windows)` after each window.
pub fn compute_imatrix(
    stage: Stage<'_>,
    text: &str,
    dataset: &str,
    opts: &ImatrixOptions,
    mut progress: impl FnMut(&ChunkStat, usize),
) -> Result<ImatrixRun, PipelineError> {
    let mut scored = Scored::from_stage(stage)?;
    if !opts.kv_f32 {
        scored.model.set_kv_precision(KvPrecision::F16);
    }
    let tokens = tokenize(&scored.tokenizer, text).map_err(crate::eval::validate::ValidateError::from)?;
    let ppl_opts =
        PplOptions { n_ctx: opts.ctx, n_chunks: opts.chunks, batch: opts.ctx, bos: bos_of(Some(&scored.tokenizer)) };
    let n_windows = crate::eval::perplexity::plan(&scored.model, tokens.len(), &ppl_opts)
        .map_err(crate::eval::validate::ValidateError::from)?;
    let collector = Arc::new(ImatrixCollector::new(opts.process_output));
    let ppl = crate::eval::imatrix::compute_imatrix(&mut scored.model, collector.clone(), &tokens, &ppl_opts, |s| {
        progress(s, n_windows)
    })
    .map_err(crate::eval::validate::ValidateError::from)?;
    let imatrix = collector.to_imatrix(vec![dataset.to_string()], ppl.n_chunks as u32, opts.ctx as u32);
    Ok(ImatrixRun { imatrix, ppl })
}
