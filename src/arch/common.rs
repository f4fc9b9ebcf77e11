//! Pieces every family uses: the `general.*` keys, the shared hyper-parameters read back
//! from GGUF metadata, and the shared parts of a rebuilt config.json.

use std::collections::BTreeMap;

use llmtool_formats::{MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

use super::hparams::{cfg_str_opt, f32_json, md_f32, md_f32_opt, md_u32, md_u32_opt, Base};
use super::rope::Rope;
use super::ArchError;

/// `general.architecture`, `general.type` and (when the config carries `_name_or_path`)
/// `general.name` = its last path component — llama.cpp derives the name from the model
/// directory; config.json is all we see here.
pub(crate) fn write_general(arch: &str, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
    md.insert("general.architecture", MetaValue::String(arch.into()));
    md.insert("general.type", MetaValue::String("model".into()));
    if let Some(path) = cfg_str_opt(config, "_name_or_path")? {
        let base = path.trim_end_matches(['/', '\\']).rsplit(['/', '\\']).next().unwrap_or("");
        if !base.is_empty() {
            md.insert("general.name", MetaValue::String(base.into()));
        }
    }
    Ok(())
}

pub(crate) fn key(arch: &str, suffix: &str) -> String {
    format!("{arch}.{suffix}")
}

/// The base hyper-parameters as llama.cpp's `TextModel.set_gguf_parameters` writes them:
/// block_count, context_length, embedding_length, feed_forward_length, head_count,
/// head_count_kv. (Rope scaling, freq_base and the epsilon follow, written by the caller.)
pub(crate) fn write_base_counts(arch: &str, b: &Base, md: &mut Metadata) {
    md.insert(key(arch, "block_count"), MetaValue::U32(b.n_layer));
    md.insert(key(arch, "context_length"), MetaValue::U32(b.n_ctx));
    md.insert(key(arch, "embedding_length"), MetaValue::U32(b.n_embd));
    md.insert(key(arch, "feed_forward_length"), MetaValue::U32(b.n_ff));
    md.insert(key(arch, "attention.head_count"), MetaValue::U32(b.n_head));
    md.insert(key(arch, "attention.head_count_kv"), MetaValue::U32(b.n_head_kv));
}

pub(crate) fn write_rms_eps(arch: &str, b: &Base, md: &mut Metadata) {
    md.insert(key(arch, "attention.layer_norm_rms_epsilon"), MetaValue::F32(b.rms_eps as f32));
}

/// What follows the base counts in llama.cpp's `TextModel.set_gguf_parameters` for the
/// Llama-like families: rope scaling, rope.freq_base, the RMS epsilon, the expert counts of
/// a Mixture-of-Experts config, and the head size when the config states one.
pub(crate) fn write_rope_eps_head_dim(arch: &str, b: &Base, rope: &Rope, md: &mut Metadata) {
    rope.write_scaling(arch, md);
    if let Some(t) = rope.theta {
        md.insert(key(arch, "rope.freq_base"), MetaValue::F32(t as f32));
    }
    write_rms_eps(arch, b, md);
    if let Some(e) = &b.experts {
        e.write(arch, md);
    }
    if let Some(hd) = b.head_dim_cfg {
        md.insert(key(arch, "attention.key_length"), MetaValue::U32(hd));
        md.insert(key(arch, "attention.value_length"), MetaValue::U32(hd));
    }
}

/// Shared hyper-parameters read back from GGUF metadata (and the tensor list for the vocab).
#[derive(Debug, Clone)]
pub(crate) struct MdBase {
    pub base: Base,
    pub rope_theta: Option<f32>,
    pub rms_eps: f32,
    pub key_length: Option<u32>,
    pub rope_dim: Option<u32>,
    pub tied: bool,
}

impl MdBase {
    pub fn read(arch: &str, md: &Metadata, tensors: &[TensorInfo]) -> Result<Self, ArchError> {
        Self::read_eps(arch, md, tensors, "attention.layer_norm_rms_epsilon")
    }

    /// Like [`Self::read`], with the norm epsilon under `{arch}.{eps_suffix}` (Cohere's
    /// LayerNorm: `attention.layer_norm_epsilon`).
    pub fn read_eps(arch: &str, md: &Metadata, tensors: &[TensorInfo], eps_suffix: &str) -> Result<Self, ArchError> {
        let n_head = md_u32(md, &key(arch, "attention.head_count"))?;
        let key_length = md_u32_opt(md, &key(arch, "attention.key_length"))?;
        if let Some(v) = md_u32_opt(md, &key(arch, "attention.value_length"))? {
            if Some(v) != key_length {
                return Err(ArchError::Unsupported {
                    what: "attention geometry",
                    detail: format!("{arch}.attention.value_length = {v} differs from key_length = {key_length:?}"),
                });
            }
        }
        let rms_eps = md_f32(md, &key(arch, eps_suffix))?;
        let base = Base {
            n_ctx: md_u32(md, &key(arch, "context_length"))?,
            n_embd: md_u32(md, &key(arch, "embedding_length"))?,
            n_ff: md_u32(md, &key(arch, "feed_forward_length"))?,
            n_layer: md_u32(md, &key(arch, "block_count"))?,
            n_head,
            n_head_kv: md_u32_opt(md, &key(arch, "attention.head_count_kv"))?.unwrap_or(n_head),
            rms_eps: rms_eps as f64,
            head_dim_cfg: key_length,
            vocab: vocab_size(arch, md, tensors)?,
            experts: super::experts::ExpertCounts::from_metadata(arch, md)?,
        };
        base.validate()?;
        Ok(MdBase {
            base,
            rope_theta: md_f32_opt(md, &key(arch, "rope.freq_base"))?,
            rms_eps,
            key_length,
            rope_dim: md_u32_opt(md, &key(arch, "rope.dimension_count"))?,
            tied: !tensors.iter().any(|t| t.name == "output.weight"),
        })
    }

    /// The config.json keys every family shares (sorted later with the rest).
    pub fn config_entries(
        &self,
        arch: &str,
        md: &Metadata,
        torch_dtype: &str,
    ) -> Result<BTreeMap<&'static str, Value>, ArchError> {
        let b = &self.base;
        let mut c = BTreeMap::new();
        c.insert("hidden_size", json!(b.n_embd));
        c.insert("intermediate_size", json!(b.n_ff));
        c.insert("num_hidden_layers", json!(b.n_layer));
        c.insert("num_attention_heads", json!(b.n_head));
        c.insert("num_key_value_heads", json!(b.n_head_kv));
        c.insert("max_position_embeddings", json!(b.n_ctx));
        c.insert("rms_norm_eps", f32_json(self.rms_eps));
        // llama.cpp's default base frequency when the key is absent (llama-model.cpp).
        c.insert("rope_theta", f32_json(self.rope_theta.unwrap_or(10000.0)));
        if let Some(s) = super::rope::Rope::scaling_to_config(arch, md)? {
            c.insert("rope_scaling", s);
        }
        c.insert("vocab_size", json!(b.vocab));
        c.insert("tie_word_embeddings", json!(self.tied));
        c.insert("torch_dtype", json!(torch_dtype));
        if let Some(e) = &b.experts {
            c.insert("num_experts_per_tok", json!(e.n_used));
        }
        for (k, hf) in [
            ("tokenizer.ggml.bos_token_id", "bos_token_id"),
            ("tokenizer.ggml.eos_token_id", "eos_token_id"),
            ("tokenizer.ggml.padding_token_id", "pad_token_id"),
        ] {
            if let Some(id) = md_u32_opt(md, k)? {
                c.insert(hf, json!(id));
            }
        }
        Ok(c)
    }
}

