//! `quantize --target-bpw B | --target-size SIZE --calibration TEXT`: a type per tensor from
//! measured sensitivity (`passes::quantize_sensitivity`) and a bit allocation under the size
//! asked for (`passes::quantize_mix`). The choice becomes `--keep` overrides of an ordinary
//! quantization, so the output is written by the same code as any `quantize` and
//! `--save-mix` lines reproduce it with `quantize --type BASE --keep …` (or `--keep-file`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use llmtool_formats::gguf::GgufHeader;
use llmtool_formats::imatrix::Imatrix;
use llmtool_formats::{GgmlType, Metadata, TensorInfo};

use super::perplexity::{bos_of, read_text, tokenize};
use crate::eval::imatrix::{compute_imatrix, ImatrixCollector};
use crate::eval::validate::tokenize_prefix;
use crate::eval::PplOptions;
use crate::infer::InferModel;
use crate::model::Model;
use crate::passes::quantize::{plan, FileType, ModelFacts, Override, QuantizeParams, Reason};
use crate::passes::quantize_mix::{allocate, keep_line, parse_size, total_damage, MixError};
use crate::passes::quantize_sensitivity::{self as sens, Groups, Sensitivity};
use crate::passes::quantize_weights::ImportanceWeights;
use crate::tokenizer::Tokenizer;

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

/// The chosen mix: a base file type and one override per mixable tensor.
pub struct Mix {
    pub ftype: FileType,
    pub overrides: Vec<Override>,
}

/// Reads `PATTERN=TYPE` lines (`#` comments and blank lines skipped).
pub fn read_keep_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect())
}

/// The calibration windows: `--calib-chunks` of `--calib-ctx` tokens, as perplexity cuts them.
fn calib_opts(args: &MixArgs, tok: &Tokenizer) -> PplOptions {
    PplOptions {
        n_ctx: args.calib_ctx,
        n_chunks: Some(args.calib_chunks),
        batch: args.calib_ctx,
        bos: bos_of(Some(tok)),
    }
}

/// Computes an importance matrix on the calibration text (when none is given), as `llmtool
/// imatrix` would on the same windows.
pub fn calibration_imatrix(args: &MixArgs, model: &Model, input: &Path, quiet: bool) -> Result<Imatrix> {
    let text_path = args.calibration.as_deref().context("--calibration is required")?;
    let mut im = InferModel::load(model).with_context(|| format!("loading {}", input.display()))?;
    let tok = Tokenizer::from_model(model).with_context(|| format!("tokenizer of {}", input.display()))?;
    let text = read_text(text_path)?;
    let tokens = tokenize(Some(&tok), input, &text)?;
    let opts = calib_opts(args, &tok);
    let collector = Arc::new(ImatrixCollector::new(false));
    let r = compute_imatrix(&mut im, collector.clone(), &tokens, &opts, |_| {})?;
    if !quiet {
        eprintln!("imatrix: computed on {} windows of {} tokens of {}", r.n_chunks, r.n_ctx, text_path.display());
    }
    Ok(collector.to_imatrix(vec![text_path.display().to_string()], r.n_chunks as u32, args.calib_ctx as u32))
}

/// Bytes of the tensors the mix does not choose (their planned types) and the header and
/// padding around all tensors, for an output with `metadata`.
fn fixed_bytes(model: &Model, metadata: &Metadata, mixable: &[TensorInfo]) -> Result<(u64, u64)> {
    let facts = ModelFacts::from_metadata(&model.metadata);
    let params = QuantizeParams {
        ftype: FileType::Q8_0,
        pure: true,
        overrides: vec![],
        widen_vectors: model.format == crate::model::ModelFormat::HfDir,
        has_imatrix: false,
    };
    let p = plan(model.tensors.tensor_infos(), &facts, &params)?;
    let kept: u64 = p.iter().filter(|t| t.reason == Reason::Kept).map(|t| t.info().n_bytes().unwrap_or(0)).sum();
    // The header with every mixable tensor at F16: its size does not depend on the types.
    let infos: Vec<TensorInfo> = p
        .iter()
        .map(|t| {
            let mut i = t.info();
            if mixable.iter().any(|m| m.name == t.name) {
                i.ty = GgmlType::F16;
            }
            i
        })
        .collect();
    let n_tensors = infos.len() as u64;
    let data: u64 = infos.iter().map(|i| i.n_bytes().unwrap_or(0)).sum();
    let header = GgufHeader::new(metadata.clone(), infos)?;
    let layout = header.layout()?;
    // Padding between tensors differs with the types: allow a full alignment per tensor.
    let overhead = layout.file_size - data + n_tensors * header.alignment;
    Ok((kept, overhead))
}

