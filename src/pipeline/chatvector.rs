//! `chatvector`: T' = T + Σ ratioᵢ·(Cᵢ − Bᵢ) as a pass (`crate::passes::chatvector`). The
//! target is the pipeline's input, or a model opened when the pass is made; the vectors'
//! models and saved vectors are opened then too. The result is lazy: each tensor is
//! computed when it is read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llmtool_formats::{GgmlType, Metadata, TensorInfo, TensorSource};

use super::{Input, Output, Pass, PipelineError, Stage};
use crate::arch::Arch;
use crate::model::{set_file_type, Model};
use crate::passes::chatvector::{self as cv, copy_template, Action, SavedVector, SkipRules, VectorKind, VectorTerm};
use crate::passes::convert::{gguf_types, hf_model_dtype, hf_types, OutType};

/// Options of [`ChatVector`] (`llmtool chatvector`'s, typed).
#[derive(Debug, Clone, Default)]
pub struct ChatVectorOptions {
    /// One ratio per vector: the (base, chat) pairs first, then the saved vectors.
    pub ratios: Vec<f32>,
    /// Which tensors the vectors leave as the target's.
    pub skips: SkipRules,
    /// Row TARGET_ID of the vocabulary tensors gets row CHAT_ID of each vector.
    pub token_map: HashMap<u64, u64>,
    /// Copy the chat template and the EOS/EOT/EOM ids from the first chat model.
    pub template_from_chat: bool,
    /// Element type of float tensors (default: each keeps the target's type).
    pub outtype: Option<OutType>,
    /// The output is written as an HF dir: float tensors are typed as the HF writer stores
    /// them (one dtype for the model), so each is rounded once.
    pub hf_output: bool,
}

/// Chat vectors added to a target.
pub struct ChatVector {
    /// The target; `None`: the pipeline's input.
    target: Option<Model>,
    /// (base, chat) of each pair vector.
    pairs: Vec<(Model, Model)>,
    vectors: Vec<SavedVector>,
    opts: ChatVectorOptions,
    /// The path the pipeline's input stands for, naming it in messages.
    input_path: PathBuf,
}

/// The pass planned over its target: the lazy output and facts for a summary.
pub struct ChatVectorOutput<'a> {
    pub output: Output<'a>,
    /// Tensors the vectors change, of `n_tensors`.
    pub applied: usize,
    pub n_tensors: usize,
    /// Keys copied from the chat model (`template_from_chat`).
    pub template_keys: Vec<String>,
}

fn open_model(path: &Path) -> Result<Model, PipelineError> {
    Model::open(path).map_err(|source| PipelineError::Open { path: path.to_path_buf(), source: Box::new(source) })
}

/// A tensor's HF name for skip globs; a stacked MoE expert tensor reads as its experts'
/// name with `E` for the expert index (`model.layers.0.mlp.experts.E.up_proj.weight`): a glob
/// selects all of its experts or none.
pub fn hf_namer<'a>(arch: &'a dyn Arch, metadata: &'a Metadata) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        if let Some(names) = arch.gguf_expert_names(name, metadata).ok().flatten() {
            return names.first().map(|n| n.replacen(".experts.0.", ".experts.E.", 1));
        }
        arch.gguf_to_hf_tensor(name, metadata).ok().map(|m| m.name)
    }
}

impl ChatVector {
    /// Opens the target (`None`: the pipeline's input), each (base, chat) pair and each saved
    /// vector; `opts.ratios` has one ratio per vector.
    pub fn open(
        target: Option<&Path>,
        pairs: &[(&Path, &Path)],
        vectors: &[&Path],
        opts: ChatVectorOptions,
    ) -> Result<ChatVector, PipelineError> {
        let n = pairs.len() + vectors.len();
        if n == 0 {
            return Err(PipelineError::Options("no vector: give --base B --chat C, or --vector V.safetensors".into()));
        }
        if opts.ratios.len() != n {
            return Err(PipelineError::Options(format!("{} ratios for {n} vectors", opts.ratios.len())));
        }
        if opts.template_from_chat && pairs.is_empty() {
            return Err(PipelineError::Options("--template-from chat needs a --chat model".into()));
        }
        let target = target.map(open_model).transpose()?;
        let bases = pairs.iter().map(|(b, _)| open_model(b)).collect::<Result<Vec<_>, _>>()?;
        let chats = pairs.iter().map(|(_, c)| open_model(c)).collect::<Result<Vec<_>, _>>()?;
        let vectors = vectors.iter().map(|p| SavedVector::open(p)).collect::<Result<Vec<_>, _>>()?;
        let pairs = bases.into_iter().zip(chats).collect();
        Ok(ChatVector { target, pairs, vectors, opts, input_path: PathBuf::from("the pipeline's input") })
    }

