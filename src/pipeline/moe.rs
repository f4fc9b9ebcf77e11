//! `moe`: a Mixture of Experts from dense models (a mergekit-moe configuration) as a pass.
//! Its models are opened when the pass is made; one the configuration names by the path
//! the pipeline's input stands for (a build recipe's `current`) is read from the input stage
//! instead. Applying it checks the models and computes the routers (for `gate_mode: hidden`
//! by running the base model); the experts' tensors are stacked when they are read.

use std::path::{Path, PathBuf};

use llmtool_formats::TensorSource;

use super::{Input, Output, Pass, PipelineError, Stage};
use crate::model::{set_file_type, Model};
use crate::moe_build::config::MoeConfig;
use crate::moe_build::gates::{degenerate_layers, router_weights, tokenize_prompts};
use crate::moe_build::inputs::{dominant_float, open, MoeInputs};
use crate::moe_build::source::MoeSource;
use crate::moe_build::MoeError;
use crate::passes::convert::{gguf_types, OutType, Retyped};

/// `torch.manual_seed` of the random gates when none is given.
pub const DEFAULT_SEED: u64 = 0;

/// Options of [`Moe`] (`llmtool moe --seed`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MoeOptions {
    /// `torch.manual_seed` of gate_mode random / uniform_random.
    pub seed: u64,
    /// The output is written as an HF dir: tensors are left F32 for the HF writer to type
    /// (in the output type, given to it), and the metadata records no GGUF file type.
    pub hf_output: bool,
}

/// A MoE over opened models and, where the configuration names it, the pipeline's input.
pub struct Moe {
    cfg: MoeConfig,
    opts: MoeOptions,
    /// The base model, the experts in the config's order, then the shared expert if any:
    /// each an opened file, or `None` for the pipeline's input.
    models: Vec<Option<Model>>,
    paths: Vec<PathBuf>,
}

/// A MoE planned over its inputs.
pub struct MoeBuilt<'a> {
    /// GGUF form, tensors in the output type (1-D tensors and norms F32, as the GGUF writer
    /// types a float model; F32 with `hf_output`).
    pub output: Output<'a>,
    pub out_type: OutType,
    /// Layers whose routers are degenerate (mergekit-moe's `warn_degenerate_gates`).
    pub degenerate: Vec<usize>,
    pub n_layer: u32,
}

impl Moe {
    /// Resolves and opens every model `cfg` references.
    pub fn open(cfg: MoeConfig, opts: MoeOptions) -> Result<Moe, PipelineError> {
        Moe::open_over(cfg, opts, None)
    }

    /// Like [`Moe::open`], but a reference to `current` (as written, or the same file) is the
    /// pipeline's input, given to [`Pass::apply`]; `current` need not exist.
    pub fn open_over(cfg: MoeConfig, opts: MoeOptions, current: Option<&Path>) -> Result<Moe, PipelineError> {
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let current_canon = current.map(canon);
        let is_current = |r: &str| {
            let Some(cur) = current else { return false };
            Path::new(r) == cur
                || crate::merge::config::resolve_model(r, cfg.dir.as_deref())
                    .is_ok_and(|p| Some(canon(&p)) == current_canon)
        };
        let refs = std::iter::once(&cfg.base_model)
            .chain(cfg.experts.iter().map(|e| &e.source_model))
            .chain(cfg.shared_experts.first().map(|e| &e.source_model));
        let mut models = Vec::new();
        let mut paths = Vec::new();
        for r in refs {
            if is_current(r) {
                models.push(None);
                paths.push(current.expect("is_current").to_path_buf());
            } else {
                let m = open(r, &cfg)?;
                paths.push(m.path.clone());
                models.push(Some(m));
            }
        }
        Ok(Moe { cfg, opts, models, paths })
    }

    pub fn config(&self) -> &MoeConfig {
        &self.cfg
    }

    /// The models' paths: the base model, the experts, the shared expert if any.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Checks the models and computes the routers; `input` serves the references to the
    /// pipeline's input.
    pub fn build<'a>(&'a self, input: Option<Stage<'a>>) -> Result<MoeBuilt<'a>, PipelineError> {
        let mut models = Input::resolve("moe", &self.models, &self.paths, input)?;
        let shared = match self.cfg.shared_experts.is_empty() {
            true => None,
            false => models.pop(),
        };
        let base = models.remove(0);
        let inputs = MoeInputs::new(&self.cfg, base, models, shared)?;
        // every check (prompts included) before any tensor is read
        let prompts = tokenize_prompts(&self.cfg, &inputs)?;
        let routers = router_weights(&self.cfg, &inputs, &prompts, self.opts.seed)?;
        let degenerate = degenerate_layers(&routers, inputs.n_embd as usize);
        let n_layer = inputs.n_layer;
        let out_type = self.cfg.dtype.unwrap_or_else(|| dominant_float(inputs.base));
        let source = MoeSource::new(&self.cfg, inputs, routers, out_type)?;
        let (mut metadata, arch) = (source.metadata().clone(), source.arch());
        let tensors: Box<dyn TensorSource + 'a> = if self.opts.hf_output {
            Box::new(source)
        } else {
            // The GGUF writer's typing of a float model in `out_type` (`cli::output::write_model`).
            let types = gguf_types(source.tensor_infos(), Some(out_type));
            set_file_type(&mut metadata, out_type.ggml());
            Box::new(Retyped::owning(Box::new(source), &types))
        };
        Ok(MoeBuilt { output: Output { arch, metadata, tensors, gguf: None }, out_type, degenerate, n_layer })
    }
}

impl Pass for Moe {
    fn name(&self) -> &'static str {
        "moe"
    }

    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError> {
        Ok(self.build(Some(input))?.output)
    }
}

impl From<crate::moe_build::config::MoeConfigError> for PipelineError {
    fn from(e: crate::moe_build::config::MoeConfigError) -> Self {
        PipelineError::Moe(MoeError::Config(e))
    }
}
