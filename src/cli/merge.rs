//! `llmtool merge CONFIG.yml OUT`: a mergekit YAML configuration over local HF dirs and GGUF
//! files (quantized inputs are dequantized per tensor), written as a GGUF file or an HF dir,
//! tensor by tensor (`crate::merge`).
//!
//! `llmtool merge --evolve EVOLVE.yml OUT_DIR [--resume]`: the evolutionary search
//! (`crate::evolve`); OUT_DIR receives `best.yml`, `best.gguf`, `history.csv`, `fitness.svg`
//! and `checkpoint.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use llmtool_formats::atomic::check_output_not_input;

use super::output::{write_model, OutFormat, OutputOptions};
use super::pass_eval::{evaluate_pass, PassEvalArgs};
use crate::evolve::search::{self, run_search, Evaluator, SearchOptions, SearchState};
use crate::evolve::EvolveConfig;
use crate::merge::config::MergeConfig;
use crate::merge::memory::merge_in_memory;
use crate::merge::methods::dtype_exact::Arithmetic;
pub use crate::pipeline::MERGE_DEFAULT_SEED as DEFAULT_SEED;
use crate::pipeline::{Merge, MergeOptions};

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// mergekit YAML configuration. Model paths are local HF dirs or GGUF files, relative to
    /// the config file's directory, then to the current directory. With --evolve: EVOLVE.yml.
    pub config: PathBuf,
    /// Output: a `.gguf` file, or an HF model directory. With --evolve: the output directory.
    pub output: PathBuf,
    /// Evolutionary search (CMA-ES) over merge parameters as EVOLVE.yml says.
    #[arg(long)]
    pub evolve: bool,
    /// With --evolve: continue from OUT_DIR/checkpoint.json.
    #[arg(long, requires = "evolve")]
    pub resume: bool,
    /// Output format (default: GGUF for a `.gguf` path, else an HF dir).
    #[arg(long, value_name = "FORMAT")]
    pub to: Option<OutFormat>,
    /// Seed of the random methods (DARE, DELLA); each tensor's seed derives from it and the
    /// tensor's name.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// How tensors are merged: `f32` (default) computes in f64 and rounds once, more
    /// accurate than mergekit; `dtype` follows mergekit 0.1.5's per-operation rounding in the
    /// config's `dtype` (torch on CPU), reproducing its float16/bfloat16 merges bit for bit
    /// (linear, task_arithmetic, ties, breadcrumbs, breadcrumbs_ties, passthrough).
    #[arg(long, value_name = "MODE", default_value = "f32")]
    pub arithmetic: Arithmetic,
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
    if args.evolve {
        if args.arithmetic != Arithmetic::F32 {
            anyhow::bail!("--arithmetic dtype applies to a single merge, not to --evolve's candidates");
        }
        return run_evolve(&args);
    }
    let started = Instant::now();
    let config = MergeConfig::load(&args.config)?;
    let opts = MergeOptions { seed: args.seed.unwrap_or(DEFAULT_SEED), arithmetic: args.arithmetic };
    let merge = Merge::open(config, opts)?;
    let paths = merge.paths().to_vec();
    let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    check_output_not_input(&args.output, &path_refs)?;
    let merged = merge.merged(None)?;
    let (reference, out) = (merged.reference, &merged.output);
    let n_tensors = out.tensors.tensor_infos().len();
    let format = OutFormat::for_path(&args.output, args.to);
    let opts = OutputOptions { force: args.force, quiet: args.quiet, label: "merge", shard_size: None };
    let written = write_model(out.arch, &out.metadata, out.tensors.as_ref(), None, &args.output, format, &opts)
        .with_context(|| format!("merging {} into {}", args.config.display(), args.output.display()))?;
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "merge ({}): {n_tensors} tensors, {:.1} MiB of input read, {:.1} MiB written to {} in {secs:.2} s ({:.1} MB/s of input)",
            merge.config().merge_method.name(),
            merged.input_bytes as f64 / 1048576.0,
            written as f64 / 1048576.0,
            args.output.display(),
            merged.input_bytes as f64 / 1e6 / secs.max(1e-9)
        );
    }
    let has_base = merge.config().base_model.is_some();
    drop(merged);
    drop(merge);
    let roles: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(i, _)| if i == reference && has_base { "base".to_string() } else { format!("model {}", i + 1) })
        .collect();
    let with_roles: Vec<(&str, &Path)> = roles.iter().map(String::as_str).zip(path_refs.iter().copied()).collect();
    evaluate_pass("merge", &args.eval, &with_roles, reference, &args.output, args.quiet)?;
    Ok(())
}

