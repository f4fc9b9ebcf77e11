//! The typed passes: each mirrors its command (`convert`, `lora merge`, `quantize`) on a GGUF
//! output, so a chain run in memory gives the bytes the commands give one file at a time.

use std::path::{Path, PathBuf};

use llmtool_formats::imatrix::Imatrix;
use llmtool_formats::{GgmlType, MetaValue, Metadata};
use llmtool_kernels::{convert, quant};

use super::{Output, Pass, PipelineError, Stage};
use crate::model::set_file_type;
use crate::passes::convert::{gguf_types, OutType, Retyped};
use crate::passes::lora::{plan_edits, Adapter, LoraMerged};
use crate::passes::quantize::{plan, FileType, ModelFacts, Override, QuantizeParams, TensorPlan};
use crate::passes::quantize_weights::{check_plan, ImportanceWeights, WeightedRetyped};

/// ggml's `GGML_QNT_VERSION`, written as `general.quantization_version` like llama.cpp.
const GGML_QNT_VERSION: u32 = 2;

/// `convert` to GGUF: float tensors re-typed to `outtype` (1-D tensors and norms to F32), or
/// kept (`None`; an HF input's 1-D tensors widened to F32). See [`crate::passes::convert`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Convert {
    pub outtype: Option<OutType>,
}

impl Convert {
    /// `outtype` as `--outtype` spells it (f32, f16, bf16; any case).
    pub fn parse(outtype: Option<&str>) -> Result<Convert, String> {
        let outtype = outtype
            .map(|t| <OutType as clap::ValueEnum>::from_str(t, true).map_err(|_| format!("unknown outtype '{t}'")))
            .transpose()?;
        Ok(Convert { outtype })
    }
}

impl Pass for Convert {
    fn name(&self) -> &'static str {
        "convert"
    }

    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError> {
        let infos = input.tensors.tensor_infos();
        let mut metadata = input.metadata.clone();
        let types: Vec<GgmlType> = match (input.origin.hf_dir, self.outtype) {
            // GGUF form without re-typing: the same tensors, bytes passed through.
            (false, None) => infos.iter().map(|t| t.ty).collect(),
            (hf_dir, outtype) => {
                let types = gguf_types(infos, outtype);
                if let Some(o) = outtype {
                    set_file_type(&mut metadata, o.ggml());
                } else if hf_dir {
                    set_file_type(&mut metadata, dominant(&types));
                }
                types
            }
        };
        let tensors = Box::new(Retyped::new(input.tensors, &types));
        Ok(Output { arch: input.arch, metadata, tensors, gguf: input.origin.gguf })
    }
}

/// The most common type among matrices (for `general.file_type`).
pub(crate) fn dominant(types: &[GgmlType]) -> GgmlType {
    let mut best = (0, GgmlType::F32);
    for &t in types {
        let c = types.iter().filter(|&&u| u == t).count();
        if c > best.0 {
            best = (c, t);
        }
    }
    best.1
}

/// `lora merge`: adapters folded into the stage, W' = W + s·(alpha/r)·B·A per adapted
/// tensor, touched tensors re-encoded in their own type ([`LoraMerged`]).
pub struct Lora {
    adapters: Vec<(Adapter, f32)>,
}

impl Lora {
    /// Opens each adapter (PEFT dir or llama.cpp GGUF LoRA) with its scale; they apply in order.
    pub fn open(adapters: &[(&Path, f32)]) -> Result<Lora, PipelineError> {
        let adapters =
            adapters.iter().map(|&(p, s)| Ok((Adapter::open(p)?, s))).collect::<Result<_, PipelineError>>()?;
        Ok(Lora { adapters })
    }
}

impl Lora {
    /// The merged source itself (what [`Pass::apply`] boxes): `lora merge` counts its touched
    /// tensors and, for a float output, asks for them unrounded
    /// ([`LoraMerged::with_float_output`]).
    pub fn merged<'a>(&'a self, input: Stage<'a>) -> Result<LoraMerged<'a>, PipelineError> {
        // PEFT module names map through config.json: the HF dir's own, else the one the
        // architecture writes from the metadata (as `lora merge` does for a GGUF base).
        let config = match input.origin.hf_config {
            Some(c) => c.clone(),
            None => input.arch.metadata_to_config(input.metadata, input.tensors.tensor_infos(), "float32")?,
        };
        let edits = plan_edits(input.arch, &config, input.tensors, &self.adapters)?;
        Ok(LoraMerged::new(input.tensors, edits))
    }
}

