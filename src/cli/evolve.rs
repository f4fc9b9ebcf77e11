//! `llmtool evolve ask|tell|finish EVOLVE.yml --state DIR`: the `merge --evolve` search driven
//! from outside the process (the Ray driver in `python/llmtool_ray`, or any scheduler).
//! llmtool keeps the CMA-ES state and the history in `DIR/checkpoint.json`, the same file the
//! in-process search writes, so a run can move between `merge --evolve --resume` and an
//! external driver in either direction.
//!
//! - `ask` prints the pending generation's candidates as request lines (and records them in
//!   the checkpoint, so asking again prints the same ones); nothing when the search is over.
//! - `tell RESULTS.jsonl` reads the workers' records of that generation (other generations'
//!   records are skipped), tells CMA-ES in candidate order and writes checkpoint.json,
//!   history.csv and fitness.svg; it prints one status line (JSON).
//! - `finish` writes best.yml and best.gguf as `merge --evolve` does at its end.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::merge::{write_best, DEFAULT_SEED};
use crate::evolve::protocol::{collect_generation, request_line};
use crate::evolve::search::Evaluator;
use crate::evolve::state::{SearchState, CHECKPOINT};
use crate::evolve::EvolveConfig;

#[derive(clap::Args, Debug)]
pub struct EvolveArgs {
    #[command(subcommand)]
    pub command: EvolveCommand,
}

#[derive(clap::Args, Debug)]
pub struct StateArgs {
    /// The search's EVOLVE.yml.
    pub config: PathBuf,
    /// The state directory (also the output directory: checkpoint.json, history.csv, fitness.svg, best.*).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
}

#[derive(clap::Subcommand, Debug)]
pub enum EvolveCommand {
    /// Print the next generation's genomes (JSON lines); nothing when the search is over.
    Ask(StateArgs),
    /// Tell the search the fitness records (eval-worker's JSON lines) of the pending generation.
    Tell {
        #[command(flatten)]
        state: StateArgs,
        /// The workers' records (JSON lines; records of earlier generations are skipped).
        results: PathBuf,
    },
    /// Write best.yml and best.gguf from the state, as `merge --evolve` does at its end.
    Finish {
        #[command(flatten)]
        state: StateArgs,
        /// Seed of the random merge methods (default: the config's search.merge_seed, then merge's default).
        #[arg(long)]
        seed: Option<u64>,
        /// No progress bar or summary.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn open(a: &StateArgs, create: bool) -> Result<(EvolveConfig, SearchState)> {
    let cfg = EvolveConfig::load(&a.config)?;
    if a.state.join(CHECKPOINT).exists() {
        let st = SearchState::load(&a.state, &cfg)?;
        return Ok((cfg, st));
    }
    anyhow::ensure!(create, "{}: no {CHECKPOINT} (run `llmtool evolve ask` first)", a.state.display());
    if a.state.exists() && !a.state.is_dir() {
        anyhow::bail!("{}: the state must be a directory, and this is a file", a.state.display());
    }
    std::fs::create_dir_all(&a.state).with_context(|| a.state.display().to_string())?;
    let st = SearchState::fresh(&cfg)?;
    Ok((cfg, st))
}

pub fn run(args: EvolveArgs) -> Result<()> {
    match args.command {
        EvolveCommand::Ask(a) => ask(&a),
        EvolveCommand::Tell { state, results } => tell(&state, &results),
        EvolveCommand::Finish { state, seed, quiet } => finish(&state, seed, quiet),
    }
}

fn ask(a: &StateArgs) -> Result<()> {
    let (cfg, mut st) = open(a, true)?;
    if st.finished(&cfg) {
        eprintln!("evolve: the search is over ({} evaluations); run `llmtool evolve finish`", st.history.len());
        return Ok(());
    }
    let generation = st.cmaes.generation();
    let xs = st.cmaes.ask();
    if st.asked_at.is_none() {
        st.asked_at = Some(now());
    }
    st.write_checkpoint(&a.state)?;
    let mut out = String::new();
    for (i, x) in xs.iter().enumerate() {
        out.push_str(&request_line(generation, i, x));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

fn tell(a: &StateArgs, results: &Path) -> Result<()> {
    let (cfg, mut st) = open(a, false)?;
    let text = std::fs::read_to_string(results).with_context(|| results.display().to_string())?;
    let generation = st.cmaes.generation();
    let n = st.cmaes.pending().len();
    anyhow::ensure!(n > 0, "{}: no candidates are pending (run `llmtool evolve ask` first)", a.state.display());
    let rows = collect_generation(&text, generation, n).with_context(|| results.display().to_string())?;
    st.tell_generation(rows)?;
    if let Some(t) = st.asked_at.take() {
        st.elapsed += (now() - t).max(0.0);
    }
    st.write_outputs(&a.state)?;
    let status = serde_json::json!({
        "generation": generation,
        "evaluations": st.history.len(),
        "best_fitness": st.best().map(|b| b.score.fitness),
        "finished": st.finished(&cfg),
    });
    println!("{status}");
    Ok(())
}

fn finish(a: &StateArgs, seed: Option<u64>, quiet: bool) -> Result<()> {
    let (cfg, st) = open(a, false)?;
    if !st.finished(&cfg) && !quiet {
        eprintln!("evolve: the search is not over yet; writing the best of {} evaluations", st.history.len());
    }
    let seed = seed.or(cfg.search.merge_seed).unwrap_or(DEFAULT_SEED);
    let ev = Evaluator::new(cfg, seed).with_context(|| format!("preparing {}", a.config.display()))?;
    st.write_outputs(&a.state)?;
    write_best(&ev, &st, &a.state, &a.config, seed, quiet)
}