/// `merge --evolve EVOLVE.yml OUT_DIR`: search, then write the best recipe and model.
fn run_evolve(args: &MergeArgs) -> Result<()> {
    let cfg = EvolveConfig::load(&args.config)?;
    let seed = args.seed.or(cfg.search.merge_seed).unwrap_or(DEFAULT_SEED);
    let out = &args.output;
    if out.exists() && !out.is_dir() {
        anyhow::bail!("{}: --evolve writes into a directory, and this is a file", out.display());
    }
    if out.join(search::CHECKPOINT).exists() && !args.resume && !args.force {
        anyhow::bail!(
            "{}: holds a search checkpoint; pass --resume to continue it or --force to start over",
            out.display()
        );
    }
    let t0 = Instant::now();
    let ev = Evaluator::new(cfg, seed).with_context(|| format!("preparing {}", args.config.display()))?;
    if !args.quiet {
        eprintln!(
            "evolve: {} models cached ({:.1} MiB f32) in {:.1} s; genome of {} values",
            ev.cfg.models.len() + ev.cfg.base_model.iter().filter(|b| !ev.cfg.models.contains(b)).count(),
            ev.cache.resident_bytes() as f64 / 1048576.0,
            t0.elapsed().as_secs_f64(),
            ev.cfg.genome_len()
        );
    }
    let opts = SearchOptions { resume: args.resume, quiet: args.quiet, max_generations_this_run: None };
    let state = run_search(&ev, out, &opts)?;
    write_best(&ev, &state, out, &args.config, seed, args.quiet)
}

/// Writes `best.yml` (the best genome's recipe, with a header naming `config` and `seed`) and
/// `best.gguf` (its merge) into `out`: the end of `merge --evolve` and of `evolve finish`.
pub(super) fn write_best(
    ev: &Evaluator,
    state: &SearchState,
    out: &Path,
    config: &Path,
    seed: u64,
    quiet: bool,
) -> Result<()> {
    let best = state.best().context("the search evaluated no candidate (budget 0?)")?;
    let (decoded, mc) = ev.decode(&best.genome)?;
    let header = format!(
        "# best of {} evaluations by `llmtool merge --evolve {}` (fitness {:?}; merge with --seed {seed})\n",
        state.history.len(),
        config.display(),
        best.score.fitness
    );
    let recipe = out.join("best.yml");
    std::fs::write(&recipe, format!("{header}{}", decoded.yaml)).with_context(|| recipe.display().to_string())?;
    let merged = merge_in_memory(&mc, &ev.cache, seed)?;
    let model_path = out.join("best.gguf");
    let oopts = OutputOptions { force: true, quiet, label: "merge", shard_size: None };
    write_model(merged.arch, &merged.metadata, merged.tensors.as_ref(), None, &model_path, OutFormat::Gguf, &oopts)?;
    if !quiet {
        eprintln!(
            "evolve: {} evaluations in {:.1} s; best fitness {:.6} ({}) -> {}, {}",
            state.history.len(),
            state.elapsed,
            best.score.fitness,
            best.score.components.iter().map(|c| format!("{} {:.4}", c.name, c.value)).collect::<Vec<_>>().join(", "),
            recipe.display(),
            model_path.display()
        );
    }
    Ok(())
}
