//! One pipeline of passes as a library: a model is opened once, each pass is a lazy
//! transformation of the previous stage's [`TensorSource`] (nothing is computed until a
//! writer or a scorer asks for a tensor), and the last stage is written once.
//!
//! * [`Stage`]: what flows between passes — architecture, GGUF-form metadata, tensors.
//! * [`Pass`]: typed passes ([`Convert`], [`Lora`], [`Quantize`], [`QuantizeMix`],
//!   [`ChatVector`], [`Merge`], [`Moe`]) turning a stage into an [`Output`] that owns the new
//!   source and metadata and borrows the input. The last three read other models too
//!   ([`Input`]s), opened when the pass is made.
//! * [`compute_imatrix`]: the importance matrix of a stage on a text.
//! * [`Pipeline`]: a list of passes run over a stage, with a look at every stage on the way
//!   (the build's per-step validation scores each in-memory stage against the one before).
//! * [`write_gguf`]: the streaming GGUF writer (temp file, fsync, rename).
//! * Validation of any stage: [`crate::eval::validate`].
//!
//! ```
//! use std::path::Path;
//!
//! use llmtool::eval::validate::{read_text, Scored, Windows};
//! use llmtool::model::Model;
//! use llmtool::pipeline::{write_gguf, Lora, Pass, Quantize, QuantizeOptions, Stage, WriteOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let out = dir.path().join("model-q8_0.gguf");
//! let model = Model::open(Path::new("fixtures/models/llama"))?; // a GGUF file or an HF dir
//! let base = Stage::of(&model);
//! let lora = Lora::open(&[(Path::new("fixtures/lora/llama_plain/adapter"), 1.0)])?; // PEFT dir or GGUF LoRA
//! let merged = lora.apply(base)?;
//! let q8 = Quantize::new(QuantizeOptions::new("Q8_0")?)?;
//! let quantized = q8.apply(merged.stage())?;
//! let text = read_text(Path::new("README.md"))?;
//! let (reference, result) = (Scored::from_stage(base)?, Scored::from_stage(quantized.stage())?);
//! let kld = reference.kld_of(&result, &text, Windows { ctx: 32, chunks: 2 }, |_, _, _| {})?;
//! assert!(kld.kld_mean >= 0.0 && kld.ppl.is_finite());
//! let bytes = write_gguf(quantized.stage(), &out, &WriteOptions::default())?;
//! # assert_eq!(std::fs::metadata(&out)?.len(), bytes);
//! # Ok(()) }
//! ```

mod chatvector;
mod imatrix;
mod merge;
mod moe;
mod passes;
mod quantize_mix;
mod write;

use std::path::Path;

use llmtool_formats::{FormatError, Metadata, TensorSource};

use crate::arch::Arch;
use crate::model::{GgufInfo, Model, ModelFormat};

pub use chatvector::{hf_namer, ChatVector, ChatVectorOptions, ChatVectorOutput};
pub use imatrix::{compute_imatrix, ImatrixOptions, ImatrixRun};
pub use merge::{merge_over, Merge, MergeOptions, Merged, DEFAULT_SEED as MERGE_DEFAULT_SEED};
pub use moe::{Moe, MoeBuilt, MoeOptions, DEFAULT_SEED as MOE_DEFAULT_SEED};
pub use passes::{check_kernels, quantized_metadata, Convert, Lora, Quantize, QuantizeOptions};
pub use quantize_mix::{MixChoice, MixEvent, MixImatrix, MixOptions, MixTarget, QuantizeMix, QuantizeMixError};
pub use write::{gguf_header, write_gguf, write_header_and_tensors, WriteFileError, WriteOptions};

