//! `llmtool lora merge --base B --adapter A [--scale s] … OUT`: LoRA adapters (PEFT dirs or
//! llama.cpp GGUF LoRA files) merged into a base model (the `pipeline::Lora` pass), written as GGUF or
//! an HF dir, optionally scored with `--eval-text`; `llmtool lora extract` (in [`extract`]):
//! an adapter from the difference of two models.

mod extract;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use llmtool_formats::atomic::check_output_not_input;

use super::output::{write_model, OutFormat, OutputOptions};
use super::pass_eval::{evaluate_pass, PassEvalArgs};
use crate::model::Model;
use crate::passes::convert::{hf_model_dtype, OutType};
use crate::pipeline::{Lora, Stage};

#[derive(clap::Args, Debug)]
pub struct LoraArgs {
    #[command(subcommand)]
    pub command: LoraCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LoraCommand {
    /// Merge LoRA adapters into a base model: W' = W + scale·(alpha/r)·B·A per adapted tensor.
    Merge(MergeArgs),
    /// Extract a LoRA adapter from the difference of two models (truncated SVD per module, as
    /// mergekit-extract-lora): a PEFT adapter directory or a GGUF LoRA.
    Extract(extract::ExtractArgs),
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Base model: a GGUF file (any type, quantized included) or an HF model directory.
    #[arg(long, value_name = "MODEL")]
    pub base: PathBuf,
    /// A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) or a
    /// llama.cpp GGUF LoRA file. Repeatable: adapters apply in the order given.
    #[arg(long, value_name = "ADAPTER", required = true)]
    pub adapter: Vec<PathBuf>,
    /// Scale of each adapter, in the order of --adapter (none: all 1.0; otherwise one per adapter).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub scale: Vec<f32>,
    /// Output: a `.gguf` file, or a directory for HF output.
    pub output: PathBuf,
    /// Output format (default: by extension, `.gguf` → GGUF, else an HF dir).
    #[arg(long, value_enum)]
    pub to: Option<OutFormat>,
    /// Element type of float tensors in the output (default: keep the base's). With a
    /// quantized base, every tensor is written in this type and merged ones as exact W + ΔW.
    #[arg(long, value_enum)]
    pub outtype: Option<OutType>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub eval: PassEvalArgs,
}

pub fn run(args: LoraArgs) -> Result<()> {
    match args.command {
        LoraCommand::Merge(a) => merge(a),
        LoraCommand::Extract(a) => extract::run(a),
    }
}

fn merge(args: MergeArgs) -> Result<()> {
    let started = Instant::now();
    if !args.scale.is_empty() && args.scale.len() != args.adapter.len() {
        bail!(
            "{} --scale values for {} --adapter paths: give one scale per adapter, in order, or none (all 1.0)",
            args.scale.len(),
            args.adapter.len()
        );
    }
    let mut inputs = vec![args.base.as_path()];
    inputs.extend(args.adapter.iter().map(PathBuf::as_path));
    check_output_not_input(&args.output, &inputs)?;
    let base = Model::open(&args.base).with_context(|| format!("opening base {}", args.base.display()))?;
    let adapters: Vec<(&Path, f32)> = args
        .adapter
        .iter()
        .enumerate()
        .map(|(i, path)| (path.as_path(), args.scale.get(i).copied().unwrap_or(1.0)))
        .collect();
    let lora = Lora::open(&adapters)?;
    let merged = lora.merged(Stage::of(&base))?;
    let n_touched = merged.touched().count();
    let format = OutFormat::for_path(&args.output, args.to);
    // A float output gets W + ΔW exactly (PEFT's merge_and_unload of the dequantized base);
    // only an output that keeps the base's quantized types re-quantizes the touched tensors.
    // The HF dtype is chosen from the base, as if nothing had been touched.
    let (merged, outtype) = match (format, args.outtype) {
        (OutFormat::Gguf, None) => (merged, None),
        (OutFormat::Gguf, Some(o)) => (merged.with_float_output(), Some(o)),
        (OutFormat::Hf, o) => {
            let o = o.or_else(|| OutType::from_ggml(hf_model_dtype(base.tensors.tensor_infos(), None)));
            (merged.with_float_output(), o)
        }
    };
    let opts = OutputOptions { force: args.force, quiet: args.quiet, label: "lora merge", shard_size: None };
    let written = write_model(base.arch, &base.metadata, &merged, outtype, &args.output, format, &opts)?;
    if !args.quiet {
        eprintln!(
            "lora merge: {} adapter(s), {n_touched} of {} tensors changed, {:.1} MB written to {} in {:.1}s",
            args.adapter.len(),
            base.tensors.tensor_infos().len(),
            written as f64 / 1e6,
            args.output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    drop(merged);
    drop(lora);
    drop(base);
    evaluate_pass("lora merge", &args.eval, &[("base", args.base.as_path())], 0, &args.output, args.quiet)?;
    Ok(())
}
