//! The MoE as a lazy [`TensorSource`] in GGUF form, written as GGUF or HF by the usual writers.
//!
//! - Mixtral (mergekit/moe/mixtral.py): llama.cpp's `llama` arch with `llama.expert_count` /
//!   `llama.expert_used_count`, the router `blk.N.ffn_gate_inp.weight` (ne = [n_embd,
//!   n_expert], F32) and the experts' MLPs stacked into `blk.N.ffn_{gate,down,up}_exps.weight`
//!   (expert e = the e-th outermost slice; convert_hf_to_gguf.py `LlamaModel.modify_tensors`).
//!   Every other tensor is the base model's (`write_model`: all non-`.mlp.` weights).
//! - Qwen2-MoE (mergekit/moe/qwen.py): config `Qwen2MoeConfig(**base_config)` with
//!   num_experts, num_experts_per_tok, decoder_sparse_step 1, norm_topk_prob true, no sliding
//!   window, moe/shared intermediate sizes = intermediate_size; the base's tensors (in HF
//!   layout: qwen2 does not permute Q/K), zero q/k/v biases where the base has none, the
//!   shared expert's MLP as `ffn_*_shexp` and its gate (the last router row) as
//!   `ffn_gate_inp_shexp` (HF [1, n_embd]).
//!
//! Tensors are produced as f32 when the writer asks; the writer re-types them.

use std::borrow::Cow;

use llmtool_formats::{FormatError, GgmlType, MetaValue, Metadata, TensorInfo, TensorSource};
use serde_json::{json, Value};

use super::config::{Expert, MoeConfig, OutArch};
use super::inputs::{tensor_f32, MoeInputs, MLP};
use super::MoeError;
use crate::arch::{Arch, TensorFix};
use crate::passes::convert::OutType;
use crate::pipeline::Input;