    /// Names the pipeline's input (the target when the pass has none) by the path it stands
    /// for, e.g. the file a build step would have read.
    pub fn naming_input(mut self, path: &Path) -> ChatVector {
        self.input_path = path.to_path_buf();
        self
    }

    /// Bytes of tensor data of the models and vectors the pass opened.
    pub fn read_bytes(&self) -> u64 {
        let models = self.target.iter().chain(self.pairs.iter().flat_map(|(b, c)| [b, c]));
        let saved = self.vectors.iter().map(|v| v.tensor_infos().iter().filter_map(TensorInfo::n_bytes).sum::<u64>());
        models.map(Model::n_tensor_bytes).chain(saved).sum()
    }

    /// Plans the pass over the target (`input` when the pass has none of its own) and checks
    /// every shape, type and token-map entry.
    pub fn build<'a>(&'a self, input: Option<Stage<'a>>) -> Result<ChatVectorOutput<'a>, PipelineError> {
        let target = match (&self.target, input) {
            (Some(m), _) => Input::of(m),
            (None, Some(stage)) => Input { path: &self.input_path, stage },
            (None, None) => return Err(PipelineError::NoInput("chatvector", "the target".into())),
        };
        let t = target.stage;
        let arch = t.arch.gguf_arch();
        for v in &self.vectors {
            v.check_arch(arch)?;
        }
        for m in self.pairs.iter().flat_map(|(b, c)| [b, c]) {
            if m.arch.gguf_arch() != arch {
                return Err(PipelineError::Options(format!(
                    "{} is a '{}' model, the target {} '{arch}'",
                    m.path.display(),
                    m.arch.gguf_arch(),
                    target.path.display(),
                )));
            }
        }
        let ratios = &self.opts.ratios;
        let mut terms = Vec::with_capacity(ratios.len());
        for (i, (b, c)) in self.pairs.iter().enumerate() {
            terms.push(VectorTerm {
                label: format!("vector {} (chat {})", i + 1, c.path.display()),
                ratio: ratios[i],
                kind: VectorKind::Pair { base: b.tensors.as_ref(), chat: c.tensors.as_ref() },
            });
        }
        for (k, v) in self.vectors.iter().enumerate() {
            let i = self.pairs.len() + k;
            terms.push(VectorTerm {
                label: format!("vector {} ({})", i + 1, v.path.display()),
                ratio: ratios[i],
                kind: VectorKind::Saved(v),
            });
        }
        let t_infos = t.tensors.tensor_infos();
        let out_types: Vec<GgmlType> = match (self.opts.hf_output, self.opts.outtype) {
            (false, None) => t_infos.iter().map(|t| t.ty).collect(),
            (false, Some(o)) => gguf_types(t_infos, Some(o)),
            (true, o) => hf_types(t_infos, hf_model_dtype(t_infos, o)),
        };
        let namer = hf_namer(t.arch, t.metadata);
        let o = &self.opts;
        let pass = cv::ChatVector::new(t.tensors, terms, &o.skips, o.token_map.clone(), &namer, &out_types)?;

        let mut metadata = t.metadata.clone();
        let mut template_keys = Vec::new();
        if o.template_from_chat {
            template_keys = copy_template(&mut metadata, &self.pairs[0].1.metadata)?;
        }
        let applied = pass.plans().iter().filter(|p| matches!(p.action, Action::Apply(_))).count();
        let vocab_applied = pass
            .plans()
            .iter()
            .any(|p| cv::VOCAB_TENSORS.contains(&p.name.as_str()) && matches!(p.action, Action::Apply(_)));
        if !o.token_map.is_empty() && !vocab_applied {
            return Err(PipelineError::Options(format!(
                "--token-map maps rows of {}, which are all skipped here (they are by default: add --no-default-skips)",
                cv::VOCAB_TENSORS.join(" / ")
            )));
        }
        if applied == 0 {
            return Err(PipelineError::Options(format!(
                "the vectors change no tensor of {} (everything is skipped or absent)",
                target.path.display()
            )));
        }
        if let (false, Some(o)) = (o.hf_output, o.outtype) {
            // as the GGUF writer records a re-typed model (`cli::output::write_model`)
            set_file_type(&mut metadata, o.ggml());
        }
        let n_tensors = pass.plans().len();
        let output = Output { arch: t.arch, metadata, tensors: Box::new(pass), gguf: None };
        Ok(ChatVectorOutput { output, applied, n_tensors, template_keys })
    }

    /// The first chat model's path (the source of `template_from_chat`).
    pub fn chat_path(&self) -> Option<&Path> {
        self.pairs.first().map(|(_, c)| c.path.as_path())
    }
}

impl Pass for ChatVector {
    fn name(&self) -> &'static str {
        "chatvector"
    }

    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError> {
        Ok(self.build(Some(input))?.output)
    }
}