/// Measures (or loads) the sensitivities and allocates the bytes; prints the mix.
pub fn choose(
    args: &MixArgs,
    model: &Model,
    input: &Path,
    weights: Option<&ImportanceWeights>,
    metadata: &Metadata,
    quiet: bool,
) -> Result<Mix> {
    let allowed = allowed_types(args)?;
    let mixable = sens::mixable(model.tensors.tensor_infos());
    if mixable.is_empty() {
        bail!("{}: no tensor llama.cpp would quantize; nothing to mix", input.display());
    }
    let (kept, overhead) = fixed_bytes(model, metadata, &mixable)?;
    let n_weights: u64 = model.tensors.tensor_infos().iter().map(|t| t.ne.iter().product::<u64>()).sum();
    let (what, budget) = match (args.target_bpw, &args.target_size) {
        (Some(b), _) => {
            if !(b.is_finite() && b > 0.0) {
                bail!("--target-bpw {b}: expected a positive number of bits per weight");
            }
            let total = (b * n_weights as f64 / 8.0).floor() as u64;
            (format!("{b} bpw"), total.checked_sub(kept))
        }
        (None, Some(s)) => {
            let size = parse_size(s)?;
            (format!("{size} bytes"), size.checked_sub(kept + overhead))
        }
        (None, None) => bail!("--target-bpw or --target-size is required"),
    };
    let Some(budget) = budget else {
        bail!("target {what}: smaller than the tensors that are never quantized ({kept} bytes) and the header");
    };
    // Refuse a budget below every tensor at its smallest type before measuring anything.
    let has_weights = weights.is_some();
    let min: u64 = mixable
        .iter()
        .map(|t| {
            sens::candidates(t.ne.first().copied().unwrap_or(0), has_weights)
                .into_iter()
                .filter(|ty| allowed.as_ref().is_none_or(|a| a.contains(ty)))
                .map(|ty| TensorInfo { name: String::new(), ty, ne: t.ne.clone() }.n_bytes().unwrap_or(u64::MAX))
                .min()
                .unwrap_or(u64::MAX)
        })
        .fold(0u64, u64::saturating_add);
    if min > budget {
        return Err(MixError::BudgetTooSmall { budget, min }).with_context(|| format!("target {what}"));
    }
    let table = match &args.sensitivity {
        Some(p) => Sensitivity::load(p, &mixable)?,
        None => measure(args, model, input, &mixable, weights, allowed.as_deref(), quiet)?,
    };
    if let Some(p) = &args.save_sensitivity {
        table.save(p)?;
    }
    let options = table.options(allowed.as_deref())?;
    let pick = allocate(&options, budget).with_context(|| format!("target {what}"))?;
    let chosen: Vec<(String, GgmlType)> =
        options.iter().zip(&pick).map(|(t, &i)| (t.name.clone(), t.choices[i].ty)).collect();
    // The base file type: the one whose default type covers the most weights.
    let mut by_type: BTreeMap<&'static str, (GgmlType, u64)> = BTreeMap::new();
    for (info, (_, ty)) in mixable.iter().zip(&chosen) {
        let e = by_type.entry(ty.name()).or_insert((*ty, 0));
        e.1 += info.ne.iter().product::<u64>();
    }
    let main_ty = by_type.values().max_by_key(|(_, n)| *n).map(|(t, _)| *t).unwrap_or(GgmlType::Q8_0);
    let ftype = FileType::ALL
        .iter()
        .copied()
        .find(|f| f.default_type() == main_ty && main_ty.is_quantized())
        .unwrap_or(FileType::Q8_0);
    let lines: Vec<String> = chosen.iter().map(|(n, ty)| keep_line(n, *ty)).collect();
    let overrides = lines.iter().map(|l| Override::parse(l)).collect::<Result<Vec<_>, _>>()?;
    let predicted = total_damage(&options, &pick);
    if !quiet {
        let counts: Vec<String> =
            by_type.keys().map(|n| format!("{n} ×{}", chosen.iter().filter(|(_, t)| t.name() == *n).count())).collect();
        eprintln!(
            "mix for {what}: {} tensors ({}), base file type {}, predicted mean KLD {predicted:.6} (sum of per-tensor estimates)",
            chosen.len(),
            counts.join(", "),
            ftype.name()
        );
    }
    if let Some(p) = &args.save_mix {
        write_mix(p, &lines, ftype, &what, predicted, weights.is_some())?;
    }
    Ok(Mix { ftype, overrides })
}

