//! Validation as a library call: the perplexity of one model stage on a text, the KL
//! divergence of a stage from an earlier one (llama.cpp's `--kl-divergence` statistics on the
//! earlier stage's tokenization), task accuracy, and the quality gates a build checks.
//!
//! A stage is anything the inference core can load: a model opened from disk
//! ([`Scored::open`]) or metadata plus a [`TensorSource`] built in memory by a pipeline of
//! passes ([`Scored::from_source`]), so a chain can be scored without writing a file.
//!
//! ```no_run
//! use llmtool::eval::validate::{read_text, Scored, Windows};
//! use llmtool::model::Model;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let text = read_text("wiki.test.raw".as_ref())?;
//! let (base, quant) = (Model::open("f16.gguf".as_ref())?, Model::open("q8_0.gguf".as_ref())?);
//! let (base, quant) = (Scored::open(&base)?, Scored::open(&quant)?);
//! let kld = base.kld_of(&quant, &text, Windows { ctx: 512, chunks: 10 }, |_, _, _| {})?;
//! println!("mean KLD {:.6}, PPL {:.4} → {:.4}", kld.kld_mean, kld.ppl_base, kld.ppl);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use llmtool_formats::{Metadata, TensorSource};

use super::tasks::{TaskError, TaskSet};
use super::{Base, EvalError, KldResult, PplOptions, PplResult};
use crate::infer::{InferError, InferModel};
use crate::model::Model;
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Errors of a validation call.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("reading {}", path.display())]
    ReadText {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not valid UTF-8 (invalid byte sequence at byte offset {at})", path.display())]
    NotUtf8 { path: PathBuf, at: usize },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Tasks(#[from] TaskError),
}

/// The windows a text is scored on: the first `chunks` windows of `ctx` tokens (the second
/// half of each is scored, llama.cpp's method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub ctx: usize,
    pub chunks: usize,
}

/// The text of `path`, checked to be UTF-8, with one trailing newline dropped (llama.cpp's
/// perplexity reads its text the same way).
pub fn read_text(path: &Path) -> Result<String, ValidateError> {
    let bytes = std::fs::read(path).map_err(|source| ValidateError::ReadText { path: path.to_path_buf(), source })?;
    let mut text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Err(ValidateError::NotUtf8 { path: path.to_path_buf(), at: e.utf8_error().valid_up_to() }),
    };
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

/// BOS id when the model's tokenizer adds one (llama.cpp's add_bos, with its defaults).
pub fn bos_of(tok: Option<&Tokenizer>) -> Option<u32> {
    tok.filter(|t| t.add_bos()).and_then(|t| t.bos())
}

/// llama.cpp `common_tokenize(ctx, text, add_special = true, parse_special = false)`.
pub fn tokenize(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, TokenizerError> {
    tok.encode(text, true, false)
}

/// The first `need` tokens of `text` as whole-text tokenization gives them, without
/// tokenizing all of a long text: a prefix cut at a line break is tokenized, and the answer
/// is taken only when a prefix twice as long agrees on those tokens (a cut can only change
/// the tokens next to it). Falls back to the whole text. Returns every token of the text
/// when it is short.
pub fn tokenize_prefix(tok: &Tokenizer, text: &str, need: usize) -> Result<Vec<u32>, TokenizerError> {
    // WikiText-like English averages about 4.3 bytes per token; start at 8.
    let mut len = need.saturating_mul(8).max(4096);
    while len.saturating_mul(2) < text.len() {
        let cut = |n: usize| -> &str {
            let mut n = n.min(text.len());
            while !text.is_char_boundary(n) {
                n -= 1;
            }
            &text[..text[..n].rfind('\n').map_or(n, |i| i + 1)]
        };
        let short = tokenize(tok, cut(len))?;
        if short.len() > need + 64 {
            let long = tokenize(tok, cut(2 * len))?;
            if long.len() > need && long[..need] == short[..need] {
                let mut t = long;
                t.truncate(need);
                return Ok(t);
            }
        }
        len *= 2;
    }
    tokenize(tok, text)
}

/// `ctx` must fit the model's training context.
pub fn check_ctx(im: &InferModel, ctx: usize) -> Result<(), EvalError> {
    if ctx > im.cfg.n_ctx_train {
        return Err(EvalError::ContextTooLarge { n_ctx: ctx, n_ctx_train: im.cfg.n_ctx_train });
    }
    Ok(())
}

/// A model stage loaded on the inference core, with its tokenizer: what the validation calls
/// score.
pub struct Scored<'a> {
    pub model: InferModel<'a>,
    pub tokenizer: Tokenizer,
}

impl<'a> Scored<'a> {
    /// A model opened from disk.
    pub fn open(model: &'a Model) -> Result<Self, ValidateError> {
        Self::from_source(&model.metadata, model.tensors.as_ref())
    }

