//! Gemma and Gemma 2: GGUF archs `gemma`, `gemma2` (convert_hf_to_gguf.py `GemmaModel`,
//! `Gemma2Model`).
//!
//! Both always tie the output to the embeddings: llama.cpp drops `lm_head.weight`. Every
//! RMSNorm weight (`*norm.weight`) is stored as w + 1 (HF computes x * (1 + w)). Gemma 2
//! adds a norm after attention (`post_attention_norm`) and after the FFN (`post_ffw_norm`);
//! its HF `pre_feedforward_layernorm` is llama.cpp's `ffn_norm`, and HF's
//! `post_attention_layernorm` is *not* `ffn_norm` there. RoPE is NeoX style: no permutation.
//!
//! llama.cpp's converter writes no `rope.freq_base` for Gemma (its loader defaults to
//! 10000); we write it only when the config's rope_theta differs from 10000, so that such a
//! model is not silently changed.

use llmtool_formats::{MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

use super::common::{assemble, key, write_general, MdBase};
use super::hparams::{cfg_f64, cfg_u32, md_f32, md_u32, Base};
use super::names::{self, gguf_suffix, LLAMA_BLOCK};
use super::rope::Rope;
use super::{Arch, ArchError, TensorFix, TensorMap};

pub(super) const GEMMA2_BLOCK: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("post_attention_layernorm.weight", "post_attention_norm.weight"),
    ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
    ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
];

pub struct Gemma;
pub struct Gemma2;

fn arch(v2: bool) -> &'static str {
    if v2 {
        "gemma2"
    } else {
        "gemma"
    }
}

fn block(v2: bool) -> &'static [(&'static str, &'static str)] {
    if v2 {
        GEMMA2_BLOCK
    } else {
        LLAMA_BLOCK
    }
}

/// Every Gemma RMSNorm weight is stored as w + 1 (gemma3 too).
pub(super) fn norm_fix(gguf: &str) -> TensorFix {
    if gguf_suffix(gguf).ends_with("norm.weight") {
        TensorFix::AddOne
    } else {
        TensorFix::Copy
    }
}

fn config_to_metadata(v2: bool, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
    let a = arch(v2);
    let b = Base::from_config(config)?;
    let rope = Rope::from_config(config)?;
    if let Some(s) = &rope.scaling {
        return Err(ArchError::Unsupported {
            what: "gemma rope scaling",
            detail: format!("{s:?} (llama.cpp's gemma converters write none)"),
        });
    }
    // GemmaModel reads hparams["head_dim"] unconditionally (HF's default is 256, not
    // hidden_size / heads): require it rather than guess.
    let head_dim = cfg_u32(config, "head_dim")?;
    let softcaps = if v2 {
        Some((
            cfg_f64(config, "attn_logit_softcapping")?,
            cfg_f64(config, "final_logit_softcapping")?,
            cfg_u32(config, "sliding_window")?,
        ))
    } else {
        None
    };
    write_general(a, config, md)?;
    md.insert(key(a, "context_length"), MetaValue::U32(b.n_ctx));
    md.insert(key(a, "embedding_length"), MetaValue::U32(b.n_embd));
    md.insert(key(a, "block_count"), MetaValue::U32(b.n_layer));
    md.insert(key(a, "feed_forward_length"), MetaValue::U32(b.n_ff));
    md.insert(key(a, "attention.head_count"), MetaValue::U32(b.n_head));
    md.insert(key(a, "attention.head_count_kv"), MetaValue::U32(b.n_head_kv));
    md.insert(key(a, "attention.layer_norm_rms_epsilon"), MetaValue::F32(b.rms_eps as f32));
    md.insert(key(a, "attention.key_length"), MetaValue::U32(head_dim));
    md.insert(key(a, "attention.value_length"), MetaValue::U32(head_dim));
    if let Some(t) = rope.theta.filter(|&t| t != 10000.0) {
        md.insert(key(a, "rope.freq_base"), MetaValue::F32(t as f32));
    }
    if let Some((attn, fin, sw)) = softcaps {
        md.insert(key(a, "attn_logit_softcapping"), MetaValue::F32(attn as f32));
        md.insert(key(a, "final_logit_softcapping"), MetaValue::F32(fin as f32));
        md.insert(key(a, "attention.sliding_window"), MetaValue::U32(sw));
    }
    Ok(())
}

fn metadata_to_config(v2: bool, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
    let a = arch(v2);
    let m = MdBase::read(a, md, tensors)?;
    let head_dim = m.base.head_dim();
    let mut c = m.config_entries(a, md, torch_dtype)?;
    c.insert("head_dim", json!(head_dim));
    c.insert("attention_bias", json!(false));
    c.insert("attention_dropout", json!(0.0));
    if v2 {
        c.insert("hidden_activation", json!("gelu_pytorch_tanh"));
        c.insert("attn_logit_softcapping", super::hparams::f32_json(md_f32(md, &key(a, "attn_logit_softcapping"))?));
        c.insert("final_logit_softcapping", super::hparams::f32_json(md_f32(md, &key(a, "final_logit_softcapping"))?));
        c.insert("sliding_window", json!(md_u32(md, &key(a, "attention.sliding_window"))?));
        // llama.cpp's gemma2 graph scales queries by 1/sqrt(head_dim) (the 2B/9B setting).
        c.insert("query_pre_attn_scalar", json!(head_dim));
        Ok(assemble("Gemma2ForCausalLM", "gemma2", c))
    } else {
        c.insert("hidden_act", json!("gelu_pytorch_tanh"));
        Ok(assemble("GemmaForCausalLM", "gemma", c))
    }
}

fn hf_to_gguf(v2: bool, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
    let b = Base::from_config(config)?;
    // GemmaModel.filter_tensors: lm_head is never used (the output is tied).
    if hf_name == "lm_head.weight" {
        return Ok(None);
    }
    Ok(names::hf_to_gguf(arch(v2), block(v2), hf_name, b.n_layer)?.map(|name| {
        let fix = norm_fix(&name);
        TensorMap { name, fix }
    }))
}

fn gguf_to_hf(v2: bool, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
    let n_layer = md_u32(md, &key(arch(v2), "block_count"))?;
    let name = names::gguf_to_hf(arch(v2), block(v2), gguf_name, n_layer)?;
    Ok(TensorMap { name, fix: norm_fix(gguf_name).inverse() })
}

two_variant_arch!(Gemma, false, &["GemmaForCausalLM"]);
two_variant_arch!(Gemma2, true, &["Gemma2ForCausalLM"]);
