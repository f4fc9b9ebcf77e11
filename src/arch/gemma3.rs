//! Gemma 3: GGUF arch `gemma3` (convert_hf_to_gguf.py `Gemma3Model`, conversion/gemma.py),
//! from `Gemma3ForCausalLM` or the text tower of `Gemma3ForConditionalGeneration`.
//!
//! Tensors: Gemma 2's block (pre/post attention and FFN norms) plus per-head q/k RMSNorms
//! (`q_norm`, `k_norm` -> `attn_q_norm`, `attn_k_norm`); every `*norm.weight` is stored as
//! w + 1 (Gemma3RMSNorm computes x * (1 + w)). The output is tied unless the config says
//! otherwise. In a ConditionalGeneration checkpoint the text tensors sit under
//! `model.language_model.` (transformers 5) or `language_model.model.` (4.x): llama.cpp drops
//! the `language_model.` part (ModelBase.filter_tensors) and skips the vision tower and the
//! projector (TextModel.filter_tensors); so do we, and [`Arch::skipped_prefix`] names them.
//!
//! Metadata, in llama.cpp's order: the `TextModel` base keys (with `rope.freq_base_swa`, the
//! local base of the sliding layers), then Gemma3Model's (final soft-capping when set,
//! `attention.sliding_window`). The hyper-parameters of a ConditionalGeneration config are
//! under `text_config` (llama.cpp: `{**config, **text_config}`); keys a saved config omits
//! take transformers' `Gemma3TextConfig` defaults, as transformers does.
//!
//! Layer kinds: llama.cpp writes no pattern key for gemma3 and assumes every 6th layer global
//! (src/models/gemma3.cpp `load_swa_pattern(ml, 6)`: layer il slides iff il % 6 < 5), the
//! same as transformers' default `sliding_window_pattern` = 6. When the config's
//! `layer_types` (transformers 5) or `sliding_window_pattern` (4.x) say otherwise, we add
//! `attention.sliding_window_pattern` (a period, or a per-layer bool array), which llama.cpp's
//! loader reads, instead of converting to a model that computes something else.
//!
//! Attention scale: llama.cpp derives it (1/sqrt(head_dim), 27B: 1/sqrt(n_embd/n_head)) and
//! writes no `query_pre_attn_scalar`; a config whose scalar differs from that is refused.

