//! `llmtool merge CONFIG.yml OUT`: a mergekit YAML configuration over local HF dirs and GGUF
//! files (quantized inputs are dequantized per tensor), written as a GGUF file or an HF dir,
//! tensor by tensor (`crate::merge`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use llmtool_formats::atomic::check_output_not_input;

use super::output::{write_model, OutFormat, OutputOptions};
use super::pass_eval::{evaluate_pass, PassEvalArgs};
use crate::merge::config::MergeConfig;
use crate::merge::inputs::{FileInputs, InputTensors};
use crate::merge::plan::plan;
use crate::merge::source::MergedSource;

/// The seed used when `--seed` is not given: the same config and inputs always give the
/// same bytes.
pub const DEFAULT_SEED: u64 = 0x6c6c_6d74_6f6f_6c00;

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// mergekit YAML configuration. Model paths are local HF dirs or GGUF files, relative to
    /// the config file's directory, then to the current directory.
    pub config: PathBuf,
    /// Output: a `.gguf` file, or an HF model directory.
    pub output: PathBuf,
    /// Output format (default: GGUF for a `.gguf` path, else an HF dir).
    #[arg(long, value_name = "FORMAT")]
    pub to: Option<OutFormat>,
    /// Seed of the random methods (DARE, DELLA); each tensor's seed derives from it and the
    /// tensor's name.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub eval: PassEvalArgs,
}

pub fn run(args: MergeArgs) -> Result<()> {
    let started = Instant::now();
    let config = MergeConfig::load(&args.config)?;
    let inputs = FileInputs::open(&config)?;
    let paths: Vec<PathBuf> = (0..inputs.n_models()).map(|i| inputs.path(i).to_path_buf()).collect();
    let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    check_output_not_input(&args.output, &path_refs)?;
    let seed = args.seed.unwrap_or(DEFAULT_SEED);
    let plan = plan(&config, &inputs, seed)?;
    let reference = plan.reference;
    let arch = plan.arch;
    let metadata = plan.metadata.clone();
    let n_tensors = plan.tensors.len();
    let input_bytes: u64 = plan
        .tensors
        .iter()
        .flat_map(|t| t.inputs.iter().map(|p| (p.model, p.tensor.as_str())))
        .filter_map(|(m, name)| inputs.tensor_infos(m).iter().find(|t| t.name == name).and_then(|t| t.n_bytes()))
        .sum();
    let source = MergedSource::new(plan, &inputs);
    let format = OutFormat::for_path(&args.output, args.to);
    let opts = OutputOptions { force: args.force, quiet: args.quiet, label: "merge", shard_size: None };
    let written = write_model(arch, &metadata, &source, None, &args.output, format, &opts)
        .with_context(|| format!("merging {} into {}", args.config.display(), args.output.display()))?;
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "merge ({}): {n_tensors} tensors, {:.1} MiB of input read, {:.1} MiB written to {} in {secs:.2} s ({:.1} MB/s of input)",
            config.merge_method.name(),
            input_bytes as f64 / 1048576.0,
            written as f64 / 1048576.0,
            args.output.display(),
            input_bytes as f64 / 1e6 / secs.max(1e-9)
        );
    }
    drop(source);
    drop(inputs);
    let roles: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i == reference && config.base_model.is_some() {
                "base".to_string()
            } else {
                format!("model {}", i + 1)
            }
        })
        .collect();
    let with_roles: Vec<(&str, &Path)> = roles.iter().map(String::as_str).zip(path_refs.iter().copied()).collect();
    evaluate_pass("merge", &args.eval, &with_roles, reference, &args.output, args.quiet)?;
    Ok(())
}
