//! `quantize --target-bpw B | --target-size SIZE --calibration TEXT`: the arguments of a
//! measured mix ([`crate::pipeline::QuantizeMix`]: a type per tensor from measured
//! sensitivity and a bit allocation under the size asked for) and its progress lines. The
//! choice becomes `--keep` overrides of an ordinary quantization, so the output is written by
//! the same code as any `quantize` and `--save-mix` lines reproduce it with `quantize --type
//! BASE --keep …` (or `--keep-file`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use llmtool_formats::GgmlType;

use crate::passes::quantize_mix::parse_size;
use crate::passes::quantize_sensitivity::{self as sens, Groups};
use crate::pipeline::{MixEvent, MixImatrix, MixOptions, MixTarget};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct MixArgs {
    /// Choose a type per tensor by measured sensitivity so that the tensor data averages B bits
    /// per weight (all tensors counted, as the summary's bpw); needs --calibration.
    #[arg(long, value_name = "B", conflicts_with_all = ["target_size", "ty"], requires = "calibration")]
    pub target_bpw: Option<f64>,
    /// Like --target-bpw, for a whole output file of at most SIZE bytes (K, M, G suffixes:
    /// powers of 1024).
    #[arg(long, value_name = "SIZE", conflicts_with = "ty", requires = "calibration")]
    pub target_size: Option<String>,
    /// UTF-8 text the sensitivities are measured on (KL divergence of the core's outputs).
    #[arg(long, value_name = "TEXT")]
    pub calibration: Option<PathBuf>,
    /// Windows of the calibration text scored per measurement.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub calib_chunks: usize,
    /// Window length of the calibration measurements.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub calib_ctx: usize,
    /// One KLD measurement per tensor (`tensor`, most precise) or per tensor kind over all
    /// layers (`kind`: about ten runs).
    #[arg(long, value_enum, default_value_t = Groups::Tensor)]
    pub calib_groups: Groups,
    /// Only these tensor types (comma-separated) may be chosen, e.g. those a runtime supports;
    /// default: all that fit each tensor's rows (IQ1_S … Q8_0, F16).
    #[arg(long, value_name = "T,T,…", value_delimiter = ',')]
    pub candidates: Vec<String>,
    /// Write the chosen mix as `PATTERN=TYPE` lines (one per tensor): `quantize --type BASE
    /// --keep-file FILE` (or each line as --keep) with the same imatrix reproduces the output.
    #[arg(long, value_name = "FILE")]
    pub save_mix: Option<PathBuf>,
    /// Save the measured sensitivity table (JSON) for later runs at other sizes.
    #[arg(long, value_name = "FILE")]
    pub save_sensitivity: Option<PathBuf>,
    /// Reuse a table saved by --save-sensitivity instead of measuring (same model and imatrix).
    #[arg(long, value_name = "FILE")]
    pub sensitivity: Option<PathBuf>,
}

impl MixArgs {
    pub fn active(&self) -> bool {
        self.target_bpw.is_some() || self.target_size.is_some()
    }
}

/// Reads `PATTERN=TYPE` lines (`#` comments and blank lines skipped).
pub fn read_keep_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect())
}

/// The typed options of the mix `args` asks for (checked by [`check_args`] first).
pub fn options(args: &MixArgs, imatrix: MixImatrix) -> Result<MixOptions> {
    let target = match (args.target_bpw, &args.target_size) {
        (Some(b), _) => MixTarget::Bpw(b),
        (None, Some(s)) => MixTarget::Size(parse_size(s)?),
        (None, None) => bail!("--target-bpw or --target-size is required"),
    };
    let calibration = args.calibration.as_deref().context("--calibration is required")?;
    let mut o = MixOptions::new(target, calibration, imatrix);
    o.calib_chunks = args.calib_chunks;
    o.calib_ctx = args.calib_ctx;
    o.groups = args.calib_groups;
    o.candidates = allowed_types(args)?;
    o.sensitivity = args.sensitivity.clone();
    o.save_sensitivity = args.save_sensitivity.clone();
    o.save_mix = args.save_mix.clone();
    Ok(o)
}

/// The progress lines of choosing a mix (on stderr).
pub fn print_event(e: MixEvent<'_>, o: &MixOptions) {
    match e {
        MixEvent::ImatrixComputed { n_windows, ctx } => {
            eprintln!("imatrix: computed on {n_windows} windows of {ctx} tokens of {}", o.calibration.display())
        }
        MixEvent::ImatrixSaved(p) => {
            eprintln!("imatrix: saved to {} (give it as --imatrix to reproduce the mix)", p.display())
        }
        MixEvent::ImatrixUsed { path, used, loaded, chunks } => {
            eprintln!("imatrix {}: {used} of {loaded} entries used, {chunks} chunk(s)", path.display())
        }
        MixEvent::Errors { i, n, name } => {
            if i % 20 == 0 {
                eprintln!("sensitivity: weighted errors {i}/{n} ({name})");
            }
        }
        MixEvent::ErrorsDone { n, seconds } => {
            eprintln!("sensitivity: weighted errors of {n} tensors in {seconds:.1} s")
        }
        MixEvent::Kld { i, n, group, kld } => {
            if i % 10 == 0 || i == n || o.groups == Groups::Kind {
                eprintln!("sensitivity: KLD {i}/{n}: {group} at {} → {kld:.6}", sens::CALIB_TYPE);
            }
        }
        MixEvent::KldDone { n, tokens, seconds } => {
            eprintln!("sensitivity: {n} KLD measurements on {tokens} tokens in {seconds:.1} s")
        }
        MixEvent::Chosen(c) => {
            let counts: Vec<String> = c.counts.iter().map(|(n, k)| format!("{n} ×{k}")).collect();
            eprintln!(
                "mix for {}: {} tensors ({}), base file type {}, predicted mean KLD {:.6} (sum of per-tensor estimates)",
                c.what,
                c.lines.len(),
                counts.join(", "),
                c.ftype.name(),
                c.predicted
            );
        }
    }
}

/// Checks the mix arguments that need no model (before any long step).
pub fn check_args(args: &MixArgs) -> Result<()> {
    allowed_types(args)?;
    if let Some(size) = &args.target_size {
        parse_size(size)?;
    }
    if let Some(b) = args.target_bpw {
        if !(b.is_finite() && b > 0.0) {
            bail!("--target-bpw {b}: expected a positive number of bits per weight");
        }
    }
    if let (Some(t), None) = (&args.sensitivity, &args.save_sensitivity) {
        if !t.exists() {
            bail!("--sensitivity {}: no such file (write one with --save-sensitivity)", t.display());
        }
    }
    Ok(())
}

/// `--candidates` as types (None: all).
fn allowed_types(args: &MixArgs) -> Result<Option<Vec<GgmlType>>> {
    if args.candidates.is_empty() {
        return Ok(None);
    }
    let types = args
        .candidates
        .iter()
        .map(|n| {
            GgmlType::from_name(&n.trim().to_ascii_uppercase()).filter(|t| sens::CANDIDATES.contains(t)).with_context(
                || format!("--candidates: '{n}' is not a candidate type (expected some of {})", candidate_names()),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(types))
}

fn candidate_names() -> String {
    sens::CANDIDATES.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}