use llmtool_formats::{MetaArray, MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

use super::common::{assemble, key, write_base_counts, write_general, MdBase};
use super::gemma::{norm_fix, GEMMA2_BLOCK};
use super::hparams::{cfg_bool_opt, cfg_f64_opt, cfg_get, cfg_u32_opt, f32_json, md_f32_opt, md_u32, md_u32_opt, Base};
use super::names::{self, with_qk_norms};
use super::rope::Rope;
use super::{Arch, ArchError, TensorMap};

const ARCH: &str = "gemma3";

/// Module names of the ConditionalGeneration wrapper that are not part of the text model.
const TOWERS: &[&str] = &["vision_tower.", "multi_modal_projector."];

/// transformers `Gemma3TextConfig` defaults for the keys the converter reads.
const DEFAULTS: &[(&str, f64)] = &[
    ("vocab_size", 262_208.0),
    ("hidden_size", 2304.0),
    ("intermediate_size", 9216.0),
    ("num_hidden_layers", 26.0),
    ("num_attention_heads", 8.0),
    ("num_key_value_heads", 4.0),
    ("head_dim", 256.0),
    ("max_position_embeddings", 131_072.0),
    ("rms_norm_eps", 1e-6),
    ("query_pre_attn_scalar", 256.0),
    ("sliding_window", 4096.0),
];

/// llama.cpp's default layer pattern for gemma3 (see the module docs).
const LLAMA_CPP_PATTERN: u32 = 6;

pub struct Gemma3;

/// The text model's configuration: `text_config` merged over the top level, with the
/// `Gemma3TextConfig` defaults for absent keys (a JSON `null` stays: it means "none").
fn text_config(config: &Value) -> Result<Value, ArchError> {
    let mut m = config.as_object().cloned().unwrap_or_default();
    if let Some(tc) = cfg_get(config, "text_config") {
        let tc = tc.as_object().ok_or_else(|| ArchError::WrongType {
            what: "config.json",
            key: "text_config".into(),
            expected: "an object",
            found: tc.to_string(),
        })?;
        m.extend(tc.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (k, v) in DEFAULTS {
        if !m.contains_key(*k) {
            let v = if v.fract() == 0.0 { json!(*v as u64) } else { json!(*v) };
            m.insert((*k).into(), v);
        }
    }
    if !m.contains_key("tie_word_embeddings") {
        m.insert("tie_word_embeddings".into(), json!(true));
    }
    Ok(Value::Object(m))
}

/// Whether each layer uses the sliding window: `layer_types`, else `sliding_window_pattern`
/// (default 6; layer i is global iff (i + 1) % pattern == 0, as in transformers).
fn layer_kinds(cfg: &Value, n_layer: u32) -> Result<Vec<bool>, ArchError> {
    if let Some(lt) = cfg_get(cfg, "layer_types") {
        let arr = lt.as_array().ok_or_else(|| ArchError::WrongType {
            what: "config.json",
            key: "layer_types".into(),
            expected: "an array of strings",
            found: lt.to_string(),
        })?;
        if arr.len() != n_layer as usize {
            return Err(ArchError::InvalidValue {
                key: "layer_types".into(),
                reason: format!("{} entries for {n_layer} layers", arr.len()),
            });
        }
        return arr
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(ArchError::Unsupported {
                    what: "gemma3 layer type",
                    detail: format!("layer_types[{i}] = {v} (expected \"sliding_attention\" or \"full_attention\")"),
                }),
            })
            .collect();
    }
    let p = cfg_u32_opt(cfg, "sliding_window_pattern")?.unwrap_or(LLAMA_CPP_PATTERN);
    if p == 0 {
        return Err(ArchError::InvalidValue { key: "sliding_window_pattern".into(), reason: "must be > 0".into() });
    }
    Ok((0..n_layer).map(|i| (i + 1) % p != 0).collect())
}

/// llama.cpp `llama_hparams::set_swa_pattern(p)`: layer il slides iff il % p < p - 1.
fn pattern_kinds(p: u32, n_layer: u32) -> Vec<bool> {
    (0..n_layer).map(|il| il % p < p - 1).collect()
}

/// The local (sliding layers') RoPE base: `rope_parameters.sliding_attention.rope_theta`
/// (transformers 5) or `rope_local_base_freq` (4.x). llama.cpp applies no scaling there.
fn local_theta(cfg: &Value) -> Result<Option<f64>, ArchError> {
    if let Some(sa) = cfg_get(cfg, "rope_parameters").and_then(|p| p.get("sliding_attention")) {
        let ty = sa.get("rope_type").and_then(Value::as_str).unwrap_or("default");
        if ty != "default" {
            return Err(ArchError::Unsupported {
                what: "gemma3 rope scaling",
                detail: format!(
                    "rope_parameters.sliding_attention.rope_type = {ty:?} (llama.cpp scales only the global layers)"
                ),
            });
        }
        if let Some(t) = sa.get("rope_theta").filter(|v| !v.is_null()) {
            return t.as_f64().filter(|x| x.is_finite() && *x > 0.0).map(Some).ok_or_else(|| ArchError::InvalidValue {
                key: "rope_parameters.sliding_attention.rope_theta".into(),
                reason: format!("expected a positive number, found {t}"),
            });
        }
    }
    cfg_f64_opt(cfg, "rope_local_base_freq")
}

/// The attention scale llama.cpp derives (src/models/gemma3.cpp), as a query_pre_attn_scalar.
fn llama_cpp_query_scalar(n_layer: u32, n_embd: u32, n_head: u32, head_dim: u32) -> u32 {
    if n_layer == 62 {
        n_embd / n_head
    } else {
        head_dim
    }
}

impl Arch for Gemma3 {
    fn gguf_arch(&self) -> &'static str {
        ARCH
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"]
    }

    fn config_to_metadata(&self, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
        let cfg = text_config(config)?;
        let b = Base::from_config(&cfg)?;
        let rope = Rope::from_config(&cfg)?;
        let head_dim = b.head_dim();
        if cfg_get(&cfg, "attn_logit_softcapping").is_some() {
            return Err(ArchError::Unsupported {
                what: "gemma3 attention soft-capping",
                detail: "attn_logit_softcapping is set (Gemma 3 has none; llama.cpp's converter asserts it is null)"
                    .into(),
            });
        }
        let qpas = super::hparams::cfg_f64(&cfg, "query_pre_attn_scalar")?;
        let want = llama_cpp_query_scalar(b.n_layer, b.n_embd, b.n_head, head_dim);
        if qpas != want as f64 {
            return Err(ArchError::Unsupported {
                what: "gemma3 attention scale",
                detail: format!(
                    "query_pre_attn_scalar = {qpas}; llama.cpp's gemma3 graph scales queries by 1/sqrt({want}) for \
                     this geometry and stores no scalar"
                ),
            });
        }
        let kinds = layer_kinds(&cfg, b.n_layer)?;
        let window = cfg_u32_opt(&cfg, "sliding_window")?;
        if kinds.iter().any(|&s| s) && window.is_none_or(|w| w == 0) {
            return Err(ArchError::MissingKey { what: "config.json", key: "sliding_window (sliding layers)".into() });
        }
        let local = local_theta(&cfg)?;

        // TextModel.set_gguf_parameters
        write_general(ARCH, config, md)?;
        write_base_counts(ARCH, &b, md);
        rope.write_scaling(ARCH, md);
        if let Some(t) = rope.theta {
            md.insert(key(ARCH, "rope.freq_base"), MetaValue::F32(t as f32));
        }
        if let Some(t) = local {
            md.insert(key(ARCH, "rope.freq_base_swa"), MetaValue::F32(t as f32));
        }
        md.insert(key(ARCH, "attention.layer_norm_rms_epsilon"), MetaValue::F32(b.rms_eps as f32));
        md.insert(key(ARCH, "attention.key_length"), MetaValue::U32(head_dim));
        md.insert(key(ARCH, "attention.value_length"), MetaValue::U32(head_dim));
        // Gemma3Model.set_gguf_parameters (the keys it rewrites keep their place)
        md.insert(key(ARCH, "rope.freq_base"), MetaValue::F32(rope.theta.unwrap_or(1_000_000.0) as f32));
        if let Some(c) = cfg_f64_opt(&cfg, "final_logit_softcapping")?.filter(|&c| c != 0.0) {
            md.insert(key(ARCH, "final_logit_softcapping"), MetaValue::F32(c as f32));
        }
        if kinds.iter().any(|&s| s) {
            md.insert(key(ARCH, "attention.sliding_window"), MetaValue::U32(window.unwrap_or(0)));
            if kinds != pattern_kinds(LLAMA_CPP_PATTERN, b.n_layer) {
                let period = (1..=b.n_layer).find(|&p| pattern_kinds(p, b.n_layer) == kinds);
                let v = match period {
                    Some(p) => MetaValue::U32(p),
                    None => MetaValue::Array(MetaArray::Bool(kinds)),
                };
                md.insert(key(ARCH, "attention.sliding_window_pattern"), v);
            }
        }
        Ok(())
    }

    fn metadata_to_config(&self, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
        let m = MdBase::read(ARCH, md, tensors)?;
        let b = &m.base;
        let head_dim = b.head_dim();
        let mut c = m.config_entries(ARCH, md, torch_dtype)?;
        c.insert("head_dim", json!(head_dim));
        c.insert("attention_bias", json!(false));
        c.insert("attention_dropout", json!(0.0));
        c.insert("hidden_activation", json!("gelu_pytorch_tanh"));
        c.insert("query_pre_attn_scalar", json!(llama_cpp_query_scalar(b.n_layer, b.n_embd, b.n_head, head_dim)));
        c.insert("attn_logit_softcapping", Value::Null);
        c.insert(
            "final_logit_softcapping",
            md_f32_opt(md, &key(ARCH, "final_logit_softcapping"))?.map(f32_json).into(),
        );
        // llama.cpp's default when rope.freq_base_swa is absent (llama-hparams.h).
        let local = md_f32_opt(md, &key(ARCH, "rope.freq_base_swa"))?.unwrap_or(10000.0);
        c.insert("rope_local_base_freq", f32_json(local));
        let window = md_u32_opt(md, &key(ARCH, "attention.sliding_window"))?.filter(|&w| w > 0);
        let pattern_key = key(ARCH, "attention.sliding_window_pattern");
        let (kinds, period) = match (window, md.get(&pattern_key)) {
            (None, _) => (vec![false; b.n_layer as usize], Some(1)),
            (Some(_), None) => (pattern_kinds(LLAMA_CPP_PATTERN, b.n_layer), Some(LLAMA_CPP_PATTERN)),
            (Some(_), Some(MetaValue::Array(MetaArray::Bool(v)))) if v.len() == b.n_layer as usize => (v.clone(), None),
            (Some(_), Some(_)) => {
                let p = md_u32(md, &pattern_key)?;
                if p == 0 {
                    return Err(ArchError::InvalidValue { key: pattern_key, reason: "must be > 0".into() });
                }
                (pattern_kinds(p, b.n_layer), Some(p))
            }
        };
        c.insert("sliding_window", window.map_or(Value::Null, |w| json!(w)));
        // transformers 4.x reads sliding_window_pattern, 5.x layer_types; both are written.
        if let Some(p) = period {
            c.insert("sliding_window_pattern", json!(p));
        }
        let types: Vec<&str> = kinds.iter().map(|&s| if s { "sliding_attention" } else { "full_attention" }).collect();
        c.insert("layer_types", json!(types));
        Ok(assemble("Gemma3ForCausalLM", "gemma3_text", c))
    }

    fn hf_to_gguf_tensor(&self, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
        if self.skipped_prefix(hf_name).is_some() {
            return Ok(None);
        }
        let cfg = text_config(config)?;
        let b = Base::from_config(&cfg)?;
        let name = hf_name.replacen("language_model.", "", 1);
        if name == "lm_head.weight" && cfg_bool_opt(&cfg, "tie_word_embeddings")?.unwrap_or(true) {
            return Ok(None);
        }
        let mapped = names::hf_to_gguf(ARCH, &with_qk_norms(GEMMA2_BLOCK), &name, b.n_layer).map_err(|e| match e {
            // name the tensor as the checkpoint does, not with the wrapper prefix removed
            ArchError::UnknownTensor { arch, .. } => ArchError::UnknownTensor { arch, name: hf_name.into() },
            e => e,
        })?;
        Ok(mapped.map(|name| {
            let fix = norm_fix(&name);
            TensorMap { name, fix }
        }))
    }

    fn gguf_to_hf_tensor(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
        let n_layer = md_u32(md, &key(ARCH, "block_count"))?;
        let name = names::gguf_to_hf(ARCH, &with_qk_norms(GEMMA2_BLOCK), gguf_name, n_layer)?;
        Ok(TensorMap { name, fix: norm_fix(gguf_name).inverse() })
    }

    fn skipped_prefix(&self, hf_name: &str) -> Option<String> {
        TOWERS.iter().find_map(|t| hf_name.find(t).map(|i| hf_name[..i + t.len()].to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformers_and_llama_cpp_patterns_agree() {
        // transformers: global iff (i + 1) % p == 0; llama.cpp: sliding iff i % p < p - 1.
        for p in 1..8 {
            let cfg = json!({ "sliding_window_pattern": p });
            assert_eq!(layer_kinds(&cfg, 13).unwrap(), pattern_kinds(p, 13), "pattern {p}");
        }
    }

    #[test]
    fn towers_are_named_by_their_prefix() {
        let g = Gemma3;
        assert_eq!(
            g.skipped_prefix("model.vision_tower.vision_model.x.weight").as_deref(),
            Some("model.vision_tower.")
        );
        assert_eq!(
            g.skipped_prefix("multi_modal_projector.mm_input_projection_weight").as_deref(),
            Some("multi_modal_projector.")
        );
        assert_eq!(g.skipped_prefix("model.language_model.norm.weight"), None);
    }
}
