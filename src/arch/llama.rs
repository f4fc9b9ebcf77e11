//! Llama family (Llama 2/3, SmolLM2, Mistral): GGUF arch `llama`.
//!
//! Metadata as convert_hf_to_gguf.py `LlamaModel.set_gguf_parameters` (the `TextModel` base
//! keys, then `vocab_size` and `rope.dimension_count`). Q and K rows are permuted from HF's
//! rotary halves to llama.cpp's interleaved pairs (`LlamaModel.permute`), K with the KV head
//! count. Mistral checkpoints map here too (llama.cpp converts them as `llama`; their
//! `sliding_window` is dropped by llama.cpp as well), and come back as LlamaForCausalLM.
//! Llama 3.x `rope_type: "llama3"` becomes a `rope_freqs.weight` tensor (no metadata key), as
//! llama.cpp `LlamaModel.generate_extra_tensors` makes it; GGUF → HF solves the parameters
//! back from it. llama.cpp ignores `partial_rotary_factor` for llama (rope.dimension_count is
//! the head size), so a config with one is refused. Mixtral is this arch with experts
//! (`mixtral.rs`).

use llmtool_formats::{MetaValue, Metadata, TensorInfo, TensorSource};
use serde_json::{json, Value};

use super::common::{assemble, key, write_base_counts, write_general, write_rope_eps_head_dim, MdBase};
use super::experts::{ExpertSlice, FusedSlice};
use super::hparams::{cfg_bool_opt, md_u32, md_u32_opt, Base};
use super::mixtral;
use super::names::{self, gguf_suffix};
use super::rope::{Rope, RopeScaling};
use super::rope_factors::{llama3_factors, llama3_params_from_factors, read_factors, ROPE_FREQS};
use super::{Arch, ArchError, TensorFix, TensorMap};

const ARCH: &str = "llama";

pub struct Llama;

/// The permutation each Llama tensor needs going HF -> GGUF, given its GGUF name.
fn llama_fix(gguf: &str, n_head: u32, n_head_kv: u32) -> TensorFix {
    match gguf_suffix(gguf) {
        "attn_q.weight" | "attn_q.bias" => TensorFix::PermuteQk { n_head },
        "attn_k.weight" | "attn_k.bias" => TensorFix::PermuteQk { n_head: n_head_kv },
        _ => TensorFix::Copy,
    }
}

impl Arch for Llama {
    fn gguf_arch(&self) -> &'static str {
        ARCH
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM"]
    }

    fn config_to_metadata(&self, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
        let b = Base::from_config(config)?;
        let rope = Rope::from_config(config)?;
        if let Some(f) = rope.partial_rotary_factor.filter(|&f| f != 1.0) {
            return Err(ArchError::Unsupported {
                what: "llama partial rotary factor",
                detail: format!("partial_rotary_factor = {f}"),
            });
        }
        if let Some(RopeScaling::LongRope { .. }) = rope.scaling {
            return Err(ArchError::Unsupported {
                what: "llama rope scaling",
                detail: "longrope (llama.cpp's llama converter writes no rope_factors_long/short tensors; \
                         longrope is converted for phi3)"
                    .into(),
            });
        }
        write_general(ARCH, config, md)?;
        write_base_counts(ARCH, &b, md);
        write_rope_eps_head_dim(ARCH, &b, &rope, md);
        md.insert(key(ARCH, "vocab_size"), MetaValue::U32(b.vocab));
        md.insert(key(ARCH, "rope.dimension_count"), MetaValue::U32(b.head_dim()));
        Ok(())
    }

    fn metadata_to_config(&self, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
        let m = MdBase::read(ARCH, md, tensors)?;
        let head_dim = m.base.head_dim();
        if let Some(rd) = m.rope_dim.filter(|&rd| rd != head_dim) {
            return Err(ArchError::Unsupported {
                what: "llama partial rotary embedding",
                detail: format!("{ARCH}.rope.dimension_count = {rd} differs from the head dimension {head_dim}"),
            });
        }
        let mut c = m.config_entries(ARCH, md, torch_dtype)?;
        c.insert("attention_dropout", json!(0.0));
        c.insert("head_dim", json!(head_dim));
        c.insert("hidden_act", json!("silu"));
        if let Some(e) = m.base.experts {
            return Ok(mixtral::config(e, m.key_length, c));
        }
        c.insert("attention_bias", json!(tensors.iter().any(|t| t.name.ends_with(".attn_q.bias"))));
        c.insert("mlp_bias", json!(false));
        Ok(assemble("LlamaForCausalLM", "llama", c))
    }

    fn hf_to_gguf_tensor(&self, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
        let b = Base::from_config(config)?;
        if hf_name == "lm_head.weight" && cfg_bool_opt(config, "tie_word_embeddings")?.unwrap_or(false) {
            return Ok(None);
        }
        let Some(name) = names::hf_to_gguf(ARCH, &mixtral::block(), hf_name, b.n_layer)? else {
            return Ok(None);
        };
        let fix = llama_fix(&name, b.n_head, b.n_head_kv);
        Ok(Some(TensorMap { name, fix }))
    }

    fn hf_expert_slice(&self, hf_name: &str, config: &Value) -> Result<Option<ExpertSlice>, ArchError> {
        mixtral::hf_expert_slice(hf_name, config)
    }

    fn gguf_expert_names(&self, gguf_name: &str, md: &Metadata) -> Result<Option<Vec<String>>, ArchError> {
        mixtral::gguf_expert_names(gguf_name, md)
    }

    fn hf_fused_experts(&self, hf_name: &str, config: &Value) -> Result<Option<FusedSlice>, ArchError> {
        mixtral::hf_fused_experts(hf_name, config)
    }

    fn extra_tensors(&self, config: &Value) -> Result<Vec<(String, Vec<f32>)>, ArchError> {
        let rope = Rope::from_config(config)?;
        let Some(RopeScaling::Llama3(p)) = &rope.scaling else {
            return Ok(Vec::new());
        };
        let dim = Base::from_config(config)?.head_dim();
        Ok(vec![(ROPE_FREQS.to_string(), llama3_factors(rope.theta.unwrap_or(10000.0), dim, p))])
    }

    fn config_from_tensors(
        &self,
        md: &Metadata,
        tensors: &dyn TensorSource,
        config: &mut Value,
    ) -> Result<(), ArchError> {
        let Some(ff) = read_factors(tensors, ROPE_FREQS)? else {
            return Ok(());
        };
        if let Some(s) = config.get("rope_scaling") {
            return Err(ArchError::Unsupported {
                what: "rope scaling",
                detail: format!("{ROPE_FREQS} together with {ARCH}.rope.scaling.* ({s})"),
            });
        }
        let m = MdBase::read(ARCH, md, tensors.tensor_infos())?;
        let dim = m.rope_dim.unwrap_or(m.base.head_dim());
        let p = llama3_params_from_factors(m.rope_theta.unwrap_or(10000.0) as f64, dim, &ff)?;
        config["rope_scaling"] = p.to_config();
        Ok(())
    }

    fn gguf_to_hf_tensor(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
        let n_layer = md_u32(md, &key(ARCH, "block_count"))?;
        let n_head = md_u32(md, &key(ARCH, "attention.head_count"))?;
        let n_head_kv = md_u32_opt(md, &key(ARCH, "attention.head_count_kv"))?.unwrap_or(n_head);
        let name = names::gguf_to_hf(ARCH, &mixtral::block(), gguf_name, n_layer)?;
        Ok(TensorMap { name, fix: llama_fix(gguf_name, n_head, n_head_kv).inverse() })
    }
}
