//! `llmtool lora extract --base B --tuned T --rank R [--modules …] OUT`: a LoRA adapter from
//! the difference of two models (`passes::lora::extract`), written as a PEFT dir or a GGUF
//! LoRA; `--eval-text` scores how much of the fine-tune the adapter keeps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use llmtool_formats::atomic::check_output_not_input;

use super::super::pass_eval::{check_ctx, PassEvalArgs};
use super::super::perplexity::{bos_of, read_text, Bar};
use crate::eval::validate::tokenize_prefix;
use crate::eval::{self, Base, KldResult, PplOptions};
use crate::infer::InferModel;
use crate::model::Model;
use crate::passes::lora::extract::{extract, ExtractOptions};
use crate::passes::lora::extract_write::{write_gguf_lora, write_peft};
use crate::passes::lora::{plan_edits, Adapter, LoraMerged};
use crate::tokenizer::Tokenizer;

/// Adapter formats `lora extract` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AdapterFormat {
    /// A PEFT adapter directory (adapter_config.json + adapter_model.safetensors).
    Peft,
    /// A llama.cpp GGUF LoRA file.
    Gguf,
}

#[derive(clap::Args, Debug)]
pub struct ExtractArgs {
    /// The model the fine-tune started from: a GGUF file (any type) or an HF directory.
    #[arg(long, value_name = "MODEL")]
    pub base: PathBuf,
    /// The fine-tuned model (same architecture and shapes as --base).
    #[arg(long, value_name = "MODEL")]
    pub tuned: PathBuf,
    /// Largest rank of a module (mergekit's --max-rank); a module whose min(rows, cols) is
    /// smaller gets that rank.
    #[arg(long, alias = "max-rank", value_name = "R")]
    pub rank: usize,
    /// HF module names to extract (comma-separated or repeated, e.g. q_proj,v_proj,
    /// embed_tokens, input_layernorm); default: every module.
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    pub modules: Vec<String>,
    /// Decompose the token embedding and the output head instead of saving them at full rank.
    #[arg(long)]
    pub embed_lora: bool,
    /// Leave out modules that are not matrices (norms) instead of saving them at full rank.
    #[arg(long)]
    pub skip_undecomposable: bool,
    /// Put the singular values on A (B = U) instead of √S on each factor.
    #[arg(long)]
    pub no_distribute_scale: bool,
    /// Drop singular values at or below this.
    #[arg(long, default_value_t = 0.0, value_name = "EPS")]
    pub sv_epsilon: f32,
    /// Output: a PEFT adapter directory, or a `.gguf` file for a llama.cpp LoRA.
    pub output: PathBuf,
    /// Output format (default: by extension, `.gguf` → GGUF, else a PEFT directory).
    #[arg(long, value_enum)]
    pub to: Option<AdapterFormat>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No summary.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub eval: PassEvalArgs,
}

pub fn run(args: ExtractArgs) -> Result<()> {
    let started = Instant::now();
    check_output_not_input(&args.output, &[args.base.as_path(), args.tuned.as_path()])?;
    let format = args.to.unwrap_or_else(|| {
        if args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            AdapterFormat::Gguf
        } else {
            AdapterFormat::Peft
        }
    });
    let base = Model::open(&args.base).with_context(|| format!("opening base {}", args.base.display()))?;
    let tuned = Model::open(&args.tuned).with_context(|| format!("opening tuned {}", args.tuned.display()))?;
    let opts = ExtractOptions {
        rank: args.rank,
        modules: args.modules.clone(),
        embed_lora: args.embed_lora,
        skip_undecomposable: args.skip_undecomposable,
        distribute_scale: !args.no_distribute_scale,
        sv_epsilon: args.sv_epsilon,
    };
    let ext = extract(&base, &tuned, &opts)?;
    let svd_s = started.elapsed().as_secs_f64();
    let mut notes = ext.notes.clone();
    match format {
        AdapterFormat::Peft => {
            write_peft(&ext, &args.output, &args.base.display().to_string(), args.force)?;
        }
        AdapterFormat::Gguf => notes.extend(write_gguf_lora(&ext, &args.output, args.force)?),
    }
    if !args.quiet {
        let energy: Vec<f64> = ext.loras.iter().map(|l| l.energy_kept).collect();
        let min = energy.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = energy.iter().sum::<f64>() / energy.len().max(1) as f64;
        eprintln!(
            "lora extract: {} module(s) decomposed (rank ≤ {}), {} tensor(s) saved at full rank ({}); share of ‖ΔW‖² kept: mean {:.4}, min {:.4}; {} written in {:.2} s (SVD {:.2} s)",
            ext.loras.len(),
            ext.max_rank(),
            ext.saved.len(),
            if ext.saved_modules.is_empty() { "none".to_string() } else { ext.saved_modules.join(", ") },
            if energy.is_empty() { 1.0 } else { mean },
            if energy.is_empty() { 1.0 } else { min },
            args.output.display(),
            started.elapsed().as_secs_f64(),
            svd_s
        );
        for n in &notes {
            eprintln!("  note: {n}");
        }
    }
    drop(ext);
    drop(tuned);
    evaluate_extract(&args.eval, &base, &args.tuned, &args.output, args.quiet)?;
    Ok(())
}

