//! The models a MoE is built from, opened (HF dirs or GGUF files, in GGUF form) and checked:
//! one dense architecture for all, the base model's shapes for every expert's MLP.

use std::path::Path;

use llmtool_formats::{GgmlType, TensorInfo};

use super::config::{MoeConfig, OutArch};
use super::MoeError;
use crate::merge::config::resolve_model;
use crate::model::Model;
use crate::pipeline::Input;

/// The MLP projections of a dense llama-family block, GGUF suffix → the stacked suffix the
/// expert copies go to (convert_hf_to_gguf.py's Mixtral names; `w1`/`w2`/`w3` =
/// gate/down/up, mergekit/moe/mixtral.py).
pub const MLP: [(&str, &str); 3] = [
    ("ffn_gate.weight", "ffn_gate_exps.weight"),
    ("ffn_down.weight", "ffn_down_exps.weight"),
    ("ffn_up.weight", "ffn_up_exps.weight"),
];

/// The models, checked: the base model, one per expert (in the config's order), the shared
/// expert (Qwen2-MoE output). Each is an opened file or a pipeline's input.
pub struct MoeInputs<'a> {
    pub base: Input<'a>,
    pub experts: Vec<Input<'a>>,
    pub shared: Option<Input<'a>>,
    pub n_layer: u32,
    pub n_embd: u64,
}

/// Opens the model `reference` names (resolved as merge configs resolve theirs).
pub fn open(reference: &str, cfg: &MoeConfig) -> Result<Model, MoeError> {
    let p = resolve_model(reference, cfg.dir.as_deref())?;
    Model::open(&p).map_err(|source| MoeError::Open { path: p.clone(), source: Box::new(source) })
}

fn input_err(path: &Path, reason: impl Into<String>) -> MoeError {
    MoeError::Input { path: path.to_path_buf(), reason: reason.into() }
}

/// `<arch>.block_count`.
fn block_count(m: Input<'_>) -> Option<u32> {
    m.stage.metadata.get_u64(&format!("{}.block_count", m.stage.arch.gguf_arch())).and_then(|n| u32::try_from(n).ok())
}

/// `blk.N.<suffix>` of a model, or an error naming it.
fn block_tensor<'a>(m: Input<'a>, layer: u32, suffix: &str) -> Result<&'a TensorInfo, MoeError> {
    let name = format!("blk.{layer}.{suffix}");
    m.stage
        .tensors
        .tensor_info(&name)
        .ok_or_else(|| input_err(m.path, format!("no tensor {name} (a dense MLP is needed)")))
}

impl<'a> MoeInputs<'a> {
    /// Checks the models of the configuration (before anything is computed): `experts` in
    /// the config's order, `shared` its first shared expert.
    pub fn new(
        cfg: &MoeConfig,
        base: Input<'a>,
        experts: Vec<Input<'a>>,
        shared: Option<Input<'a>>,
    ) -> Result<Self, MoeError> {
        let arch = base.stage.arch.gguf_arch();
        // mergekit: Mixtral from llama/mistral models, Qwen MoE from llama/mistral/qwen2
        let allowed: &[&str] = match cfg.architecture {
            OutArch::Mixtral => &["llama"],
            OutArch::Qwen2Moe => &["llama", "qwen2"],
        };
        if !allowed.contains(&arch) {
            return Err(input_err(
                base.path,
                format!("architecture '{arch}': {:?} output is built from {allowed:?} models", cfg.architecture),
            ));
        }
        let n_layer = block_count(base).ok_or_else(|| input_err(base.path, format!("no {arch}.block_count")))?;
        let n_embd = block_tensor(base, 0, MLP[0].0)?.ne[0];
        for &m in std::iter::once(&base).chain(&experts).chain(&shared) {
            if m.stage.arch.gguf_arch() != arch {
                return Err(input_err(
                    m.path,
                    format!("architecture '{}' differs from the base model's '{arch}'", m.stage.arch.gguf_arch()),
                ));
            }
            if m.stage.metadata.get(&format!("{arch}.expert_count")).is_some() {
                return Err(input_err(m.path, "already a Mixture of Experts; llmtool moe takes dense models"));
            }
            let nl = block_count(m);
            if nl != Some(n_layer) {
                return Err(input_err(m.path, format!("{nl:?} blocks, the base model has {n_layer}")));
            }
            for layer in 0..n_layer {
                for (suffix, _) in MLP {
                    let (want, found) = (block_tensor(base, layer, suffix)?, block_tensor(m, layer, suffix)?);
                    if want.ne != found.ne {
                        return Err(MoeError::Shape {
                            path: m.path.to_path_buf(),
                            tensor: found.name.clone(),
                            want: want.ne.clone(),
                            found: found.ne.clone(),
                        });
                    }
                }
            }
        }
        Ok(MoeInputs { base, experts, shared, n_layer, n_embd })
    }
}

/// One tensor of a model as f32, in its GGUF layout (dequantized; no layout change: the
/// MLP and the base's tensors keep the GGUF form they are written in).
pub fn tensor_f32(m: Input<'_>, name: &str) -> Result<Vec<f32>, MoeError> {
    let read = |reason: String| MoeError::Read { path: m.path.to_path_buf(), tensor: name.into(), reason };
    let tensors = m.stage.tensors;
    let info = tensors.tensor_info(name).ok_or_else(|| read("no such tensor".into()))?.clone();
    let bytes = tensors.tensor_bytes(name).map_err(|e| read(e.to_string()))?;
    let out = crate::merge::inputs::decode(m.path, &info, &bytes, crate::arch::TensorFix::Copy)
        .map_err(|e| read(e.to_string()))?;
    drop(bytes);
    tensors.release(name);
    Ok(out)
}

/// The output float type when the config names no dtype: the type holding most of the base
/// model's 2-D weights if it is a float type (mergekit: the base config's torch_dtype), else F32.
pub fn dominant_float(base: Input<'_>) -> crate::passes::convert::OutType {
    use crate::passes::convert::OutType;
    let mut count: std::collections::BTreeMap<u32, (u64, GgmlType)> = Default::default();
    for t in base.stage.tensors.tensor_infos().iter().filter(|t| t.ne.len() >= 2) {
        let e = count.entry(t.ty as u32).or_insert((0, t.ty));
        e.0 += t.n_elements().unwrap_or(0);
    }
    count.values().max_by_key(|(n, _)| *n).and_then(|(_, ty)| OutType::from_ggml(*ty)).unwrap_or(OutType::F32)
}
