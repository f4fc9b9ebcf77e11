//! `llmtool eval-candidate EVOLVE.yml --genome "x1,x2,…"`: decodes one genome, merges it in
//! memory and prints its fitness — the worker a Ray task or a Slurm job array can call to
//! spread the candidates of a generation over machines (see README "Evolutionary merge").

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::merge::DEFAULT_SEED;
use crate::evolve::search::Evaluator;
use crate::evolve::EvolveConfig;

#[derive(clap::Args, Debug)]
pub struct EvalCandidateArgs {
    /// The search's EVOLVE.yml.
    pub config: PathBuf,
    /// The genome: comma-separated numbers (a row's x0,x1,… of history.csv, or what CMA-ES asked).
    #[arg(long, allow_hyphen_values = true)]
    pub genome: String,
    /// Seed of the random merge methods (default: the config's search.merge_seed, then merge's default).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the result as one JSON object (fitness, components, params, recipe, seconds).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalCandidateArgs) -> Result<()> {
    let cfg = EvolveConfig::load(&args.config)?;
    let genome: Vec<f64> = args
        .genome
        .split(',')
        .map(|s| s.trim().parse::<f64>().with_context(|| format!("--genome: '{s}' is not a number")))
        .collect::<Result<_>>()?;
    if let Some(i) = genome.iter().position(|x| !x.is_finite()) {
        anyhow::bail!("--genome: value {i} ({}) is not finite", genome[i]);
    }
    let seed = args.seed.or(cfg.search.merge_seed).unwrap_or(DEFAULT_SEED);
    let ev = Evaluator::new(cfg, seed)?;
    let e = ev.evaluate(&genome)?;
    if args.json {
        let v = serde_json::json!({
            "fitness": e.score.fitness,
            "components": e.score.components.iter().map(|c| serde_json::json!({
                "name": c.name, "value": c.value, "contribution": c.contribution})).collect::<Vec<_>>(),
            "params": e.decoded.params.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "genome": genome,
            "recipe": e.decoded.yaml,
            "seconds": e.seconds,
        });
        println!("{v}");
    } else {
        println!("fitness {:?}", e.score.fitness);
        for c in &e.score.components {
            println!("  {}: {} (adds {:?})", c.name, c.value, c.contribution);
        }
        for (k, v) in &e.decoded.params {
            println!("  {k} = {v}");
        }
    }
    Ok(())
}