impl Pass for Lora {
    fn name(&self) -> &'static str {
        "lora"
    }

    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError> {
        let tensors = Box::new(self.merged(input)?);
        Ok(Output { arch: input.arch, metadata: input.metadata.clone(), tensors, gguf: None })
    }
}

/// Options of [`Quantize`]: llama-quantize's file type, overrides, `--pure` and imatrix.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    pub ftype: FileType,
    /// `--pure`: every quantized tensor gets the file type's default type.
    pub pure: bool,
    /// `--keep PATTERN=TYPE` overrides, first match wins.
    pub overrides: Vec<Override>,
    /// The importance matrix and the path recorded in `quantize.imatrix.file`.
    pub imatrix: Option<(PathBuf, Imatrix)>,
    /// `--include-weights` / `--exclude-weights` name filters of the imatrix.
    pub include_weights: Vec<String>,
    pub exclude_weights: Vec<String>,
}

impl QuantizeOptions {
    /// A file type by its llama.cpp name (Q8_0, Q4_K_M, …), nothing else set.
    pub fn new(ftype: &str) -> Result<QuantizeOptions, PipelineError> {
        let ftype = FileType::parse(ftype).ok_or_else(|| PipelineError::UnknownFileType(ftype.to_string()))?;
        Ok(QuantizeOptions {
            ftype,
            pure: false,
            overrides: Vec::new(),
            imatrix: None,
            include_weights: Vec::new(),
            exclude_weights: Vec::new(),
        })
    }

    /// With the importance matrix read from `path`.
    pub fn with_imatrix_file(mut self, path: &Path) -> Result<Self, PipelineError> {
        self.imatrix = Some((path.to_path_buf(), Imatrix::read(path)?));
        Ok(self)
    }
}

/// `quantize` (CPU): llama.cpp's per-tensor type plan, tensors in llama.cpp's order,
/// re-quantized with the importance weights when given.
pub struct Quantize {
    opts: QuantizeOptions,
    /// The imatrix's weights after the filters; `None` when there is none or none is left
    /// (llama-quantize then passes no imatrix at all).
    weights: Option<ImportanceWeights>,
    no_weights: ImportanceWeights,
    /// Entries of the imatrix used after the filters, and read.
    entries: Option<(usize, usize)>,
}

impl Quantize {
    pub fn new(opts: QuantizeOptions) -> Result<Quantize, PipelineError> {
        let weights = match &opts.imatrix {
            Some((_, im)) => Some(ImportanceWeights::new(im, &opts.include_weights, &opts.exclude_weights)?),
            None => None,
        };
        let entries = weights.as_ref().map(|w| (w.len(), w.n_loaded));
        let weights = weights.filter(|w| !w.is_empty());
        Ok(Quantize { opts, weights, no_weights: ImportanceWeights::default(), entries })
    }

    pub fn options(&self) -> &QuantizeOptions {
        &self.opts
    }

    /// The importance weights the quantizers use (none when the filters left none).
    pub fn weights(&self) -> Option<&ImportanceWeights> {
        self.weights.as_ref()
    }

    /// With an imatrix: its entries used after the filters, and its entries read.
    pub fn imatrix_entries(&self) -> Option<(usize, usize)> {
        self.entries
    }

    /// The per-tensor plan for `input` (llama.cpp's rules), not checked.
    pub fn plan_unchecked(&self, input: Stage<'_>) -> Result<Vec<TensorPlan>, PipelineError> {
        let params = QuantizeParams {
            ftype: self.opts.ftype,
            pure: self.opts.pure,
            overrides: self.opts.overrides.clone(),
            widen_vectors: input.origin.hf_dir,
            has_imatrix: self.weights.is_some(),
        };
        let facts = ModelFacts::from_metadata(input.metadata);
        Ok(plan(input.tensors.tensor_infos(), &facts, &params)?)
    }

    /// The per-tensor plan for `input`, checked: kernels exist and the types that need
    /// importance weights have them.
    pub fn plan(&self, input: Stage<'_>) -> Result<Vec<TensorPlan>, PipelineError> {
        let plan = self.plan_unchecked(input)?;
        check_kernels(&plan, self.opts.ftype)?;
        check_plan(&plan, self.weights.as_ref(), self.opts.ftype)?;
        Ok(plan)
    }

