//! `merge`: a mergekit configuration as a pass. Its models are opened when the pass is made;
//! a model the configuration names by the path the pipeline's input stands for (a build
//! recipe's `current`) is read from the input stage instead, so a merge chains in memory.
//! The result is lazy ([`MergedSource`]): each tensor is merged when it is read.
//!
//! ```
//! use std::path::Path;
//!
//! use llmtool::merge::config::MergeConfig;
//! use llmtool::model::Model;
//! use llmtool::pipeline::{write_gguf, Merge, MergeOptions, Pass, Stage, WriteOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let out = dir.path().join("merged.gguf");
//! // `current` names the pipeline's input; the other model is opened from its file.
//! let yaml = "merge_method: linear\nmodels:\n  - model: current\n    parameters: {weight: 0.5}\n\
//!             \x20 - model: fixtures/models/llama\n    parameters: {weight: 0.5}\n";
//! let config = MergeConfig::parse(yaml, "example.yml")?;
//! let merge = Merge::open_over(config, MergeOptions::default(), Some(Path::new("current")))?;
//! let model = Model::open(Path::new("fixtures/models/llama"))?;
//! let merged = merge.apply(Stage::of(&model))?; // planned: shapes, types, metadata
//! let bytes = write_gguf(merged.stage(), &out, &WriteOptions::default())?; // merged as written
//! # assert_eq!(std::fs::metadata(&out)?.len(), bytes);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Input, Output, Pass, PipelineError, Stage};
use crate::merge::config::MergeConfig;
use crate::merge::error::MergeRunError;
use crate::merge::inputs::{resolve_all, InputTensors, Resolved, StageInputs};
use crate::merge::methods::dtype_exact::Arithmetic;
use crate::merge::plan::plan;
use crate::merge::source::MergedSource;
use crate::model::Model;

/// The seed used when none is given: the same config and inputs always give the same bytes.
pub const DEFAULT_SEED: u64 = 0x6c6c_6d74_6f6f_6c00;

/// Options of [`Merge`] (`llmtool merge --seed --arithmetic`).
#[derive(Debug, Clone, Copy)]
pub struct MergeOptions {
    /// Seed of the random methods (DARE, DELLA); each tensor's seed derives from it and the
    /// tensor's name.
    pub seed: u64,
    /// f64 math rounded once (default), or mergekit's per-operation rounding in `dtype`.
    pub arithmetic: Arithmetic,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions { seed: DEFAULT_SEED, arithmetic: Arithmetic::F32 }
    }
}

/// A merge over opened models and, where the configuration names it, the pipeline's input.
pub struct Merge {
    config: MergeConfig,
    opts: MergeOptions,
    /// Per model index: the opened file, or `None` for the pipeline's input.
    models: Vec<Option<Model>>,
    paths: Vec<PathBuf>,
    index: HashMap<String, usize>,
}

/// A merge planned over its inputs: the lazy output and facts for a summary.
pub struct Merged<'a> {
    pub output: Output<'a>,
    /// The model whose metadata and tokenizer the output takes (index into [`Merge::paths`]).
    pub reference: usize,
    /// Bytes of the input tensors the merge reads.
    pub input_bytes: u64,
}

impl Merge {
    /// Resolves and opens every model `config` references.
    pub fn open(config: MergeConfig, opts: MergeOptions) -> Result<Merge, PipelineError> {
        Merge::open_over(config, opts, None)
    }

    /// Like [`Merge::open`], but a reference to `current` (as written, or the same file) is
    /// the pipeline's input, given to [`Pass::apply`]; `current` need not exist.
    pub fn open_over(config: MergeConfig, opts: MergeOptions, current: Option<&Path>) -> Result<Merge, PipelineError> {
        let Resolved { paths, index, current: slot } = resolve_all(&config, current)?;
        let models: Vec<Option<Model>> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| match slot == Some(i) {
                true => Ok(None),
                false => Model::open(p)
                    .map(Some)
                    .map_err(|source| MergeRunError::Open { path: p.clone(), source: Box::new(source) }),
            })
            .collect::<Result<_, _>>()?;
        // An opened model goes by the path it was opened as (as the messages name it).
        let paths = models.iter().zip(paths).map(|(m, p)| m.as_ref().map_or(p, |m| m.path.clone())).collect();
        Ok(Merge { config, opts, models, paths, index })
    }

    pub fn config(&self) -> &MergeConfig {
        &self.config
    }

    /// The models' paths by index (the pipeline's input under the path it stands for).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Plans the merge; `input` serves the references to the pipeline's input.
    pub fn merged<'a>(&'a self, input: Option<Stage<'a>>) -> Result<Merged<'a>, PipelineError> {
        let models = Input::resolve("merge", &self.models, &self.paths, input)?;
        Ok(merge_over(&self.config, StageInputs::new(models, &self.index), self.opts)?)
    }
}

/// Plans `config` over `inputs` (a provider owned, or borrowed like the evolve search's
/// shared [`crate::merge::inputs::InputCache`]): the merge pass's work, which every evolve
/// candidate goes through too (`crate::merge::memory`).
pub fn merge_over<'a, I: InputTensors + 'a>(
    config: &MergeConfig,
    inputs: I,
    opts: MergeOptions,
) -> Result<Merged<'a>, MergeRunError> {
    let mut plan = plan(config, &inputs, opts.seed)?;
    plan.set_arithmetic(opts.arithmetic)?;
    let input_bytes: u64 = plan
        .tensors
        .iter()
        .flat_map(|t| t.inputs.iter().map(|p| (p.model, p.tensor.as_str())))
        .filter_map(|(m, name)| inputs.tensor_infos(m).iter().find(|t| t.name == name).and_then(|t| t.n_bytes()))
        .sum();
    let (reference, arch, metadata) = (plan.reference, plan.arch, plan.metadata.clone());
    let tensors = Box::new(MergedSource::new(plan, inputs));
    Ok(Merged { output: Output { arch, metadata, tensors, gguf: None }, reference, input_bytes })
}

impl Pass for Merge {
    fn name(&self) -> &'static str {
        "merge"
    }

    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError> {
        Ok(self.merged(Some(input))?.output)
    }
}