/// `{arch}.vocab_size`, else the length of `tokenizer.ggml.tokens`, else `token_embd.weight`'s
/// row count (ne[1]).
fn vocab_size(arch: &str, md: &Metadata, tensors: &[TensorInfo]) -> Result<u32, ArchError> {
    if let Some(v) = md_u32_opt(md, &key(arch, "vocab_size"))? {
        return Ok(v);
    }
    if let Some(a) = md.get_array("tokenizer.ggml.tokens") {
        return u32::try_from(a.len()).map_err(|_| ArchError::InvalidValue {
            key: "tokenizer.ggml.tokens".into(),
            reason: format!("{} tokens do not fit in u32", a.len()),
        });
    }
    if let Some(t) = tensors.iter().find(|t| t.name == "token_embd.weight") {
        if let Some(&n) = t.ne.get(1) {
            return u32::try_from(n).map_err(|_| ArchError::InvalidValue {
                key: "token_embd.weight".into(),
                reason: format!("{n} rows do not fit in u32"),
            });
        }
    }
    Err(ArchError::MissingKey {
        what: "GGUF metadata",
        key: format!("{arch}.vocab_size (or tokenizer.ggml.tokens, or a token_embd.weight tensor)"),
    })
}

/// Assembles config.json: `architectures` and `model_type` first, the rest sorted by key as
/// transformers' `save_pretrained` writes them.
pub(crate) fn assemble(hf_arch: &str, model_type: &str, entries: BTreeMap<&'static str, Value>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("architectures".into(), json!([hf_arch]));
    m.insert("model_type".into(), json!(model_type));
    for (k, v) in entries {
        m.insert(k.into(), v);
    }
    Value::Object(m)
}
