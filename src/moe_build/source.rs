//! The MoE as a lazy [`TensorSource`] in GGUF form: Mixtral is llama.cpp's `llama` arch with
//! `llama.expert_count` / `llama.expert_used_count`, the router `blk.N.ffn_gate_inp.weight`
//! (ne = [n_embd, n_expert], F32) and the experts' MLPs stacked into
//! `blk.N.ffn_{gate,down,up}_exps.weight` (ne = [.., .., n_expert], expert e = the e-th
//! outermost slice; convert_hf_to_gguf.py `LlamaModel.modify_tensors`). Every other tensor is
//! the base model's (mergekit/moe/mixtral.py `write_model`: all non-`.mlp.` weights from the
//! base). Tensors are produced as f32 when the writer asks; the writer re-types them.

use std::borrow::Cow;

use llmtool_formats::{FormatError, GgmlType, MetaValue, Metadata, TensorInfo, TensorSource};

use super::config::MoeConfig;
use super::inputs::{tensor_f32, MoeInputs, MLP};
use super::MoeError;
use crate::passes::convert::OutType;

enum Origin {
    /// The base model's tensor of the same name.
    Base,
    /// Router of a layer (index into the router list).
    Router(usize),
    /// `blk.<layer>.<dense suffix>` of every expert, stacked; `scale_down`: residual_scale.
    Stacked { layer: u32, dense: &'static str },
}

pub struct MoeSource<'a> {
    inputs: &'a MoeInputs,
    cfg: &'a MoeConfig,
    routers: Vec<Vec<f32>>,
    infos: Vec<TensorInfo>,
    origins: Vec<Origin>,
}

/// Rounds through the output type, as mergekit's `weight.to(dtype=out_dtype)` does to the
/// routers (kept F32 in the file, like llama.cpp's converter keeps `ffn_gate_inp`).
fn round_through(v: &mut [f32], ty: OutType) {
    match ty {
        OutType::F32 => {}
        OutType::F16 => v.iter_mut().for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
        OutType::Bf16 => v.iter_mut().for_each(|x| *x = half::bf16::from_f32(*x).to_f32()),
    }
}

impl<'a> MoeSource<'a> {
    pub fn new(cfg: &'a MoeConfig, inputs: &'a MoeInputs, mut routers: Vec<Vec<f32>>, out: OutType) -> Self {
        routers.iter_mut().for_each(|r| round_through(r, out));
        let n_expert = cfg.experts.len() as u64;
        let mut infos = Vec::new();
        let mut origins = Vec::new();
        for t in inputs.base.tensors.tensor_infos() {
            let split = t.name.strip_prefix("blk.").and_then(|r| r.split_once('.'));
            let mlp = split.and_then(|(l, suffix)| {
                let layer = l.parse::<u32>().ok()?;
                MLP.iter().find(|(d, _)| *d == suffix).map(|(d, s)| (layer, *d, *s))
            });
            let Some((layer, dense, stacked)) = mlp else {
                infos.push(TensorInfo { name: t.name.clone(), ty: GgmlType::F32, ne: t.ne.clone() });
                origins.push(Origin::Base);
                continue;
            };
            if dense == MLP[0].0 {
                infos.push(TensorInfo {
                    name: format!("blk.{layer}.ffn_gate_inp.weight"),
                    ty: GgmlType::F32,
                    ne: vec![inputs.n_embd, n_expert],
                });
                origins.push(Origin::Router(layer as usize));
            }
            let mut ne = t.ne.clone();
            ne.push(n_expert);
            infos.push(TensorInfo { name: format!("blk.{layer}.{stacked}"), ty: GgmlType::F32, ne });
            origins.push(Origin::Stacked { layer, dense });
        }
        MoeSource { inputs, cfg, routers, infos, origins }
    }

    /// The output metadata: the base model's, with the expert counts.
    pub fn metadata(&self) -> Metadata {
        let mut md = self.inputs.base.metadata.clone();
        let arch = self.inputs.base.arch.gguf_arch();
        md.insert(format!("{arch}.expert_count"), MetaValue::U32(self.cfg.experts.len() as u32));
        md.insert(format!("{arch}.expert_used_count"), MetaValue::U32(self.cfg.experts_per_token));
        md
    }

    fn compute(&self, i: usize) -> Result<Vec<f32>, MoeError> {
        let name = &self.infos[i].name;
        match &self.origins[i] {
            Origin::Base => tensor_f32(&self.inputs.base, name),
            Origin::Router(l) => Ok(self.routers[*l].clone()),
            Origin::Stacked { layer, dense } => {
                let mut out = Vec::new();
                for (m, e) in self.inputs.experts.iter().zip(&self.cfg.experts) {
                    let mut w = tensor_f32(m, &format!("blk.{layer}.{dense}"))?;
                    // noise_and_scale(is_residual = down_proj): tensor * residual_scale (f32)
                    if let (Some(s), true) = (e.residual_scale, *dense == "ffn_down.weight") {
                        let s = s as f32;
                        w.iter_mut().for_each(|x| *x *= s);
                    }
                    out.extend(w);
                }
                Ok(out)
            }
        }
    }
}

impl TensorSource for MoeSource<'_> {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let i = self.infos.iter().position(|t| t.name == name).ok_or_else(|| FormatError::NoSuchTensor(name.into()))?;
        let v = self.compute(i).map_err(|e| FormatError::Other(e.to_string()))?;
        Ok(Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()))
    }
}
