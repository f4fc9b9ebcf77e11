//! Qwen3: GGUF arch `qwen3` (convert_hf_to_gguf.py `Qwen3Model`, a `Qwen2Model`): the
//! `TextModel` base keys only, with `attention.key_length` / `value_length` from the
//! config's `head_dim` (Qwen3's head size is not hidden_size / heads: 0.6B has 1024 / 16 heads
//! but head_dim 128). Each layer adds an RMSNorm over every query and key head before RoPE
//! (`q_norm`, `k_norm` -> `attn_q_norm`, `attn_k_norm`, `[head_dim]`). RoPE is NeoX style in
//! llama.cpp, so no permutation. `use_sliding_window` is ignored by llama.cpp and refused here
//! when true, as for qwen2.

use llmtool_formats::{Metadata, TensorInfo};
use serde_json::{json, Value};

use super::common::{assemble, key, write_base_counts, write_general, write_rope_eps_head_dim, MdBase};
use super::hparams::{cfg_bool_opt, md_u32, Base};
use super::names;
use super::rope::Rope;
use super::{Arch, ArchError, TensorFix, TensorMap};

const ARCH: &str = "qwen3";

/// Llama's block tensors plus the per-head q/k norms (gguf-py `ATTN_Q_NORM`, `ATTN_K_NORM`).
const BLOCK: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
    // attention_bias = true (llama.cpp's qwen3 loader takes optional bq/bk/bv/bo)
    ("self_attn.q_proj.bias", "attn_q.bias"),
    ("self_attn.k_proj.bias", "attn_k.bias"),
    ("self_attn.v_proj.bias", "attn_v.bias"),
    ("self_attn.o_proj.bias", "attn_output.bias"),
];

pub struct Qwen3;

impl Arch for Qwen3 {
    fn gguf_arch(&self) -> &'static str {
        ARCH
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Qwen3ForCausalLM"]
    }

    fn config_to_metadata(&self, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
        let b = Base::from_config(config)?;
        let rope = Rope::from_config(config)?;
        if cfg_bool_opt(config, "use_sliding_window")?.unwrap_or(false) {
            return Err(ArchError::Unsupported {
                what: "qwen3 sliding window attention",
                detail: "use_sliding_window = true (llama.cpp's qwen3 graph has no sliding window)".into(),
            });
        }
        write_general(ARCH, config, md)?;
        write_base_counts(ARCH, &b, md);
        write_rope_eps_head_dim(ARCH, &b, &rope, md);
        Ok(())
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
        let b = Base::from_config(config)?;
        if hf_name == "lm_head.weight" && cfg_bool_opt(config, "tie_word_embeddings")?.unwrap_or(false) {
            return Ok(None);
        }
        Ok(names::hf_to_gguf(ARCH, BLOCK, hf_name, b.n_layer)?.map(|name| TensorMap { name, fix: TensorFix::Copy }))
    }

    fn gguf_to_hf_tensor(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
        let n_layer = md_u32(md, &key(ARCH, "block_count"))?;
        Ok(TensorMap { name: names::gguf_to_hf(ARCH, BLOCK, gguf_name, n_layer)?, fix: TensorFix::Copy })
    }
}
