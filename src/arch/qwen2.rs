//! Qwen2: GGUF arch `qwen2`. Metadata is the `TextModel` base set only
//! (convert_hf_to_gguf.py `Qwen2Model`): no `vocab_size`, no `rope.dimension_count`. Q/K/V
//! carry biases; RoPE is NeoX style in llama.cpp, so no permutation. `use_sliding_window`
//! is ignored by llama.cpp and refused here when true. Qwen3 converts the same way
//! (`Qwen3Model` is a `Qwen2Model`) with its own block table: [`config_to_metadata`] and
//! [`hf_to_gguf`] serve both.

use llmtool_formats::{Metadata, TensorInfo};
use serde_json::{json, Value};

use super::common::{assemble, key, write_base_counts, write_general, write_rope_eps_head_dim, MdBase};
use super::hparams::{cfg_bool_opt, md_u32, Base};
use super::names::{self, LLAMA_BLOCK};
use super::rope::Rope;
use super::{Arch, ArchError, TensorFix, TensorMap};

const ARCH: &str = "qwen2";

pub struct Qwen2;

impl Arch for Qwen2 {
    fn gguf_arch(&self) -> &'static str {
        ARCH
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Qwen2ForCausalLM"]
    }

    fn config_to_metadata(&self, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
        config_to_metadata(ARCH, config, md)
    }

    fn metadata_to_config(&self, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
        let m = MdBase::read(ARCH, md, tensors)?;
        let mut c = m.config_entries(ARCH, md, torch_dtype)?;
        if let Some(hd) = m.key_length {
            c.insert("head_dim", json!(hd));
        }
        c.insert("attention_dropout", json!(0.0));
        c.insert("hidden_act", json!("silu"));
        c.insert("use_sliding_window", json!(false));
        Ok(assemble("Qwen2ForCausalLM", "qwen2", c))
    }

    fn hf_to_gguf_tensor(&self, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
        hf_to_gguf(ARCH, LLAMA_BLOCK, hf_name, config)
    }

    fn gguf_to_hf_tensor(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
        let n_layer = md_u32(md, &key(ARCH, "block_count"))?;
        let name = names::gguf_to_hf(ARCH, LLAMA_BLOCK, gguf_name, n_layer)?;
        Ok(TensorMap { name, fix: TensorFix::Copy })
    }
}

/// `Qwen2Model.set_gguf_parameters`: the `TextModel` base keys; a sliding window is refused.
pub(super) fn config_to_metadata(arch: &'static str, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
    let b = Base::from_config(config)?;
    let rope = Rope::from_config(config)?;
    rope.refuse_factor_scaling(arch)?;
    if cfg_bool_opt(config, "use_sliding_window")?.unwrap_or(false) {
        return Err(ArchError::Unsupported {
            what: "qwen sliding window attention",
            detail: format!("use_sliding_window = true (llama.cpp's {arch} graph has no sliding window)"),
        });
    }
    write_general(arch, config, md)?;
    write_base_counts(arch, &b, md);
    write_rope_eps_head_dim(arch, &b, &rope, md);
    Ok(())
}

/// HF -> GGUF by `block`, no layout fix; a tied `lm_head` is dropped.
pub(super) fn hf_to_gguf(
    arch: &'static str,
    block: &[(&str, &str)],
    hf_name: &str,
    config: &Value,
) -> Result<Option<TensorMap>, ArchError> {
    let b = Base::from_config(config)?;
    if hf_name == "lm_head.weight" && cfg_bool_opt(config, "tie_word_embeddings")?.unwrap_or(false) {
        return Ok(None);
    }
    Ok(names::hf_to_gguf(arch, block, hf_name, b.n_layer)?.map(|name| TensorMap { name, fix: TensorFix::Copy }))
}
