//! `--eval-text`: every pass that writes a model (lora, chatvector, merge) checks its
//! result on the built-in core. The inputs and the result are scored by perplexity on the
//! same text (llama.cpp's method), the result's KL divergence from the pass's reference
//! input (the base a LoRA is merged into, the ChatVector target, the merge base) is measured
//! on the reference's windows, and a one-line verdict is printed; `--json` prints the same
//! report as one JSON object.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::perplexity::{read_text, Bar};
use crate::eval::validate::{Scored, Windows};
use crate::eval::KldResult;
use crate::infer::InferModel;
use crate::model::Model;

/// The evaluation flags shared by the model-writing passes.
#[derive(clap::Args, Debug, Clone)]
pub struct PassEvalArgs {
    /// After writing, score the inputs and the result on this UTF-8 text (perplexity,
    /// llama.cpp's method) and the result's KL divergence from the reference input.
    #[arg(long, value_name = "FILE")]
    pub eval_text: Option<PathBuf>,
    /// Windows scored by --eval-text.
    #[arg(long, default_value_t = 4, value_name = "N", requires = "eval_text")]
    pub eval_chunks: usize,
    /// Window length of --eval-text.
    #[arg(long, default_value_t = 512, value_name = "N", requires = "eval_text")]
    pub eval_ctx: usize,
    /// With --eval-text: fail (exit 1; the output is kept) when the result's perplexity
    /// exceeds the reference input's by more than PCT percent.
    #[arg(long, value_name = "PCT", requires = "eval_text")]
    pub max_ppl_increase: Option<f64>,
    /// Print the evaluation report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub use crate::eval::validate::{ModelScore, PassReport};

/// Scores `inputs` (role, path) and `output` on `args.eval_text`, prints the report (text,
/// or JSON with `args.json`) and fails when `--max-ppl-increase` is exceeded. `reference`
/// indexes `inputs`. Does nothing without `--eval-text`. Models are loaded one or two at a
/// time (the KLD runs the reference and the result side by side).
pub fn evaluate_pass(
    pass: &str,
    args: &PassEvalArgs,
    inputs: &[(&str, &Path)],
    reference: usize,
    output: &Path,
    quiet: bool,
) -> Result<Option<PassReport>> {
    let Some(text_path) = &args.eval_text else { return Ok(None) };
    let text = read_text(text_path)?;
    let (ref_role, ref_path) = inputs[reference];

    let mut scores = Vec::with_capacity(inputs.len());
    for (i, &(role, path)) in inputs.iter().enumerate() {
        if i == reference {
            scores.push(None); // filled from the KLD run below
            continue;
        }
        scores.push(Some(score_model(role, path, &text, args.eval_ctx, args.eval_chunks, quiet)?));
    }

    let kld = measure_kld(ref_path, output, text_path, args.eval_ctx, args.eval_chunks, quiet)?;
    let report = PassReport::new(
        pass,
        text_path,
        args.eval_ctx,
        scores,
        (ref_role, ref_path),
        output,
        kld,
        args.max_ppl_increase,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if !report.passed {
        bail!("{}; {} is kept", report.verdict, output.display());
    }
    Ok(Some(report))
}

/// The perplexity of the model at `path` on the first `chunks` windows of `ctx` tokens of `text`.
pub fn score_model(role: &str, path: &Path, text: &str, ctx: usize, chunks: usize, quiet: bool) -> Result<ModelScore> {
    let model = Model::open(path).with_context(|| format!("opening {}", path.display()))?;
    let scored = load(&model, path)?;
    check_ctx(&scored.model, ctx, path, "--eval-ctx")?;
    let bar = Bar::new(chunks as u64, quiet);
    let r = scored
        .perplexity(text, Windows { ctx, chunks }, |c, ppl| bar.set(c as u64, format!("scoring {role}: PPL {ppl:.4}")))
        .with_context(|| format!("perplexity of {} ({role})", path.display()))?;
    bar.finish();
    Ok(ModelScore { role: role.to_string(), path: path.to_path_buf(), ppl: r.ppl, ppl_uncertainty: r.ppl_uncertainty })
}

/// The KL divergence of `output` from `reference` (and both perplexities) on `text`,
/// `ctx`-token windows, at most `chunks`, on the reference's tokenization
/// ([`Scored::kld_of`]).
pub fn measure_kld(
    reference: &Path,
    output: &Path,
    text: &Path,
    ctx: usize,
    chunks: usize,
    quiet: bool,
) -> Result<KldResult> {
    let text = read_text(text)?;
    let ref_model = Model::open(reference).with_context(|| format!("opening {}", reference.display()))?;
    kld_of_opened(&ref_model, reference, output, &text, Windows { ctx, chunks }, "--eval-ctx", quiet)
}

/// [`measure_kld`] with the reference already open (`model`, read from `path`) and the text
/// read; `ctx_flag` names the option a context error blames.
pub fn kld_of_opened(
    model: &Model,
    path: &Path,
    output: &Path,
    text: &str,
    windows: Windows,
    ctx_flag: &str,
    quiet: bool,
) -> Result<KldResult> {
    let scored = load(model, path)?;
    check_ctx(&scored.model, windows.ctx, path, ctx_flag)?;
    kld_against(&scored, path, output, text, windows, quiet)
}

/// The KL divergence of the model file `output` from the loaded `reference` (read from
/// `reference_path`) on `text`, with a progress bar.
pub fn kld_against(
    reference: &Scored<'_>,
    reference_path: &Path,
    output: &Path,
    text: &str,
    windows: Windows,
    quiet: bool,
) -> Result<KldResult> {
    let out_model = Model::open(output).with_context(|| format!("opening {}", output.display()))?;
    let out_scored = load(&out_model, output)?;
    let bar = Bar::new(windows.chunks as u64, quiet);
    let kld = reference
        .kld_of(&out_scored, text, windows, |i, n, k| {
            if let Some(b) = &bar.0 {
                b.set_length(n as u64);
            }
            bar.set(i as u64, format!("scoring {} vs {}: mean KLD {k:.6}", output.display(), reference_path.display()))
        })
        .with_context(|| format!("KL divergence of {} from {}", output.display(), reference_path.display()))?;
    bar.finish();
    Ok(kld)
}

/// A model on the inference core with its tokenizer, errors naming its path.
fn load<'a>(model: &'a Model, path: &Path) -> Result<Scored<'a>> {
    Scored::open(model).with_context(|| format!("loading {}", path.display()))
}

/// The model's context check, the error naming the option (`ctx_flag`) and the model's path.
pub(super) fn check_ctx(im: &InferModel, ctx: usize, path: &Path, ctx_flag: &str) -> Result<()> {
    crate::eval::validate::check_ctx(im, ctx).with_context(|| format!("{ctx_flag} for {}", path.display()))
}

fn print_report(r: &PassReport) {
    println!("evaluation on {} ({} windows of {} tokens):", r.text.display(), r.n_chunks, r.n_ctx);
    for s in r.inputs.iter().chain(std::iter::once(&r.result)) {
        println!("  {:<10} PPL {:>10.4} +/- {:<9.5} {}", s.role, s.ppl, s.ppl_uncertainty, s.path.display());
    }
    let k = &r.kld;
    println!(
        "  result vs {}: KLD mean {:.6} ± {:.6}, median {:.6}, 99 % {:.6}; same top-1 token {:.3} %",
        r.reference,
        k.kld_mean,
        k.kld_uncertainty,
        k.kld_median,
        k.kld_p99,
        100.0 * k.same_top
    );
    println!("verdict: {}", r.verdict);
}
