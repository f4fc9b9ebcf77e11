//! Qwen3: GGUF arch `qwen3` (convert_hf_to_gguf.py `Qwen3Model`, a `Qwen2Model`): the
//! `TextModel` base keys only, with `attention.key_length` / `value_length` from the
//! config's `head_dim` (Qwen3's head size is not hidden_size / heads: 0.6B has 1024 / 16 heads
//! but head_dim 128). Each layer adds an RMSNorm over every query and key head before RoPE
//! (`q_norm`, `k_norm` -> `attn_q_norm`, `attn_k_norm`, `[head_dim]`). RoPE is NeoX style in
//! llama.cpp, so no permutation. `use_sliding_window` is ignored by llama.cpp and refused here
//! when true, as for qwen2.

use llmtool_formats::{Metadata, TensorInfo};
use serde_json::{json, Value};

use super::common::{assemble, key, MdBase};
use super::hparams::md_u32;
use super::names::{self, with_qk_norms, LLAMA_BLOCK};
use super::qwen2;
use super::{Arch, ArchError, TensorFix, TensorMap};

const ARCH: &str = "qwen3";

pub struct Qwen3;

impl Arch for Qwen3 {
    fn gguf_arch(&self) -> &'static str {
        ARCH
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Qwen3ForCausalLM"]
    }

    fn config_to_metadata(&self, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
        qwen2::config_to_metadata(ARCH, config, md)
    }

    fn metadata_to_config(&self, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
        let m = MdBase::read(ARCH, md, tensors)?;
        let mut c = m.config_entries(ARCH, md, torch_dtype)?;
        // Always explicit: Qwen3Config's default head_dim is 128, not hidden_size / heads.
        c.insert("head_dim", json!(m.base.head_dim()));
        c.insert("attention_bias", json!(tensors.iter().any(|t| t.name.ends_with(".attn_q.bias"))));
        c.insert("attention_dropout", json!(0.0));
        c.insert("hidden_act", json!("silu"));
        c.insert("use_sliding_window", json!(false));
        Ok(assemble("Qwen3ForCausalLM", "qwen3", c))
    }

    fn hf_to_gguf_tensor(&self, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
        qwen2::hf_to_gguf(ARCH, &with_qk_norms(LLAMA_BLOCK), hf_name, config)
    }

    fn gguf_to_hf_tensor(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
        let n_layer = md_u32(md, &key(ARCH, "block_count"))?;
        let name = names::gguf_to_hf(ARCH, &with_qk_norms(LLAMA_BLOCK), gguf_name, n_layer)?;
        Ok(TensorMap { name, fix: TensorFix::Copy })
    }
}
