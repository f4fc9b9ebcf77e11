//! The build report: one row per step (and one for the start model) with its figures,
//! written as `report.json` and `report.md` and printed as a summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Figures measured on one model (the start model or a step's output).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Figures {
    /// Perplexity on validate.text and its ± uncertainty.
    pub ppl: Option<f64>,
    pub ppl_uncertainty: Option<f64>,
    /// Perplexity change against the step's input, percent.
    pub ppl_change_pct: Option<f64>,
    /// KL divergence of the output from the step's input (mean, 99th percentile) and the
    /// share of tokens with the same top-1 token.
    pub kld_mean: Option<f64>,
    pub kld_p99: Option<f64>,
    pub same_top: Option<f64>,
    /// Mean accuracy over the task files, and per file.
    pub task_acc: Option<f64>,
    pub task_accs: Vec<(String, f64)>,
}

/// One step of a build.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// 0 for the start model; steps count from 1.
    pub index: usize,
    pub kind: String,
    pub description: String,
    pub key: String,
    pub cached: bool,
    pub seconds: f64,
    pub artifact: PathBuf,
    pub size_bytes: u64,
    pub bits_per_weight: f64,
    pub figures: Figures,
    /// Gate failures of this step ("max_kld: 0.0712 > 0.05").
    pub gate_failures: Vec<String>,
}

/// The whole build (`export --report` reads it back for a model card).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BuildReport {
    pub recipe: PathBuf,
    pub llmtool_version: String,
    pub passed: bool,
    pub failure: Option<String>,
    pub validate_text: Option<PathBuf>,
    pub n_ctx: usize,
    pub n_chunks: usize,
    pub steps: Vec<StepRecord>,
    pub outputs: Vec<PathBuf>,
    pub seconds: f64,
}

/// A figure with `digits` decimals, or "–" when absent.
pub(crate) fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

impl BuildReport {
    /// The report as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let status = if self.passed { "passed" } else { "FAILED" };
        let _ = writeln!(s, "# Build report: {}\n", self.recipe.display());
        let _ = writeln!(s, "llmtool {} · build {status} · {:.1} s\n", self.llmtool_version, self.seconds);
        if let Some(t) = &self.validate_text {
            let _ = writeln!(
                s,
                "Perplexity on `{}`, {} windows of {} tokens; ΔPPL and KLD are against each step's input.\n",
                t.display(),
                self.n_chunks,
                self.n_ctx
            );
        }
        let _ = writeln!(
            s,
            "| # | step | cached | PPL | ΔPPL % | KLD mean | KLD 99 % | same top-1 % | task acc | size MB | bits/weight | time s | gates |"
        );
        let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in &self.steps {
            let f = &r.figures;
            let gates = if r.gate_failures.is_empty() { "ok".to_string() } else { r.gate_failures.join("; ") };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.2} | {:.1} | {} |",
                r.index,
                r.description,
                if r.cached { "yes" } else { "no" },
                opt(f.ppl, 4),
                opt(f.ppl_change_pct, 3),
                opt(f.kld_mean, 6),
                opt(f.kld_p99, 6),
                opt(f.same_top.map(|x| 100.0 * x), 2),
                opt(f.task_acc, 3),
                r.size_bytes as f64 / 1e6,
                r.bits_per_weight,
                r.seconds,
                gates
            );
        }
        if let Some(fail) = &self.failure {
            let _ = writeln!(s, "\n**Failure:** {fail}");
        }
        if !self.outputs.is_empty() {
            let _ = writeln!(s, "\nOutputs:");
            for o in &self.outputs {
                let _ = writeln!(s, "- `{}`", o.display());
            }
        }
        s
    }

    /// Writes `report.json` and `report.md` into `dir` (each by rename: never half-written).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&dir.join("report.json"), &json)?;
        write_atomic(&dir.join("report.md"), self.markdown().as_bytes())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