    /// A stage held in memory (e.g. the output of a pipeline of passes): nothing is written.
    pub fn from_source(metadata: &Metadata, tensors: &'a dyn TensorSource) -> Result<Self, ValidateError> {
        let model = InferModel::from_source(metadata, tensors)?;
        let tokenizer = Tokenizer::from_gguf_metadata(metadata)?;
        Ok(Scored { model, tokenizer })
    }

    /// A pipeline stage, scored where it is (computed tensors are kept while it is loaded).
    pub fn from_stage(stage: crate::pipeline::Stage<'a>) -> Result<Self, ValidateError> {
        Self::from_source(stage.metadata, stage.tensors)
    }

    /// The tokens and window options this stage is scored with on `text`.
    pub fn windows(&self, text: &str, w: Windows) -> Result<(Vec<u32>, PplOptions), ValidateError> {
        check_ctx(&self.model, w.ctx)?;
        let tokens = tokenize_prefix(&self.tokenizer, text, w.ctx * w.chunks)?;
        let opts =
            PplOptions { n_ctx: w.ctx, n_chunks: Some(w.chunks), batch: w.ctx, bos: bos_of(Some(&self.tokenizer)) };
        Ok((tokens, opts))
    }

    /// This stage's perplexity on the first windows of `text`; `progress(chunk, running_ppl)`.
    pub fn perplexity(
        &self,
        text: &str,
        w: Windows,
        mut progress: impl FnMut(usize, f64),
    ) -> Result<PplResult, ValidateError> {
        let (tokens, opts) = self.windows(text, w)?;
        Ok(super::perplexity(&self.model, &tokens, &opts, |c| progress(c.chunk, c.running_ppl))?)
    }

    /// The KL divergence of `result` from this stage (the reference), and both perplexities,
    /// on this stage's tokenization of `text`; `progress(window, n_windows, running_kld)`.
    pub fn kld_of(
        &self,
        result: &Scored,
        text: &str,
        w: Windows,
        progress: impl FnMut(usize, usize, f64),
    ) -> Result<KldResult, ValidateError> {
        let (tokens, opts) = self.windows(text, w)?;
        Ok(super::kl_divergence(&result.model, Base::Model(&self.model), &tokens, &opts, progress)?)
    }

    /// Accuracy (lm-eval's `acc`) pooled over all items of `sets`, and each set's.
    pub fn task_accuracy(&self, sets: &[TaskSet]) -> Result<TaskAccuracy, ValidateError> {
        let r = super::tasks::evaluate_tasks(&self.model, &self.tokenizer, sets, &Default::default())?;
        let per_set = r.tasks.iter().map(|t| (t.name.clone(), t.scores.acc.value)).collect();
        Ok(TaskAccuracy { mean: r.overall.acc.value, per_set })
    }
}

/// Task accuracy: pooled over every item, and per task set (name, accuracy).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskAccuracy {
    pub mean: f64,
    pub per_set: Vec<(String, f64)>,
}

/// What one stage measured against the stage before it (each figure absent when not asked).
#[derive(Debug, Clone, Default)]
pub struct StageFigures {
    /// The KL divergence run (its perplexities included).
    pub kld: Option<KldResult>,
    pub tasks: Option<TaskAccuracy>,
}

impl StageFigures {
    /// 100 · (PPL(stage) / PPL(reference) − 1).
    pub fn ppl_change_pct(&self) -> Option<f64> {
        self.kld.as_ref().map(|k| 100.0 * (k.ppl / k.ppl_base - 1.0))
    }
}

/// Quality gates: limits on a stage's figures against the stage before it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GateLimits {
    /// Largest allowed perplexity rise, percent of the reference's.
    pub max_ppl_increase_pct: Option<f64>,
    /// Largest allowed mean KL divergence from the reference.
    pub max_kld: Option<f64>,
    /// Smallest allowed mean task accuracy.
    pub min_task_acc: Option<f64>,
}

impl GateLimits {
    /// One line per failed gate (empty when every gate passes or has no figure to check).
    pub fn failures(&self, ppl_change_pct: Option<f64>, kld_mean: Option<f64>, task_acc: Option<f64>) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(max), Some(c)) = (self.max_ppl_increase_pct, ppl_change_pct) {
            if c > max {
                out.push(format!("perplexity rose by {c:.3} % (gate max_ppl_increase_pct: {max})"));
            }
        }
        if let (Some(max), Some(k)) = (self.max_kld, kld_mean) {
            if k > max {
                out.push(format!("mean KLD {k:.6} (gate max_kld: {max})"));
            }
        }
        if let (Some(min), Some(a)) = (self.min_task_acc, task_acc) {
            if a < min {
                out.push(format!("task accuracy {a:.4} (gate min_task_acc: {min})"));
            }
        }
        out
    }
}

/// Scores `stage` against `reference`: the KL divergence (and perplexities) on `text` when
/// given, and the task accuracy of `stage` on `tasks` when not empty.
pub fn measure_stage(
    reference: &Scored,
    stage: &Scored,
    text: Option<(&str, Windows)>,
    tasks: &[TaskSet],
) -> Result<StageFigures, ValidateError> {
    let kld = match text {
        Some((text, w)) => Some(reference.kld_of(stage, text, w, |_, _, _| {})?),
        None => None,
    };
    let tasks = if tasks.is_empty() { None } else { Some(stage.task_accuracy(tasks)?) };
    Ok(StageFigures { kld, tasks })
}

