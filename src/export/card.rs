//! The model card (`README.md`) written beside an exported GGUF: what the file is (name,
//! architecture, parameters, quantization, size) and, from a build report or a measurement at
//! export time, how good it is (perplexity, KL divergence).

use std::fmt::Write as _;

use crate::build::report::{opt, BuildReport};

/// What the card says about the file.
#[derive(Debug, Clone)]
pub struct CardFacts {
    pub title: String,
    /// `general.name`, when the GGUF has one.
    pub general_name: Option<String>,
    pub arch: String,
    pub n_params: u64,
    /// Quantization type name (`Q4_K_M`), from `general.file_type`.
    pub quant: String,
    pub file_name: String,
    pub size_bytes: u64,
    pub license: Option<String>,
    /// The chat format ("ChatML") when a template was recognised.
    pub chat_format: Option<String>,
}

/// One row of the quality table.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRow {
    pub label: String,
    pub quant: String,
    pub size_bytes: u64,
    pub ppl: Option<f64>,
    pub ppl_uncertainty: Option<f64>,
    pub kld_mean: Option<f64>,
    /// The row that measured this very file.
    pub this_file: bool,
}

/// The quality table and a sentence saying how it was measured.
#[derive(Debug, Clone)]
pub struct Quality {
    pub how: String,
    pub rows: Vec<QualityRow>,
}

impl Quality {
    /// The rows of a `llmtool build` report, one per step (and the start model); `quant_of`
    /// names a step's quantization type. The last step is marked as this file when the build
    /// passed and its size is `this_size` (the build's output is a copy of the last step).
    pub fn from_build_report(
        report: &BuildReport,
        quant_of: impl Fn(&crate::build::report::StepRecord) -> String,
        this_size: u64,
    ) -> Quality {
        let n = report.steps.len();
        let rows = report
            .steps
            .iter()
            .enumerate()
            .map(|(i, r)| QualityRow {
                label: format!("{}. {}", r.index, r.description),
                quant: quant_of(r),
                size_bytes: r.size_bytes,
                ppl: r.figures.ppl,
                ppl_uncertainty: r.figures.ppl_uncertainty,
                kld_mean: r.figures.kld_mean,
                this_file: report.passed && i + 1 == n && r.size_bytes == this_size,
            })
            .collect();
        let text = report.validate_text.as_ref().and_then(|t| t.file_name()).map(|f| f.to_string_lossy().into_owned());
        let how = match text {
            Some(t) => format!(
                "From the build report of `{}` (llmtool {}): perplexity on `{t}`, {} windows of {} tokens; \
                 KLD is the mean KL divergence of each step's output from its input.",
                report.recipe.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                report.llmtool_version,
                report.n_chunks,
                report.n_ctx
            ),
            None => format!("From the build report of `{}`.", report.recipe.display()),
        };
        Quality { how, rows }
    }
}

/// Parameters as people write them (135M, 7.2B).
pub fn params_human(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else {
        format!("{:.0}K", n / 1e3)
    }
}

/// The card's Markdown. `usage`: the section telling how to load the file (Markdown).
pub fn model_card(facts: &CardFacts, quality: Option<&Quality>, usage: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {} — GGUF {}\n", facts.title, facts.quant);
    let _ = writeln!(s, "| | |\n|---|---|");
    if let Some(n) = &facts.general_name {
        let _ = writeln!(s, "| model | {} |", md_cell(n));
    }
    let _ = writeln!(s, "| architecture | `{}` |", facts.arch);
    let _ = writeln!(s, "| parameters | {} ({}) |", params_human(facts.n_params), facts.n_params);
    let _ = writeln!(s, "| quantization | {} |", facts.quant);
    let _ = writeln!(
        s,
        "| file | `{}`, {:.1} MB ({:.2} bits per weight) |",
        facts.file_name,
        facts.size_bytes as f64 / 1e6,
        8.0 * facts.size_bytes as f64 / facts.n_params.max(1) as f64
    );
    if let Some(c) = &facts.chat_format {
        let _ = writeln!(s, "| chat format | {c} |");
    }
    if let Some(l) = &facts.license {
        let _ = writeln!(s, "| license | {} |", md_cell(l));
    }
    if let Some(q) = quality {
        let _ = writeln!(s, "\n## Quality\n\n{}\n", q.how);
        let _ = writeln!(s, "| | quant type | size MB | PPL | KLD |\n|---|---|---:|---:|---:|");
        for r in &q.rows {
            let ppl = match (r.ppl, r.ppl_uncertainty) {
                (Some(p), Some(u)) => format!("{p:.4} ± {u:.4}"),
                (p, _) => opt(p, 4),
            };
            let label = if r.this_file { format!("**{}** (this file)", md_cell(&r.label)) } else { md_cell(&r.label) };
            let _ = writeln!(
                s,
                "| {label} | {} | {:.1} | {ppl} | {} |",
                r.quant,
                r.size_bytes as f64 / 1e6,
                opt(r.kld_mean, 6)
            );
        }
    }
    let _ = writeln!(s, "\n## Use\n\n{usage}");
    let _ = writeln!(s, "\nWritten by llmtool {}.", env!("CARGO_PKG_VERSION"));
    s
}

/// Text safe in a Markdown table cell (no pipes, no line breaks).
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}