enum Origin {
    /// The base model's tensor of the same name, with a layout fix (GGUF form of the base
    /// arch → GGUF form of the output arch).
    Base(TensorFix),
    /// A bias the base model lacks (Qwen2-MoE has q/k/v biases): zeros.
    Zeros,
    /// Router of a layer.
    Router(usize),
    /// The shared expert's gate of a layer (the last router row).
    SharedGate(usize),
    /// `blk.<layer>.<dense suffix>` of every expert, stacked.
    Stacked { layer: u32, dense: &'static str },
    /// `blk.<layer>.<dense suffix>` of the shared expert.
    Shared { layer: u32, dense: &'static str },
}

pub struct MoeSource<'a> {
    inputs: MoeInputs<'a>,
    cfg: &'a MoeConfig,
    routers: Vec<Vec<f32>>,
    infos: Vec<TensorInfo>,
    origins: Vec<Origin>,
    arch: &'static dyn Arch,
    metadata: Metadata,
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

fn input_err(m: Input<'_>, reason: String) -> MoeError {
    MoeError::Input { path: m.path.to_path_buf(), reason }
}

/// Mixtral metadata: the base model's, with the expert counts.
fn mixtral_metadata(base: Input<'_>, n_expert: u32, n_used: u32) -> Metadata {
    let mut md = base.stage.metadata.clone();
    let arch = base.stage.arch.gguf_arch();
    md.insert(format!("{arch}.expert_count"), MetaValue::U32(n_expert));
    md.insert(format!("{arch}.expert_used_count"), MetaValue::U32(n_used));
    md
}

/// Qwen2-MoE metadata: the base's config.json as `_generate_config` (mergekit/moe/qwen.py)
/// rewrites it, through the qwen2moe arch; the base's tokenizer and general keys kept.
fn qwen2moe_metadata(base: Input<'_>, n_expert: u32, n_used: u32) -> Result<(Metadata, &'static dyn Arch), MoeError> {
    let arch_err = |e: crate::arch::ArchError| input_err(base, e.to_string());
    let b = base.stage;
    let mut cfg = b.arch.metadata_to_config(b.metadata, b.tensors.tensor_infos(), "float32").map_err(arch_err)?;
    let obj = cfg.as_object_mut().ok_or_else(|| input_err(base, "config is not an object".into()))?;
    let ff = obj.get("intermediate_size").cloned().unwrap_or(Value::Null);
    for (k, v) in [
        ("architectures", json!(["Qwen2MoeForCausalLM"])),
        ("model_type", json!("qwen2_moe")),
        ("num_experts", json!(n_expert)),
        ("num_experts_per_tok", json!(n_used)),
        ("decoder_sparse_step", json!(1)),
        ("norm_topk_prob", json!(true)),
        ("sliding_window", Value::Null),
        ("use_sliding_window", json!(false)),
        ("shared_expert_intermediate_size", ff.clone()),
        ("moe_intermediate_size", ff),
    ] {
        obj.insert(k.into(), v);
    }
    let arch = crate::arch::from_hf_config(&cfg).map_err(arch_err)?;
    let mut md = Metadata::new();
    arch.config_to_metadata(&cfg, &mut md).map_err(arch_err)?;
    for (k, v) in b.metadata.iter() {
        if (k.starts_with("tokenizer.") || k.starts_with("general.")) && !md.contains_key(k) {
            md.insert(k.to_string(), v.clone());
        }
    }
    Ok((md, arch))
}

impl<'a> MoeSource<'a> {
    pub fn new(
        cfg: &'a MoeConfig,
        inputs: MoeInputs<'a>,
        mut routers: Vec<Vec<f32>>,
        out: OutType,
    ) -> Result<Self, MoeError> {
        routers.iter_mut().for_each(|r| round_through(r, out));
        let base = inputs.base;
        let (n_expert, n_used) = (cfg.experts.len() as u32, cfg.experts_per_token);
        let qwen = cfg.architecture == OutArch::Qwen2Moe;
        let (metadata, arch) = if qwen {
            qwen2moe_metadata(base, n_expert, n_used)?
        } else {
            (mixtral_metadata(base, n_expert, n_used), base.stage.arch)
        };
        let mut infos = Vec::new();
        let mut origins = Vec::new();
        let mut push = |name: String, ne: Vec<u64>, o: Origin| {
            infos.push(TensorInfo { name, ty: GgmlType::F32, ne });
            origins.push(o);
        };
        let has = |n: &str| base.stage.tensors.tensor_info(n).is_some();
        for t in base.stage.tensors.tensor_infos() {
            let split = t.name.strip_prefix("blk.").and_then(|r| r.split_once('.'));
            let block = split.and_then(|(l, suffix)| Some((l.parse::<u32>().ok()?, suffix)));
            let mlp =
                block.and_then(|(layer, suffix)| MLP.iter().find(|(d, _)| *d == suffix).map(|(d, s)| (layer, *d, *s)));
            let Some((layer, dense, stacked)) = mlp else {
                let fix = if qwen {
                    // base GGUF form → HF layout = qwen2's GGUF form (llama's Q/K un-permuted)
                    base.stage
                        .arch
                        .gguf_to_hf_tensor(&t.name, base.stage.metadata)
                        .map_err(|e| input_err(base, e.to_string()))?
                        .fix
                } else {
                    TensorFix::Copy
                };
                push(t.name.clone(), t.ne.clone(), Origin::Base(fix));
                if let (true, Some((layer, suffix))) = (qwen, block) {
                    if let Some(p) = ["attn_q", "attn_k", "attn_v"].iter().find(|p| suffix == format!("{p}.weight")) {
                        let bias = format!("blk.{layer}.{p}.bias");
                        if !has(&bias) {
                            push(bias, vec![t.ne[1]], Origin::Zeros);
                        }
                    }
                }
                continue;
            };
            let mut ne = t.ne.clone();
            if dense == MLP[0].0 {
                push(
                    format!("blk.{layer}.ffn_gate_inp.weight"),
                    vec![inputs.n_embd, n_expert as u64],
                    Origin::Router(layer as usize),
                );
            }
            ne.push(n_expert as u64);
            push(format!("blk.{layer}.{stacked}"), ne, Origin::Stacked { layer, dense });
            if qwen {
                let shexp = stacked.replace("_exps", "_shexp");
                push(format!("blk.{layer}.{shexp}"), t.ne.clone(), Origin::Shared { layer, dense });
                if dense == MLP[2].0 {
                    push(
                        format!("blk.{layer}.ffn_gate_inp_shexp.weight"),
                        vec![inputs.n_embd, 1],
                        Origin::SharedGate(layer as usize),
                    );
                }
            }
        }
        Ok(MoeSource { inputs, cfg, routers, infos, origins, arch, metadata })
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn arch(&self) -> &'static dyn Arch {
        self.arch
    }

    /// An expert's MLP tensor, `residual_scale` applied to down (`noise_and_scale`).
    fn expert_mlp(m: Input<'_>, e: &Expert, layer: u32, dense: &str) -> Result<Vec<f32>, MoeError> {
        let mut w = tensor_f32(m, &format!("blk.{layer}.{dense}"))?;
        if let (Some(s), true) = (e.residual_scale, dense == "ffn_down.weight") {
            let s = s as f32;
            w.iter_mut().for_each(|x| *x *= s);
        }
        Ok(w)
    }

    /// The bytes (f32, little-endian) of tensor `i`; a stacked tensor is assembled expert by
    /// expert, so only one expert's f32 copy exists beside the output bytes.
    fn bytes(&self, i: usize) -> Result<Vec<u8>, MoeError> {
        let le = |v: &[f32], out: &mut Vec<u8>| out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        let mut out = Vec::new();
        match &self.origins[i] {
            Origin::Stacked { layer, dense } => {
                let n = self.infos[i].n_elements().unwrap_or(0) as usize;
                out.reserve_exact(n * 4);
                for (&m, e) in self.inputs.experts.iter().zip(&self.cfg.experts) {
                    le(&Self::expert_mlp(m, e, *layer, dense)?, &mut out);
                }
            }
            _ => le(&self.compute(i)?, &mut out),
        }
        Ok(out)
    }

    fn compute(&self, i: usize) -> Result<Vec<f32>, MoeError> {
        let info = &self.infos[i];
        let d = self.inputs.n_embd as usize;
        let n_expert = self.cfg.experts.len();
        match &self.origins[i] {
            Origin::Base(fix) => {
                let data = tensor_f32(self.inputs.base, &info.name)?;
                crate::merge::inputs::apply_fix_f32(info, data, *fix)
                    .map_err(|e| input_err(self.inputs.base, format!("{}: {e}", info.name)))
            }
            Origin::Zeros => Ok(vec![0.0; info.ne[0] as usize]),
            Origin::Router(l) => Ok(self.routers[*l][..n_expert * d].to_vec()),
            Origin::SharedGate(l) => Ok(self.routers[*l][n_expert * d..(n_expert + 1) * d].to_vec()),
            // written expert by expert by `bytes`
            Origin::Stacked { .. } => Err(input_err(self.inputs.base, format!("{}: stacked", info.name))),
            Origin::Shared { layer, dense } => {
                let (Some(m), Some(e)) = (self.inputs.shared, self.cfg.shared_experts.first()) else {
                    return Err(input_err(self.inputs.base, "no shared expert".into()));
                };
                Self::expert_mlp(m, e, *layer, dense)
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
        self.bytes(i).map(Cow::Owned).map_err(|e| FormatError::Other(e.to_string()))
    }
}