fn measure(
    args: &MixArgs,
    model: &Model,
    input: &Path,
    mixable: &[TensorInfo],
    weights: Option<&ImportanceWeights>,
    allowed: Option<&[GgmlType]>,
    quiet: bool,
) -> Result<Sensitivity> {
    let text_path = args.calibration.as_deref().context("--calibration is required")?;
    let text = read_text(text_path)?;
    let tok = Tokenizer::from_model(model).with_context(|| format!("tokenizer of {}", input.display()))?;
    let tokens = tokenize_prefix(&tok, &text, args.calib_ctx * args.calib_chunks)?;
    let opts = calib_opts(args, &tok);
    let t0 = std::time::Instant::now();
    let errors = sens::candidate_errors(model.tensors.as_ref(), mixable, weights, allowed, |i, n, name| {
        if !quiet && (i % 20 == 0) {
            eprintln!("sensitivity: weighted errors {i}/{n} ({name})");
        }
    })?;
    if !quiet {
        eprintln!("sensitivity: weighted errors of {} tensors in {:.1} s", mixable.len(), t0.elapsed().as_secs_f64());
    }
    let t1 = std::time::Instant::now();
    let table = sens::measure(
        &model.metadata,
        model.tensors.as_ref(),
        mixable,
        errors,
        weights,
        &tokens,
        &opts,
        args.calib_groups,
        |i, n, group, kld| {
            if !quiet && (i % 10 == 0 || i == n || args.calib_groups == Groups::Kind) {
                eprintln!("sensitivity: KLD {i}/{n}: {group} at {} → {kld:.6}", sens::CALIB_TYPE);
            }
        },
    )?;
    if !quiet {
        eprintln!(
            "sensitivity: {} KLD measurements on {} tokens in {:.1} s",
            table.group_kld.len(),
            table.calib_tokens,
            t1.elapsed().as_secs_f64()
        );
    }
    Ok(table)
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

fn write_mix(path: &Path, lines: &[String], ftype: FileType, what: &str, predicted: f64, imatrix: bool) -> Result<()> {
    let mut f = llmtool_formats::atomic::AtomicFile::create(path, true)?;
    let w = f.writer();
    writeln!(w, "# llmtool quantize mix for {what}; predicted mean KLD {predicted:.6}")?;
    writeln!(
        w,
        "# reproduce: llmtool quantize IN OUT --type {}{} --keep-file {}",
        ftype.name(),
        if imatrix { " --imatrix IMATRIX" } else { "" },
        path.display()
    )?;
    for l in lines {
        writeln!(w, "{l}")?;
    }
    f.commit()?;
    Ok(())
}