/// Errors of the passes and the writer.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Arch(#[from] crate::arch::ArchError),
    #[error(transparent)]
    Lora(#[from] crate::passes::lora::LoraError),
    #[error(transparent)]
    Quantize(#[from] crate::passes::quantize::QuantizeError),
    #[error(transparent)]
    Weights(#[from] crate::passes::quantize_weights::WeightsError),
    #[error(transparent)]
    Imatrix(#[from] llmtool_formats::imatrix::ImatrixError),
    /// Scoring a stage on the inference core (an imatrix, a mix's measurements).
    #[error(transparent)]
    Validate(#[from] crate::eval::validate::ValidateError),
    #[error(transparent)]
    Mix(#[from] QuantizeMixError),
    #[error("unknown file type '{0}'; expected one of {names}", names = crate::passes::quantize::FileType::names())]
    UnknownFileType(String),
    /// Boxed: the file's path beside a format error would make every result large.
    #[error(transparent)]
    Write(#[from] Box<write::WriteFileError>),
    /// A conversion the plan needs has no kernel (the message says which and what to do).
    #[error("{0}")]
    NoKernel(String),
    #[error(transparent)]
    Merge(#[from] crate::merge::error::MergeRunError),
    #[error(transparent)]
    Moe(#[from] crate::moe_build::MoeError),
    #[error(transparent)]
    ChatVector(#[from] crate::passes::chatvector::ChatVectorError),
    #[error("cannot open {}", path.display())]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: Box<crate::model::ModelError>,
    },
    /// A multi-input pass names the pipeline's input, and it was run without one.
    #[error("{0} reads the pipeline's input ('{1}'), and none was given")]
    NoInput(&'static str, String),
    /// Options of a pass that cannot work together (the message names them).
    #[error("{0}")]
    Options(String),
}

/// A model stage: what one pass hands to the next. Everything is borrowed — from an opened
/// [`Model`] ([`Stage::of`]) or from a pass's [`Output`] ([`Output::stage`]).
#[derive(Clone, Copy)]
pub struct Stage<'a> {
    pub arch: &'static dyn Arch,
    /// GGUF-form metadata.
    pub metadata: &'a Metadata,
    /// GGUF-named tensors in GGUF layouts.
    pub tensors: &'a dyn TensorSource,
    /// Facts of the file the stage was read from, when it is one (not a pass's output).
    pub origin: Origin<'a>,
}

/// Where a stage comes from: the passes that mimic a command on a file need its facts.
#[derive(Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The HF dir's config.json (LoRA maps PEFT module names with it).
    pub hf_config: Option<&'a serde_json::Value>,
    /// The input is an HF dir (quantize widens 1-D float tensors to F32, as llama.cpp's
    /// converter does).
    pub hf_dir: bool,
    /// Version and alignment of a GGUF input (an unchanged convert keeps them).
    pub gguf: Option<GgufInfo>,
}

impl<'a> Stage<'a> {
    /// The stage of an opened model (GGUF file or HF dir).
    pub fn of(model: &'a Model) -> Stage<'a> {
        Stage {
            arch: model.arch,
            metadata: &model.metadata,
            tensors: model.tensors.as_ref(),
            origin: Origin {
                hf_config: model.hf.as_ref().map(|h| &h.files.config),
                hf_dir: model.format == ModelFormat::HfDir,
                gguf: model.gguf,
            },
        }
    }

    /// Parameters (elements of all tensors).
    pub fn n_params(&self) -> u64 {
        self.tensors.tensor_infos().iter().filter_map(|t| t.n_elements()).sum()
    }

    /// Bytes of tensor data.
    pub fn n_tensor_bytes(&self) -> u64 {
        self.tensors.tensor_infos().iter().filter_map(|t| t.n_bytes()).sum()
    }
}

/// One of the models a multi-input pass (merge, moe, chatvector) reads: a stage with the
/// path it stands for (an opened file, or the pipeline's input standing for the file it
/// replaces), which names it in messages.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub path: &'a Path,
    pub stage: Stage<'a>,
}

impl<'a> Input<'a> {
    /// An opened model as an input.
    pub fn of(model: &'a Model) -> Input<'a> {
        Input { path: &model.path, stage: Stage::of(model) }
    }

    /// The inputs of a pass that opened `models[i]` from `paths[i]`, or left it `None` where
    /// the path stands for the pipeline's input, which `input` then serves (`pass` names the
    /// pass when there is none).
    pub(crate) fn resolve(
        pass: &'static str,
        models: &'a [Option<Model>],
        paths: &'a [std::path::PathBuf],
        input: Option<Stage<'a>>,
    ) -> Result<Vec<Input<'a>>, PipelineError> {
        models
            .iter()
            .zip(paths)
            .map(|(m, path)| match (m, input) {
                (Some(m), _) => Ok(Input::of(m)),
                (None, Some(stage)) => Ok(Input { path, stage }),
                (None, None) => Err(PipelineError::NoInput(pass, path.display().to_string())),
            })
            .collect()
    }
}

/// What a pass produces: a new tensor source (borrowing the input's) and its metadata.
pub struct Output<'a> {
    pub arch: &'static dyn Arch,
    pub metadata: Metadata,
    pub tensors: Box<dyn TensorSource + 'a>,
    /// Kept only by passes that leave the container facts alone (an unchanged convert).
    pub gguf: Option<GgufInfo>,
}

impl Output<'_> {
    /// The output as the next pass's input.
    pub fn stage(&self) -> Stage<'_> {
        Stage {
            arch: self.arch,
            metadata: &self.metadata,
            tensors: self.tensors.as_ref(),
            origin: Origin { gguf: self.gguf, ..Origin::default() },
        }
    }
}

/// A lazy transformation of a stage. Applying a pass plans it (shapes, types, metadata) and
/// checks it can run; the tensors are computed when the returned source is read.
pub trait Pass: Send + Sync {
    /// The pass's name (as a build recipe spells its step).
    fn name(&self) -> &'static str;
    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError>;
}

/// A list of passes applied in order.
#[derive(Default)]
pub struct Pipeline {
    pub passes: Vec<Box<dyn Pass>>,
}

impl Pipeline {
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Self {
        Pipeline { passes }
    }

    /// Applies every pass to `input`, calling `visit(i, before, after)` on each pass's
    /// stages as they are made (pass `i` turned `before` into `after`), then `end` on the
    /// last stage (`input` itself for an empty pipeline). Nothing is computed beyond what
    /// `visit` and `end` read: a writer in `end` streams the whole chain tensor by tensor.
    pub fn run<R, E: From<PipelineError>>(
        &self,
        input: Stage<'_>,
        visit: &mut dyn FnMut(usize, Stage<'_>, Stage<'_>) -> Result<(), E>,
        end: &mut dyn FnMut(Stage<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        chain(&self.passes, 0, input, visit, end)
    }
}

/// Pass `i` onwards; each stage lives in this frame while the rest of the chain borrows it.
fn chain<R, E: From<PipelineError>>(
    passes: &[Box<dyn Pass>],
    i: usize,
    stage: Stage<'_>,
    visit: &mut dyn FnMut(usize, Stage<'_>, Stage<'_>) -> Result<(), E>,
    end: &mut dyn FnMut(Stage<'_>) -> Result<R, E>,
) -> Result<R, E> {
    let Some(pass) = passes.get(i) else { return end(stage) };
    let out = pass.apply(stage)?;
    let next = out.stage();
    visit(i, stage, next)?;
    chain(passes, i + 1, next, visit, end)
}
