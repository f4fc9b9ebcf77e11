//! Qwen2-MoE and Qwen3-MoE: GGUF archs `qwen2moe` (Qwen2MoeForCausalLM, Qwen1.5-MoE /
//! Qwen2-57B-A14B) and `qwen3moe` (Qwen3MoeForCausalLM, Qwen3-30B-A3B), as llama.cpp's
//! `conversion/qwen.py` writes them (`Qwen2MoeModel`, `Qwen3MoeModel`).
//!
//! Metadata: the `TextModel` base keys of qwen2 / qwen3 (with `expert_count` /
//! `expert_used_count` from `num_experts` (transformers 5 saves Qwen3-MoE's as
//! `num_local_experts`) / `num_experts_per_tok`), then `expert_feed_forward_length`
//! (`moe_intermediate_size`) and, for qwen2moe, `expert_shared_feed_forward_length`
//! (`shared_expert_intermediate_size`). Tensors: qwen2's (q/k/v biases) or qwen3's (q/k norms)
//! attention; the router `mlp.gate` -> `ffn_gate_inp`; Qwen2-MoE's shared expert
//! `mlp.shared_expert.*` -> `ffn_*_shexp` and its gate `mlp.shared_expert_gate` ->
//! `ffn_gate_inp_shexp` ([1, n_embd], kept 2-D); the routed experts stacked into
//! `ffn_{down,gate,up}_exps` (`experts.rs`).
//!
//! Routing: llama.cpp's graphs fix the renormalisation of the top-k weights per family
//! (qwen2moe.cpp: `norm_w = false`; qwen3moe.cpp: `true`) and the converter writes no key for
//! transformers' `norm_topk_prob`. A config whose `norm_topk_prob` differs from that gets
//! `<arch>.expert_weights_norm` (llama.cpp's key name for it, which these two graphs do not
//! read), so that the GGUF still says how the model routes; our inference core reads it.
//! Dense layers inside the model (`mlp_only_layers`, `decoder_sparse_step` > 1) have no
//! llama.cpp form and are refused.

