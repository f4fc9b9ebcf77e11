//! `llmtool eval-worker EVOLVE.yml`: the persistent worker of a distributed `merge --evolve`.
//! It loads the inputs and fitness data once ([`Evaluator::new`], as the in-process search
//! does), prints a ready line, then answers each genome read from stdin with one fitness
//! record on stdout (JSON lines, `crate::evolve::protocol`), scoring with the same
//! [`Evaluator::evaluate`] as the in-process search. A line it cannot evaluate gets an error
//! record and the worker reads on; end of input ends it (exit 0).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use super::merge::DEFAULT_SEED;
use crate::evolve::protocol::{error_record, ok_record, parse_request};
use crate::evolve::search::Evaluator;
use crate::evolve::state::HistoryRow;
use crate::evolve::EvolveConfig;

#[derive(clap::Args, Debug)]
pub struct EvalWorkerArgs {
    /// The search's EVOLVE.yml (the same file the driver's `evolve ask|tell|finish` use).
    pub config: PathBuf,
    /// Seed of the random merge methods (default: the config's search.merge_seed, then merge's default).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The name put in every record (default: HOSTNAME:PID).
    #[arg(long, value_name = "NAME")]
    pub worker_id: Option<String>,
    /// Worker threads (default: all cores; give each worker its share when several share a machine).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

pub fn run(args: EvalWorkerArgs) -> Result<()> {
    if let Some(n) = args.threads {
        anyhow::ensure!(n >= 1, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("setting up the thread pool")?;
    }
    let worker = args.worker_id.clone().unwrap_or_else(|| format!("{}:{}", hostname(), std::process::id()));
    let t0 = Instant::now();
    let cfg = EvolveConfig::load(&args.config)?;
    let seed = args.seed.or(cfg.search.merge_seed).unwrap_or(DEFAULT_SEED);
    let ev = Evaluator::new(cfg, seed).with_context(|| format!("preparing {}", args.config.display()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let ready = serde_json::json!({
        "ready": true,
        "worker": worker,
        "genome_len": ev.cfg.genome_len(),
        "load_seconds": t0.elapsed().as_secs_f64(),
    });
    writeln!(out, "{ready}")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let record = match parse_request(&line) {
            Err(bad) => {
                let (e, extra) = *bad;
                error_record(None, extra, &e.to_string(), &worker)
            }
            Ok(req) => {
                let at = Some((req.generation, req.index));
                // A panic in one candidate must not take the worker (and its loaded inputs) down.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.evaluate(&req.genome)));
                match r {
                    Ok(Ok(e)) => ok_record(&req, &HistoryRow::new(req.generation, req.index, &req.genome, e), &worker),
                    Ok(Err(e)) => error_record(at, req.extra, &e.to_string(), &worker),
                    Err(_) => error_record(at, req.extra, "the evaluation panicked (see the worker's stderr)", &worker),
                }
            }
        };
        writeln!(out, "{record}")?;
        out.flush()?;
    }
    Ok(())
}
