//! Mixtral (MixtralForCausalLM): GGUF arch `llama` with experts, as llama.cpp's converter
//! writes it (`LlamaModel`, which registers MixtralForCausalLM): the llama keys plus
//! `llama.expert_count` / `llama.expert_used_count` (the `TextModel` base keys, from
//! `num_local_experts` / `num_experts_per_tok`), Q/K permuted as for Llama, the router
//! `block_sparse_moe.gate` -> `ffn_gate_inp` (kept F32 by the converter), and the experts
//! `block_sparse_moe.experts.E.{w1,w2,w3}` stacked into `ffn_{gate,down,up}_exps` (`experts.rs`).
//! The [`super::Llama`] family delegates here when the config or metadata has experts.

use std::collections::BTreeMap;

use llmtool_formats::Metadata;
use serde_json::{json, Value};

use super::common::{assemble, key};
use super::experts::{ExpertCounts, ExpertSlice, FusedSlice, MIXTRAL_EXPERTS};
use super::hparams::{md_u32, Base};
use super::names::{LLAMA_BLOCK, MIXTRAL_ROUTER};
use super::ArchError;

const ARCH: &str = "llama";

/// The llama block table with Mixtral's router (a dense checkpoint has no such tensor).
pub(super) fn block() -> Vec<(&'static str, &'static str)> {
    LLAMA_BLOCK.iter().chain(MIXTRAL_ROUTER).copied().collect()
}

/// The expert slice an HF tensor is, for a config with experts.
pub(super) fn hf_expert_slice(hf_name: &str, config: &Value) -> Result<Option<ExpertSlice>, ArchError> {
    let b = Base::from_config(config)?;
    match b.experts {
        Some(e) => MIXTRAL_EXPERTS.hf_slice(hf_name, b.n_layer, e.n_expert),
        None => Ok(None),
    }
}

/// The stacked GGUF tensors a transformers 5 expert tensor holds, for a config with experts.
pub(super) fn hf_fused_experts(hf_name: &str, config: &Value) -> Result<Option<FusedSlice>, ArchError> {
    let b = Base::from_config(config)?;
    match b.experts {
        Some(e) => MIXTRAL_EXPERTS.hf_fused(hf_name, b.n_layer, e.n_expert),
        None => Ok(None),
    }
}

/// The HF names of a stacked expert tensor's experts, for metadata with experts.
pub(super) fn gguf_expert_names(gguf_name: &str, md: &Metadata) -> Result<Option<Vec<String>>, ArchError> {
    let Some(e) = ExpertCounts::from_metadata(ARCH, md)? else {
        return Ok(None);
    };
    let n_layer = md_u32(md, &key(ARCH, "block_count"))?;
    Ok(MIXTRAL_EXPERTS.hf_names(gguf_name, n_layer, e.n_expert))
}

/// config.json of a Mixtral from the llama entries (`c`), MixtralConfig's keys; `head_dim`
/// only when the metadata states a key length (MixtralConfig's `None` means hidden / heads).
pub(super) fn config(e: ExpertCounts, key_length: Option<u32>, mut c: BTreeMap<&'static str, Value>) -> Value {
    if key_length.is_none() {
        c.insert("head_dim", Value::Null);
    }
    c.insert("num_local_experts", json!(e.n_expert));
    c.insert("num_experts_per_tok", json!(e.n_used));
    c.insert("output_router_logits", json!(false));
    c.insert("router_aux_loss_coef", json!(0.001));
    c.insert("router_jitter_noise", json!(0.0));
    c.insert("sliding_window", Value::Null);
    assemble("MixtralForCausalLM", "mixtral", c)
}