/// What `lora extract --eval-text` measured: the three models on the same windows, the
/// tuned model as the reference.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExtractReport {
    pub text: PathBuf,
    pub n_ctx: usize,
    pub n_chunks: usize,
    pub ppl_base: f64,
    pub ppl_tuned: f64,
    pub ppl_base_plus_adapter: f64,
    /// KLD(tuned ‖ base): how far the fine-tune moved the model.
    pub kld_tuned_base: KldResult,
    /// KLD(tuned ‖ base + adapter): what the adapter misses.
    pub kld_tuned_adapter: KldResult,
    /// 1 − KLD(tuned ‖ base + adapter) / KLD(tuned ‖ base).
    pub kept: f64,
    pub max_ppl_increase_pct: Option<f64>,
    pub passed: bool,
}

/// Scores base, tuned and base + adapter (merged in memory) on `--eval-text`; fails when
/// `--max-ppl-increase` is exceeded (base + adapter against tuned).
fn evaluate_extract(args: &PassEvalArgs, base: &Model, tuned: &Path, adapter: &Path, quiet: bool) -> Result<()> {
    let Some(text_path) = &args.eval_text else { return Ok(()) };
    let text = read_text(text_path)?;
    let tuned_model = Model::open(tuned).with_context(|| format!("opening {}", tuned.display()))?;
    let tuned_im = InferModel::load(&tuned_model).with_context(|| format!("loading {}", tuned.display()))?;
    check_ctx(&tuned_im, args.eval_ctx, tuned, "--eval-ctx")?;
    let tok = Tokenizer::from_model(&tuned_model).with_context(|| format!("tokenizer of {}", tuned.display()))?;
    let tokens = tokenize_prefix(&tok, &text, args.eval_ctx * args.eval_chunks)?;
    let opts = PplOptions {
        n_ctx: args.eval_ctx,
        n_chunks: Some(args.eval_chunks),
        batch: args.eval_ctx,
        bos: bos_of(Some(&tok)),
    };
    let kld = |im: &InferModel, what: &str| -> Result<KldResult> {
        let bar = Bar::new(args.eval_chunks as u64, quiet);
        let r = eval::kl_divergence(im, Base::Model(&tuned_im), &tokens, &opts, |i, n, k| {
            if let Some(b) = &bar.0 {
                b.set_length(n as u64);
            }
            bar.set(i as u64, format!("scoring {what} vs tuned: mean KLD {k:.6}"))
        })
        .with_context(|| format!("KL divergence of {what} from the tuned model"))?;
        bar.finish();
        Ok(r)
    };
    let base_im = InferModel::load(base).with_context(|| format!("loading {}", base.path.display()))?;
    let kld_base = kld(&base_im, "base")?;
    drop(base_im);
    let config = match &base.hf {
        Some(hf) => hf.files.config.clone(),
        None => base.arch.metadata_to_config(&base.metadata, base.tensors.tensor_infos(), "float32")?,
    };
    let edits = plan_edits(base.arch, &config, base.tensors.as_ref(), &[(Adapter::open(adapter)?, 1.0)])?;
    // The touched tensors as exact f32 W + ΔW: the adapter's exact effect (PEFT merges into
    // the dequantized weights), not one rounded back to the base's type.
    let merged = LoraMerged::new(base.tensors.as_ref(), edits).with_float_output();
    let merged_im = InferModel::from_source(&base.metadata, &merged).context("loading base + adapter")?;
    let kld_adapter = kld(&merged_im, "base + adapter")?;
    let change = 100.0 * (kld_adapter.ppl / kld_adapter.ppl_base - 1.0);
    let passed = args.max_ppl_increase.is_none_or(|max| change <= max);
    let report = ExtractReport {
        text: text_path.clone(),
        n_ctx: args.eval_ctx,
        n_chunks: kld_adapter.n_chunks,
        ppl_base: kld_base.ppl,
        ppl_tuned: kld_base.ppl_base,
        ppl_base_plus_adapter: kld_adapter.ppl,
        kept: if kld_base.kld_mean > 0.0 { 1.0 - kld_adapter.kld_mean / kld_base.kld_mean } else { 1.0 },
        kld_tuned_base: kld_base,
        kld_tuned_adapter: kld_adapter,
        max_ppl_increase_pct: args.max_ppl_increase,
        passed,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("evaluation on {} ({} windows of {} tokens):", report.text.display(), report.n_chunks, report.n_ctx);
        println!("  base            PPL {:>10.4}", report.ppl_base);
        println!("  tuned           PPL {:>10.4}", report.ppl_tuned);
        println!("  base + adapter  PPL {:>10.4} ({change:+.3} % vs tuned)", report.ppl_base_plus_adapter);
        println!(
            "  KLD from tuned: base {:.6}, base + adapter {:.6}; the adapter keeps {:.1} % of the fine-tune (1 − ratio)",
            report.kld_tuned_base.kld_mean,
            report.kld_tuned_adapter.kld_mean,
            100.0 * report.kept
        );
    }
    if !report.passed {
        anyhow::bail!(
            "base + adapter perplexity is {change:+.3} % from the tuned model's, above --max-ppl-increase {} %; {} is kept",
            args.max_ppl_increase.unwrap_or(0.0),
            adapter.display()
        );
    }
    Ok(())
}