    /// Applies the pass, the output owning the importance weights (for a pass that makes its
    /// `Quantize` while it is applied, e.g. [`super::QuantizeMix`]).
    pub fn into_output(self, input: Stage<'_>) -> Result<Output<'_>, PipelineError> {
        let plan = self.plan(input)?;
        let path = self.opts.imatrix.as_ref().map(|(p, _)| p.as_path());
        let metadata = quantized_metadata(input.metadata, self.opts.ftype, self.weights.as_ref(), path);
        let infos = plan.iter().map(TensorPlan::info).collect();
        let tensors = Box::new(WeightedRetyped::owning(input.tensors, infos, self.weights.unwrap_or_default()));
        Ok(Output { arch: input.arch, metadata, tensors, gguf: None })
    }
}

impl Pass for Quantize {
    fn name(&self) -> &'static str {
        "quantize"
    }

    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError> {
        let plan = self.plan(input)?;
        let path = self.opts.imatrix.as_ref().map(|(p, _)| p.as_path());
        let metadata = quantized_metadata(input.metadata, self.opts.ftype, self.weights.as_ref(), path);
        let infos = plan.iter().map(TensorPlan::info).collect();
        let weights = self.weights.as_ref().unwrap_or(&self.no_weights);
        let tensors = Box::new(WeightedRetyped::new(input.tensors, infos, weights));
        Ok(Output { arch: input.arch, metadata, tensors, gguf: None })
    }
}

/// A quantized output's metadata: the input's, with the keys llama-quantize sets.
pub fn quantized_metadata(
    input: &Metadata,
    ftype: FileType,
    weights: Option<&ImportanceWeights>,
    imatrix: Option<&Path>,
) -> Metadata {
    let mut metadata = input.clone();
    // llama.cpp sets these after copying the input's keys; its gguf_set_val_* removes an
    // existing key and appends it, so both end up last, in this order.
    metadata.remove("general.quantization_version");
    metadata.insert("general.quantization_version", MetaValue::U32(GGML_QNT_VERSION));
    metadata.remove("general.file_type");
    metadata.insert("general.file_type", MetaValue::U32(ftype.id()));
    for key in ["split.no", "split.count", "split.tensors.count"] {
        metadata.remove(key);
    }
    if let (Some(w), Some(path)) = (weights, imatrix) {
        record_imatrix(&mut metadata, w, &path.to_string_lossy());
    }
    metadata
}

/// The keys llama-quantize adds with an imatrix (`quantize.cpp` kv overrides, in its order;
/// strings cut to 127 bytes like its `strncpy` into `val_str[128]`, counts as u32).
fn record_imatrix(metadata: &mut Metadata, w: &ImportanceWeights, file: &str) {
    let cut = |s: &str| {
        let mut end = s.len().min(127);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    };
    let mut set = |key: &str, v: MetaValue| {
        metadata.remove(key);
        metadata.insert(key, v);
    };
    set("quantize.imatrix.file", MetaValue::String(cut(file)));
    if let Some(d) = w.datasets.first() {
        set("quantize.imatrix.dataset", MetaValue::String(cut(d)));
    }
    set("quantize.imatrix.entries_count", MetaValue::U32(w.len() as u32));
    if w.chunk_count > 0 {
        set("quantize.imatrix.chunks_count", MetaValue::U32(w.chunk_count));
    }
}

/// Every conversion the plan needs must have kernels, checked before anything is written.
pub fn check_kernels(plan: &[TensorPlan], ftype: FileType) -> Result<(), PipelineError> {
    let mut missing: std::collections::BTreeMap<&'static str, (usize, &str)> = Default::default();
    for p in plan.iter().filter(|p| p.from != p.to) {
        if !convert::can_decode(p.from) {
            return Err(PipelineError::NoKernel(format!(
                "tensor '{}': llmtool cannot decode its type {} yet",
                p.name, p.from
            )));
        }
        let ok = if p.to.is_quantized() {
            quant::can_quantize_unweighted(p.to) || quant::can_quantize_weighted(p.to)
        } else {
            convert::can_encode(p.to)
        };
        if !ok {
            let e = missing.entry(p.to.name()).or_insert((0, p.name.as_str()));
            e.0 += 1;
        }
    }
    if !missing.is_empty() {
        let list: Vec<String> =
            missing.iter().map(|(ty, (n, first))| format!("{ty} ({n} tensor(s), e.g. '{first}')")).collect();
        return Err(PipelineError::NoKernel(format!(
            "--type {}: llmtool has no quantizer yet for {}; choose another type, or move those tensors \
             to a supported type with --keep PATTERN=TYPE (--dry-run shows the plan)",
            ftype.name(),
            list.join(", ")
        )));
    }
    Ok(())
}
