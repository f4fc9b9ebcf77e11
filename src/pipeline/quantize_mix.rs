//! `quantize --target-bpw B | --target-size SIZE --calibration TEXT` as a pass: a type per
//! tensor from measured sensitivity (`passes::quantize_sensitivity`) and a bit allocation
//! under the size asked for (`passes::quantize_mix`). The choice becomes `--keep`-style
//! overrides of an ordinary [`Quantize`], so the output is the one `quantize --type BASE
//! --keep …` with the same imatrix writes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use llmtool_formats::gguf::GgufHeader;
use llmtool_formats::imatrix::Imatrix;
use llmtool_formats::{GgmlType, Metadata, TensorInfo};

use super::imatrix::{compute_imatrix, ImatrixOptions};
use super::{quantized_metadata, Output, Pass, PipelineError, Quantize, QuantizeOptions, Stage};
use crate::eval::validate::{bos_of, read_text, tokenize_prefix, ValidateError};
use crate::eval::PplOptions;
use crate::passes::quantize::{plan, FileType, ModelFacts, Override, QuantizeParams, Reason};
use crate::passes::quantize_mix::{allocate, keep_line, total_damage, MixError};
use crate::passes::quantize_sensitivity::{self as sens, Groups, Sensitivity};
use crate::passes::quantize_weights::ImportanceWeights;
use crate::tokenizer::Tokenizer;

/// Errors of choosing a mix.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeMixError {
    #[error("no tensor llama.cpp would quantize; nothing to mix")]
    NothingToMix,
    #[error("target {0} bpw: expected a positive number of bits per weight")]
    BadBpw(f64),
    #[error("target {what}: smaller than the tensors that are never quantized ({kept} bytes) and the header")]
    BelowFixed { what: String, kept: u64 },
    #[error("target {what}")]
    Allocate {
        what: String,
        #[source]
        source: MixError,
    },
    #[error(transparent)]
    Sensitivity(#[from] sens::SensitivityError),
    #[error("writing the mix {}", path.display())]
    WriteMix {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("saving the calibration imatrix {}", path.display())]
    SaveImatrix {
        path: PathBuf,
        #[source]
        source: llmtool_formats::imatrix::ImatrixError,
    },
}

/// The size a mix aims at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MixTarget {
    /// Bits per weight of all the tensor data (all tensors counted, as the summary's bpw).
    Bpw(f64),
    /// A whole output file of at most this many bytes.
    Size(u64),
}

/// The importance matrix a mix measures with and quantizes with.
#[derive(Debug, Clone)]
pub enum MixImatrix {
    /// Read from the file at the path (the path is recorded in the output).
    Given(PathBuf, Imatrix),
    /// Computed on the calibration windows of the input (f32 KV cache) and recorded under
    /// `path`; written there when `save`.
    Computed { path: PathBuf, save: bool },
}

/// Options of [`QuantizeMix`] (`quantize --target-bpw/--target-size …`).
#[derive(Debug, Clone)]
pub struct MixOptions {
    pub target: MixTarget,
    /// The UTF-8 text the sensitivities (and a computed imatrix) are measured on.
    pub calibration: PathBuf,
    /// Windows of the calibration text scored per measurement.
    pub calib_chunks: usize,
    /// Window length of the calibration measurements.
    pub calib_ctx: usize,
    /// One KLD measurement per tensor or per tensor kind.
    pub groups: Groups,
    /// The tensor types that may be chosen (`None`: every candidate).
    pub candidates: Option<Vec<GgmlType>>,
    /// A saved sensitivity table to use instead of measuring.
    pub sensitivity: Option<PathBuf>,
    /// Where to save the measured (or loaded) sensitivity table.
    pub save_sensitivity: Option<PathBuf>,
    /// Where to write the chosen mix as `PATTERN=TYPE` lines.
    pub save_mix: Option<PathBuf>,
    pub imatrix: MixImatrix,
    /// `--include-weights` / `--exclude-weights` name filters of the imatrix.
    pub include_weights: Vec<String>,
    pub exclude_weights: Vec<String>,
    /// `--pure` for the quantization with the chosen overrides.
    pub pure: bool,
}

