//! `llmtool eval MODEL --task FILE.jsonl…`: multiple-choice tasks scored by log-likelihood
//! (lm-eval-harness's `acc` / `acc_norm`) on the built-in inference core.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::eval::tasks::{self, TaskOptions, TaskSet};
use crate::infer::InferModel;
use crate::model::Model;
use crate::tokenizer::Tokenizer;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The model: a GGUF file or an HF model directory.
    pub model: PathBuf,
    /// A task file (JSON lines; see README "llmtool eval"). Repeat for several tasks.
    #[arg(long = "task", value_name = "FILE.jsonl", required = true)]
    pub tasks: Vec<PathBuf>,
    /// Score at most the first N items of each task.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("setting up the thread pool")?;
    }
    if args.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    // Task files first: a bad line is reported before the model is loaded.
    let sets = args.tasks.iter().map(|p| TaskSet::read(p)).collect::<Result<Vec<_>, _>>()?;
    let model = Model::open(&args.model).with_context(|| format!("opening {}", args.model.display()))?;
    let im = InferModel::load(&model).with_context(|| format!("loading {}", args.model.display()))?;
    let tok = Tokenizer::from_model(&model).with_context(|| format!("tokenizer of {}", args.model.display()))?;
    let opts = TaskOptions { limit: args.limit };
    let bar = (!args.quiet).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} items, eta {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        b
    });
    let report = tasks::evaluate_tasks_with_progress(&im, &tok, &sets, &opts, |done, total| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    crate::infer::timing::report(report.seconds);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let w = report.tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(0).max(7);
    println!("{:<w$} {:>6}  {:>17}  {:>17}  {:>6}", "task", "n", "acc", "acc_norm", "p_gold");
    let row = |name: &str, s: &tasks::Scores| {
        println!(
            "{name:<w$} {:>6}  {:.4} ± {:.4}  {:.4} ± {:.4}  {:.4}",
            s.n, s.acc.value, s.acc.stderr, s.acc_norm.value, s.acc_norm.stderr, s.p_gold.value
        );
    };
    for t in &report.tasks {
        row(&t.name, &t.scores);
    }
    if report.tasks.len() > 1 {
        row("overall", &report.overall);
    }
    eprintln!(
        "{} items, {} tokens in {:.2} s: {:.2} items/s",
        report.overall.n, report.tokens_evaluated, report.seconds, report.items_per_second
    );
    Ok(())
}
