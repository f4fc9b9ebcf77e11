//! `llmtool moe CONFIG.yml OUT`: a Mixture of Experts from dense models, from mergekit-moe's
//! YAML (`crate::moe_build`), written as a GGUF file or an HF dir; `--eval-text` scores the
//! MoE against the base model and every expert source (perplexity, KLD from the base).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use llmtool_formats::atomic::check_output_not_input;

use super::output::{write_model, OutFormat, OutputOptions};
use super::pass_eval::{evaluate_pass, PassEvalArgs};
use crate::moe_build::config::MoeConfig;
pub use crate::pipeline::MOE_DEFAULT_SEED as DEFAULT_SEED;
use crate::pipeline::{Moe, MoeOptions};

#[derive(clap::Args, Debug)]
pub struct MoeArgs {
    /// mergekit-moe YAML configuration (base_model, gate_mode, dtype, experts_per_token,
    /// experts with source_model / positive_prompts / negative_prompts / residual_scale).
    /// Model paths are local HF dirs or GGUF files, relative to the config file's directory,
    /// then to the current directory.
    pub config: PathBuf,
    /// Output: a `.gguf` file, or an HF model directory.
    pub output: PathBuf,
    /// Output format (default: GGUF for a `.gguf` path, else an HF dir).
    #[arg(long, value_name = "FORMAT")]
    pub to: Option<OutFormat>,
    /// `torch.manual_seed` of gate_mode random / uniform_random (torch's CPU generator is
    /// reproduced, so the routers equal mergekit-moe's after the same seed).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Accept experts that are all the same model (mergekit-moe's flag of that name: such an
    /// MoE computes what the model does until it is trained further).
    #[arg(long = "i-understand-this-is-not-useful-without-training")]
    pub allow_all_same: bool,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub eval: PassEvalArgs,
}

pub fn run(args: MoeArgs) -> Result<()> {
    let started = Instant::now();
    let cfg = MoeConfig::load(&args.config, args.allow_all_same)?;
    let format = OutFormat::for_path(&args.output, args.to);
    let opts = MoeOptions { seed: args.seed.unwrap_or(DEFAULT_SEED), hf_output: format == OutFormat::Hf };
    let moe = Moe::open(cfg, opts)?;
    let paths = moe.paths().to_vec();
    let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    check_output_not_input(&args.output, &path_refs)?;
    let built = moe.build(None)?;
    if !built.degenerate.is_empty() && !args.quiet {
        // mergekit-moe's warn_degenerate_gates
        eprintln!(
            "warning: layer(s) {:?} of {} have degenerate routing parameters (condition number > 5) - your prompts may be too similar; one or more experts will be underutilized",
            built.degenerate, built.n_layer
        );
    }
    let out = &built.output;
    let opts = OutputOptions { force: args.force, quiet: args.quiet, label: "moe", shard_size: None };
    let written =
        write_model(out.arch, &out.metadata, out.tensors.as_ref(), Some(built.out_type), &args.output, format, &opts)
            .with_context(|| format!("building {} into {}", args.config.display(), args.output.display()))?;
    let cfg = moe.config();
    if !args.quiet {
        eprintln!(
            "moe: {} experts ({} per token), {:.1} MiB written to {} in {:.2} s",
            cfg.experts.len(),
            cfg.experts_per_token,
            written as f64 / 1048576.0,
            args.output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let roles: Vec<String> = std::iter::once("base".to_string())
        .chain((0..cfg.experts.len()).map(|i| format!("expert {i}")))
        .chain(cfg.shared_experts.iter().map(|_| "shared expert".to_string()))
        .collect();
    drop(built);
    drop(moe);
    let with_roles: Vec<(&str, &Path)> = roles.iter().map(String::as_str).zip(path_refs.iter().copied()).collect();
    evaluate_pass("moe", &args.eval, &with_roles, 0, &args.output, args.quiet)?;
    Ok(())
}