use llmtool_formats::{MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

use super::common::{assemble, key, MdBase};
use super::experts::{ExpertCounts, ExpertSlice, FusedSlice, QWEN_MOE_EXPERTS};
use super::hparams::{cfg_bool_opt, cfg_get, cfg_u32_opt, md_u32, md_u32_opt, Base};
use super::names::{self, LLAMA_BLOCK, QK_NORM_BLOCK, QWEN_MOE_FFN};
use super::{qwen2, Arch, ArchError, TensorFix, TensorMap};

pub struct Qwen2Moe;
pub struct Qwen3Moe;

/// What tells the two apart.
struct Variant {
    arch: &'static str,
    hf_arch: &'static str,
    model_type: &'static str,
    /// llama.cpp's fixed `norm_w` for this graph.
    norm_topk_default: bool,
    qk_norm: bool,
}

const QWEN2MOE: Variant = Variant {
    arch: "qwen2moe",
    hf_arch: "Qwen2MoeForCausalLM",
    model_type: "qwen2_moe",
    norm_topk_default: false,
    qk_norm: false,
};
const QWEN3MOE: Variant = Variant {
    arch: "qwen3moe",
    hf_arch: "Qwen3MoeForCausalLM",
    model_type: "qwen3_moe",
    norm_topk_default: true,
    qk_norm: true,
};

/// The GGUF key holding a renormalisation that differs from the graph's default.
pub(crate) const EXPERT_WEIGHTS_NORM: &str = "expert_weights_norm";

impl Variant {
    fn block(&self) -> Vec<(&'static str, &'static str)> {
        let qk: &[(&str, &str)] = if self.qk_norm { QK_NORM_BLOCK } else { &[] };
        LLAMA_BLOCK.iter().chain(qk).chain(QWEN_MOE_FFN).copied().collect()
    }

    fn config_to_metadata(&self, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
        let a = self.arch;
        if ExpertCounts::from_config(config)?.is_none() {
            return Err(ArchError::MissingKey { what: "config.json", key: "num_experts".into() });
        }
        if let Some(step) = cfg_u32_opt(config, "decoder_sparse_step")?.filter(|&s| s != 1) {
            return Err(ArchError::Unsupported {
                what: "dense layers in a Mixture-of-Experts model",
                detail: format!("decoder_sparse_step = {step} (llama.cpp's {a} has experts in every layer)"),
            });
        }
        if let Some(l) = cfg_get(config, "mlp_only_layers").filter(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
            return Err(ArchError::Unsupported {
                what: "dense layers in a Mixture-of-Experts model",
                detail: format!("mlp_only_layers = {l} (llama.cpp's {a} has experts in every layer)"),
            });
        }
        qwen2::config_to_metadata(a, config, md)?;
        if let Some(n) = cfg_u32_opt(config, "moe_intermediate_size")? {
            md.insert(key(a, "expert_feed_forward_length"), MetaValue::U32(n));
        }
        if let Some(n) = cfg_u32_opt(config, "shared_expert_intermediate_size")? {
            md.insert(key(a, "expert_shared_feed_forward_length"), MetaValue::U32(n));
        }
        // transformers' default is false for both configs.
        let norm = cfg_bool_opt(config, "norm_topk_prob")?.unwrap_or(false);
        if norm != self.norm_topk_default {
            md.insert(key(a, EXPERT_WEIGHTS_NORM), MetaValue::Bool(norm));
        }
        Ok(())
    }

    fn metadata_to_config(&self, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
        let a = self.arch;
        let m = MdBase::read(a, md, tensors)?;
        let e = m
            .base
            .experts
            .ok_or_else(|| ArchError::MissingKey { what: "GGUF metadata", key: key(a, "expert_count") })?;
        let mut c = m.config_entries(a, md, torch_dtype)?;
        c.insert("num_experts", json!(e.n_expert));
        // llama.cpp qwen2moe.cpp: n_ff_exp defaults to n_ff / n_expert_used, n_ff_shexp to n_ff.
        let n_ff_exp = md_u32_opt(md, &key(a, "expert_feed_forward_length"))?.unwrap_or(m.base.n_ff / e.n_used);
        c.insert("moe_intermediate_size", json!(n_ff_exp));
        c.insert("norm_topk_prob", json!(norm_topk(a, md, self.norm_topk_default)?));
        c.insert("decoder_sparse_step", json!(1));
        c.insert("mlp_only_layers", json!([]));
        c.insert("attention_dropout", json!(0.0));
        c.insert("hidden_act", json!("silu"));
        c.insert("use_sliding_window", json!(false));
        let biased = tensors.iter().any(|t| t.name.ends_with(".attn_q.bias"));
        if self.qk_norm {
            c.insert("head_dim", json!(m.base.head_dim()));
            c.insert("attention_bias", json!(biased));
        } else {
            if let Some(hd) = m.key_length {
                c.insert("head_dim", json!(hd));
            }
            let n_shexp = md_u32_opt(md, &key(a, "expert_shared_feed_forward_length"))?.unwrap_or(m.base.n_ff);
            c.insert("shared_expert_intermediate_size", json!(n_shexp));
            c.insert("qkv_bias", json!(biased));
        }
        Ok(assemble(self.hf_arch, self.model_type, c))
    }

    fn hf_to_gguf(&self, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
        qwen2::hf_to_gguf(self.arch, &self.block(), hf_name, config)
    }

    fn gguf_to_hf(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
        let n_layer = md_u32(md, &key(self.arch, "block_count"))?;
        let name = names::gguf_to_hf(self.arch, &self.block(), gguf_name, n_layer)?;
        Ok(TensorMap { name, fix: TensorFix::Copy })
    }

    fn hf_expert_slice(&self, hf_name: &str, config: &Value) -> Result<Option<ExpertSlice>, ArchError> {
        let b = Base::from_config(config)?;
        match b.experts {
            Some(e) => QWEN_MOE_EXPERTS.hf_slice(hf_name, b.n_layer, e.n_expert),
            None => Ok(None),
        }
    }

    fn hf_fused_experts(&self, hf_name: &str, config: &Value) -> Result<Option<FusedSlice>, ArchError> {
        let b = Base::from_config(config)?;
        match b.experts {
            Some(e) => QWEN_MOE_EXPERTS.hf_fused(hf_name, b.n_layer, e.n_expert),
            None => Ok(None),
        }
    }

    fn gguf_expert_names(&self, gguf_name: &str, md: &Metadata) -> Result<Option<Vec<String>>, ArchError> {
        let Some(e) = ExpertCounts::from_metadata(self.arch, md)? else {
            return Ok(None);
        };
        let n_layer = md_u32(md, &key(self.arch, "block_count"))?;
        Ok(QWEN_MOE_EXPERTS.hf_names(gguf_name, n_layer, e.n_expert))
    }
}

/// Whether the top-k routing weights are renormalised: `<arch>.expert_weights_norm`, else
/// the graph's default.
pub(crate) fn norm_topk(arch: &str, md: &Metadata, default: bool) -> Result<bool, ArchError> {
    match md.get(&key(arch, EXPERT_WEIGHTS_NORM)) {
        None => Ok(default),
        Some(MetaValue::Bool(b)) => Ok(*b),
        Some(v) => Err(ArchError::WrongType {
            what: "GGUF metadata",
            key: key(arch, EXPERT_WEIGHTS_NORM),
            expected: "a bool",
            found: format!("{v:?}"),
        }),
    }
}

fn variant(v2: bool) -> &'static Variant {
    if v2 {
        &QWEN3MOE
    } else {
        &QWEN2MOE
    }
}

fn arch(v2: bool) -> &'static str {
    variant(v2).arch
}

fn config_to_metadata(v2: bool, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
    variant(v2).config_to_metadata(config, md)
}

fn metadata_to_config(v2: bool, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
    variant(v2).metadata_to_config(md, tensors, torch_dtype)
}

fn hf_to_gguf(v2: bool, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
    variant(v2).hf_to_gguf(hf_name, config)
}

fn gguf_to_hf(v2: bool, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
    variant(v2).gguf_to_hf(gguf_name, md)
}

fn hf_expert_slice(v2: bool, hf_name: &str, config: &Value) -> Result<Option<ExpertSlice>, ArchError> {
    variant(v2).hf_expert_slice(hf_name, config)
}

fn gguf_expert_names(v2: bool, gguf_name: &str, md: &Metadata) -> Result<Option<Vec<String>>, ArchError> {
    variant(v2).gguf_expert_names(gguf_name, md)
}

fn hf_fused_experts(v2: bool, hf_name: &str, config: &Value) -> Result<Option<FusedSlice>, ArchError> {
    variant(v2).hf_fused_experts(hf_name, config)
}

two_variant_arch!(Qwen2Moe, false, &["Qwen2MoeForCausalLM"], experts);
two_variant_arch!(Qwen3Moe, true, &["Qwen3MoeForCausalLM"], experts);