/// One model's perplexity on an evaluation text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelScore {
    /// The input's role in the pass ("base", "chat", "target", "model 2", "result" …).
    pub role: String,
    pub path: PathBuf,
    pub ppl: f64,
    pub ppl_uncertainty: f64,
}

/// What a model-writing pass's evaluation measured (`--eval-text`): the inputs' and the
/// result's perplexities, the result's KL divergence from the reference input, the verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PassReport {
    pub pass: String,
    pub text: PathBuf,
    pub n_ctx: usize,
    pub n_chunks: usize,
    pub inputs: Vec<ModelScore>,
    pub result: ModelScore,
    /// Role of the input the result is compared with.
    pub reference: String,
    /// 100 · (PPL(result) / PPL(reference) − 1).
    pub ppl_change_pct: f64,
    /// The result against the reference on the reference's windows.
    pub kld: KldResult,
    pub max_ppl_increase_pct: Option<f64>,
    pub passed: bool,
    pub verdict: String,
}

impl PassReport {
    /// The report of `pass` on `text`: `inputs` scored on their own (the reference's entry
    /// is `None`: its figures come from `kld`, the run of the result against it), the result
    /// at `output`, passed unless its perplexity rose by more than `max_ppl_increase` percent.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pass: &str,
        text: &Path,
        n_ctx: usize,
        inputs: Vec<Option<ModelScore>>,
        reference: (&str, &Path),
        output: &Path,
        kld: KldResult,
        max_ppl_increase: Option<f64>,
    ) -> PassReport {
        let (ref_role, ref_path) = reference;
        let ref_score = ModelScore {
            role: ref_role.to_string(),
            path: ref_path.to_path_buf(),
            ppl: kld.ppl_base,
            ppl_uncertainty: kld.ppl_base_uncertainty,
        };
        let mut ref_score = Some(ref_score);
        let inputs = inputs.into_iter().map(|s| s.or_else(|| ref_score.take()).expect("one reference")).collect();
        let result = ModelScore {
            role: "result".into(),
            path: output.to_path_buf(),
            ppl: kld.ppl,
            ppl_uncertainty: kld.ppl_uncertainty,
        };
        let change = 100.0 * (kld.ppl / kld.ppl_base - 1.0);
        let passed = max_ppl_increase.is_none_or(|max| change <= max);
        let verdict = verdict(pass, ref_role, change, &kld, max_ppl_increase, passed);
        PassReport {
            pass: pass.to_string(),
            text: text.to_path_buf(),
            n_ctx,
            n_chunks: kld.n_chunks,
            inputs,
            result,
            reference: ref_role.to_string(),
            ppl_change_pct: change,
            kld,
            max_ppl_increase_pct: max_ppl_increase,
            passed,
            verdict,
        }
    }
}

/// One line: PASS/FAIL against a limit, else BETTER/WORSE, with the figures.
fn verdict(pass: &str, ref_role: &str, change: f64, kld: &KldResult, max: Option<f64>, passed: bool) -> String {
    let figures = format!(
        "{pass}: perplexity {:.4} → {:.4} ({change:+.3} % vs {ref_role}), mean KLD {:.6}",
        kld.ppl_base, kld.ppl, kld.kld_mean
    );
    match (max, passed) {
        (Some(max), true) => format!("PASS {figures} (limit +{max} %)"),
        (Some(max), false) => format!("FAIL {figures} exceeds --max-ppl-increase {max} %"),
        (None, _) if change <= 0.0 => format!("BETTER {figures}"),
        (None, _) => format!("WORSE {figures}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_text_drops_one_newline_and_names_a_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        std::fs::write(&p, "ab\n\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "ab\n");
        std::fs::write(&p, b"ab\xffc").unwrap();
        let e = read_text(&p).unwrap_err().to_string();
        assert!(e.ends_with("not valid UTF-8 (invalid byte sequence at byte offset 2)"), "{e}");
        assert!(matches!(read_text(&dir.path().join("none")), Err(ValidateError::ReadText { .. })));
    }

    #[test]
    fn gates_report_each_exceeded_limit() {
        let g = GateLimits { max_ppl_increase_pct: Some(1.0), max_kld: Some(0.05), min_task_acc: Some(0.5) };
        assert!(g.failures(Some(0.5), Some(0.01), Some(0.9)).is_empty());
        assert!(g.failures(None, None, None).is_empty());
        let f = g.failures(Some(2.0), Some(0.06), Some(0.4));
        assert_eq!(f.len(), 3);
        assert!(f[0].contains("perplexity rose by 2.000 %"), "{f:?}");
        assert!(f[1].contains("mean KLD 0.060000"), "{f:?}");
        assert!(f[2].contains("task accuracy 0.4000"), "{f:?}");
    }
}