impl MixOptions {
    /// `target` measured on `calibration` with `quantize`'s defaults (8 windows of 128 tokens,
    /// per tensor, every candidate), the imatrix computed and recorded as `imatrix`.
    pub fn new(target: MixTarget, calibration: &Path, imatrix: MixImatrix) -> Self {
        MixOptions {
            target,
            calibration: calibration.to_path_buf(),
            calib_chunks: 8,
            calib_ctx: 128,
            groups: Groups::Tensor,
            candidates: None,
            sensitivity: None,
            save_sensitivity: None,
            save_mix: None,
            imatrix,
            include_weights: Vec::new(),
            exclude_weights: Vec::new(),
            pure: false,
        }
    }
}

/// What happens while a mix is chosen (for a command's progress lines).
pub enum MixEvent<'a> {
    /// The calibration imatrix was computed on `n_windows` windows of `ctx` tokens.
    ImatrixComputed {
        n_windows: usize,
        ctx: usize,
    },
    /// … and saved at this path.
    ImatrixSaved(&'a Path),
    /// The imatrix's weights: `used` of `loaded` entries, `chunks` chunks.
    ImatrixUsed {
        path: &'a Path,
        used: usize,
        loaded: usize,
        chunks: u32,
    },
    /// Weighted errors: tensor `i` of `n`.
    Errors {
        i: usize,
        n: usize,
        name: &'a str,
    },
    ErrorsDone {
        n: usize,
        seconds: f64,
    },
    /// KLD measurement `i` of `n`.
    Kld {
        i: usize,
        n: usize,
        group: &'a str,
        kld: f64,
    },
    KldDone {
        n: usize,
        tokens: usize,
        seconds: f64,
    },
    /// The mix is chosen.
    Chosen(&'a MixChoice),
}

/// A chosen mix: the base file type, one override per mixable tensor, and the imatrix.
#[derive(Debug, Clone)]
pub struct MixChoice {
    pub ftype: FileType,
    /// `PATTERN=TYPE` lines, one per mixable tensor (as `--save-mix` writes them).
    pub lines: Vec<String>,
    pub overrides: Vec<Override>,
    /// The target as the messages name it (`6 bpw`, `1234 bytes`).
    pub what: String,
    /// Tensors per chosen type.
    pub counts: BTreeMap<&'static str, usize>,
    /// Sum of the per-tensor KLD estimates of the pick.
    pub predicted: f64,
    /// The imatrix (path recorded in the output, matrix), when there is one.
    pub imatrix: Option<(PathBuf, Imatrix)>,
}

impl MixChoice {
    /// The quantization that writes the mix.
    pub fn quantize_options(&self, opts: &MixOptions) -> QuantizeOptions {
        QuantizeOptions {
            ftype: self.ftype,
            pure: opts.pure,
            overrides: self.overrides.clone(),
            imatrix: self.imatrix.clone(),
            include_weights: opts.include_weights.clone(),
            exclude_weights: opts.exclude_weights.clone(),
        }
    }
}

/// The quantize-mix pass: [`QuantizeMix::choose`] on the input, then [`Quantize`] with the
/// chosen overrides.
pub struct QuantizeMix {
    pub opts: MixOptions,
}

impl QuantizeMix {
    pub fn new(opts: MixOptions) -> Self {
        QuantizeMix { opts }
    }

    /// Computes (or takes) the imatrix, measures (or loads) the sensitivities of `input` and
    /// allocates the bytes; `event` sees each stage of the work.
    pub fn choose(&self, input: Stage<'_>, event: &mut dyn FnMut(MixEvent<'_>)) -> Result<MixChoice, PipelineError> {
        let o = &self.opts;
        if let MixTarget::Bpw(b) = o.target {
            if !(b.is_finite() && b > 0.0) {
                return Err(QuantizeMixError::BadBpw(b).into());
            }
        }
        let imatrix = match &o.imatrix {
            MixImatrix::Given(p, im) => (p.clone(), im.clone()),
            MixImatrix::Computed { path, save } => {
                let im = calibration_imatrix(o, input, event)?;
                if *save {
                    im.write_gguf(path, true)
                        .map_err(|source| QuantizeMixError::SaveImatrix { path: path.clone(), source })?;
                    event(MixEvent::ImatrixSaved(path));
                }
                (path.clone(), im)
            }
        };
        let w = ImportanceWeights::new(&imatrix.1, &o.include_weights, &o.exclude_weights)?;
        event(MixEvent::ImatrixUsed {
            path: &imatrix.0,
            used: w.len(),
            loaded: w.n_loaded,
            chunks: imatrix.1.chunk_count,
        });
        // llama-quantize passes no imatrix at all when the filters leave it empty.
        let weights = Some(w).filter(|w| !w.is_empty());
        let md = quantized_metadata(input.metadata, FileType::Q8_0, weights.as_ref(), Some(&imatrix.0));
        let mut choice = choose(o, input, weights.as_ref(), &md, event)?;
        choice.imatrix = Some(imatrix);
        event(MixEvent::Chosen(&choice));
        if let Some(p) = &o.save_mix {
            write_mix(p, &choice, weights.is_some())
                .map_err(|source| QuantizeMixError::WriteMix { path: p.clone(), source })?;
        }
        Ok(choice)
    }
}

impl Pass for QuantizeMix {
    fn name(&self) -> &'static str {
        "quantize"
    }

    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError> {
        let choice = self.choose(input, &mut |_| {})?;
        Quantize::new(choice.quantize_options(&self.opts))?.into_output(input)
    }
}

/// The calibration windows: `calib_chunks` of `calib_ctx` tokens, as perplexity cuts them.
fn calib_opts(o: &MixOptions, tok: &Tokenizer) -> PplOptions {
    PplOptions { n_ctx: o.calib_ctx, n_chunks: Some(o.calib_chunks), batch: o.calib_ctx, bos: bos_of(Some(tok)) }
}

/// An importance matrix computed on the calibration windows, as `llmtool imatrix` would
/// compute it on the same windows (with an f32 KV cache).
fn calibration_imatrix(
    o: &MixOptions,
    input: Stage<'_>,
    event: &mut dyn FnMut(MixEvent<'_>),
) -> Result<Imatrix, PipelineError> {
    let text = read_text(&o.calibration)?;
    let opts = ImatrixOptions { ctx: o.calib_ctx, chunks: Some(o.calib_chunks), kv_f32: true, process_output: false };
    let run = compute_imatrix(input, &text, &o.calibration.display().to_string(), &opts, |_, _| {})?;
    event(MixEvent::ImatrixComputed { n_windows: run.ppl.n_chunks, ctx: run.ppl.n_ctx });
    Ok(run.imatrix)
}

/// Bytes of the tensors the mix does not choose (their planned types) and the header and
/// padding around all tensors, for an output with `metadata`.
fn fixed_bytes(input: Stage<'_>, metadata: &Metadata, mixable: &[TensorInfo]) -> Result<(u64, u64), PipelineError> {
    let facts = ModelFacts::from_metadata(input.metadata);
    let params = QuantizeParams {
        ftype: FileType::Q8_0,
        pure: true,
        overrides: vec![],
        widen_vectors: input.origin.hf_dir,
        has_imatrix: false,
    };
    let p = plan(input.tensors.tensor_infos(), &facts, &params)?;
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
    let header = GgufHeader::new(metadata.clone(), infos).map_err(llmtool_formats::FormatError::from)?;
    let layout = header.layout().map_err(llmtool_formats::FormatError::from)?;
    // Padding between tensors differs with the types: allow a full alignment per tensor.
    let overhead = layout.file_size - data + n_tensors * header.alignment;
    Ok((kept, overhead))
}

/// Measures (or loads) the sensitivities and allocates the bytes.
fn choose(
    o: &MixOptions,
    input: Stage<'_>,
    weights: Option<&ImportanceWeights>,
    metadata: &Metadata,
    event: &mut dyn FnMut(MixEvent<'_>),
) -> Result<MixChoice, PipelineError> {
    let allowed = o.candidates.as_deref();
    let mixable = sens::mixable(input.tensors.tensor_infos());
    if mixable.is_empty() {
        return Err(QuantizeMixError::NothingToMix.into());
    }
    let (kept, overhead) = fixed_bytes(input, metadata, &mixable)?;
    let n_weights: u64 = input.tensors.tensor_infos().iter().map(|t| t.ne.iter().product::<u64>()).sum();
    let (what, budget) = match o.target {
        MixTarget::Bpw(b) => {
            let total = (b * n_weights as f64 / 8.0).floor() as u64;
            (format!("{b} bpw"), total.checked_sub(kept))
        }
        MixTarget::Size(size) => (format!("{size} bytes"), size.checked_sub(kept + overhead)),
    };
    let Some(budget) = budget else {
        return Err(QuantizeMixError::BelowFixed { what, kept }.into());
    };
    // Refuse a budget below every tensor at its smallest type before measuring anything.
    let has_weights = weights.is_some();
    let min: u64 = mixable
        .iter()
        .map(|t| {
            sens::candidates(t.ne.first().copied().unwrap_or(0), has_weights)
                .into_iter()
                .filter(|ty| allowed.is_none_or(|a| a.contains(ty)))
                .map(|ty| TensorInfo { name: String::new(), ty, ne: t.ne.clone() }.n_bytes().unwrap_or(u64::MAX))
                .min()
                .unwrap_or(u64::MAX)
        })
        .fold(0u64, u64::saturating_add);
    if min > budget {
        return Err(QuantizeMixError::Allocate { what, source: MixError::BudgetTooSmall { budget, min } }.into());
    }
    let table = match &o.sensitivity {
        Some(p) => Sensitivity::load(p, &mixable).map_err(QuantizeMixError::from)?,
        None => measure(o, input, &mixable, weights, allowed, event)?,
    };
    if let Some(p) = &o.save_sensitivity {
        table.save(p).map_err(QuantizeMixError::from)?;
    }
    let options = table.options(allowed).map_err(QuantizeMixError::from)?;
    let pick =
        allocate(&options, budget).map_err(|source| QuantizeMixError::Allocate { what: what.clone(), source })?;
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
    let counts = by_type.keys().map(|&n| (n, chosen.iter().filter(|(_, t)| t.name() == n).count())).collect();
    Ok(MixChoice { ftype, lines, overrides, what, counts, predicted, imatrix: None })
}

fn measure(
    o: &MixOptions,
    input: Stage<'_>,
    mixable: &[TensorInfo],
    weights: Option<&ImportanceWeights>,
    allowed: Option<&[GgmlType]>,
    event: &mut dyn FnMut(MixEvent<'_>),
) -> Result<Sensitivity, PipelineError> {
    let text = read_text(&o.calibration)?;
    let tok = Tokenizer::from_gguf_metadata(input.metadata).map_err(ValidateError::from)?;
    let tokens = tokenize_prefix(&tok, &text, o.calib_ctx * o.calib_chunks).map_err(ValidateError::from)?;
    let opts = calib_opts(o, &tok);
    let t0 = std::time::Instant::now();
    let errors = sens::candidate_errors(input.tensors, mixable, weights, allowed, |i, n, name| {
        event(MixEvent::Errors { i, n, name })
    })
    .map_err(QuantizeMixError::from)?;
    event(MixEvent::ErrorsDone { n: mixable.len(), seconds: t0.elapsed().as_secs_f64() });
    let t1 = std::time::Instant::now();
    let table = sens::measure(
        input.metadata,
        input.tensors,
        mixable,
        errors,
        weights,
        &tokens,
        &opts,
        o.groups,
        |i, n, group, kld| event(MixEvent::Kld { i, n, group, kld }),
    )
    .map_err(QuantizeMixError::from)?;
    event(MixEvent::KldDone {
        n: table.group_kld.len(),
        tokens: table.calib_tokens,
        seconds: t1.elapsed().as_secs_f64(),
    });
    Ok(table)
}

/// The mix as `PATTERN=TYPE` lines under a header naming the command that reproduces it.
fn write_mix(path: &Path, c: &MixChoice, imatrix: bool) -> std::io::Result<()> {
    let mut f = llmtool_formats::atomic::AtomicFile::create(path, true).map_err(std::io::Error::other)?;
    let w = f.writer();
    writeln!(w, "# llmtool quantize mix for {}; predicted mean KLD {:.6}", c.what, c.predicted)?;
    writeln!(
        w,
        "# reproduce: llmtool quantize IN OUT --type {}{} --keep-file {}",
        c.ftype.name(),
        if imatrix { " --imatrix IMATRIX" } else { "" },
        path.display()
    )?;
    for l in &c.lines {
        writeln!(w, "{l}")?;
    }
    f.commit().map_err(std::io::Error::other)?;
    Ok(())
}
