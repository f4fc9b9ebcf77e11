//! Cohere Command R / R+ and Command R7B: GGUF archs `command-r` (CohereForCausalLM) and
//! `cohere2` (Cohere2ForCausalLM), as llama.cpp's `conversion/command_r.py` writes them
//! (`CommandR2Model`, `Cohere2Model`).
//!
//! Both: a LayerNorm (mean-centred, weight only) instead of RMSNorm, with its epsilon under
//! `attention.layer_norm_epsilon` (from `layer_norm_eps`); attention and FFN in parallel from
//! one norm (no `ffn_norm`); logits × `logit_scale`; the output always tied to the embeddings
//! (llama.cpp's graphs read `token_embd` as output; `lm_head.weight` is dropped). HF rotates
//! every two adjacent dimensions (`repeat_interleave`), which is llama.cpp's NORM rope: the
//! converter does not permute Q/K, neither do we. `rope.scaling.type = "none"` is written last.
//!
//! command-r: `context_length` is `model_max_length` when the config has it (Command R's
//! config.json understates max_position_embeddings). R+ (`use_qk_norm`) has per-head
//! LayerNorms on q and k: `attn_q_norm` / `attn_k_norm`, HF shape [n_head, head_dim].
//!
//! cohere2: + `attention.sliding_window`, `vocab_size`, `rope.dimension_count`
//! (`rotary_pct` × head size). Sliding layers use RoPE and the window, the others neither.
//! llama.cpp's loader defaults to the pattern "every 4th layer global" (`load_swa_pattern(ml,
//! 4)`) and its converter writes no pattern; a config whose `layer_types` (or legacy
//! `sliding_window_pattern`) differs from that gets the per-layer bool array
//! `attention.sliding_window_pattern` that the loader reads first (as Cohere2MoeModel writes).

use llmtool_formats::{MetaArray, MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

use super::common::{assemble, key, write_base_counts, write_general, MdBase};
use super::hparams::{
    cfg_bool_opt, cfg_f64, cfg_f64_opt, cfg_get, cfg_u32, cfg_u32_opt, f32_json, md_f32, md_u32, md_u32_opt, Base,
};
use super::names;
use super::rope::Rope;
use super::{Arch, ArchError, TensorFix, TensorMap};

const EPS_KEY: &str = "attention.layer_norm_epsilon";

/// Cohere's decoder layer: one input LayerNorm feeding attention and the MLP; R+ adds
/// per-head q/k norms (gguf-py tensor_mapping: `model.layers.{bid}.self_attn.q_norm` "cohere").
const COHERE_BLOCK: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
];

/// Command R7B: no q/k norms (gguf-py MODEL_TENSORS[COHERE2] has none).
const COHERE2_BLOCK: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
];

pub struct CommandR;
pub struct Cohere2;

fn block(v2: bool) -> &'static [(&'static str, &'static str)] {
    if v2 {
        COHERE2_BLOCK
    } else {
        COHERE_BLOCK
    }
}

fn arch(v2: bool) -> &'static str {
    if v2 {
        "cohere2"
    } else {
        "command-r"
    }
}

/// llama.cpp's default cohere2 layout: layer `il` slides unless `il % 4 == 3`
/// (`llama_hparams::set_swa_pattern(4)`).
fn default_pattern(n_layer: u32) -> Vec<bool> {
    (0..n_layer).map(|il| il % 4 < 3).collect()
}

/// Which layers slide, from `layer_types` (transformers >= 4.54) or the legacy
/// `sliding_window_pattern` (layer i slides unless (i + 1) % pattern == 0; default 4).
fn config_pattern(config: &Value, n_layer: u32) -> Result<Vec<bool>, ArchError> {
    if let Some(types) = cfg_get(config, "layer_types") {
        let arr = types.as_array().ok_or_else(|| ArchError::WrongType {
            what: "config.json",
            key: "layer_types".into(),
            expected: "an array of strings",
            found: types.to_string(),
        })?;
        if arr.len() != n_layer as usize {
            return Err(ArchError::InvalidValue {
                key: "layer_types".into(),
                reason: format!("{} entries for num_hidden_layers = {n_layer}", arr.len()),
            });
        }
        return arr
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(ArchError::InvalidValue {
                    key: "layer_types".into(),
                    reason: format!("{t} (expected \"sliding_attention\" or \"full_attention\")"),
                }),
            })
            .collect();
    }
    let n = cfg_u32_opt(config, "sliding_window_pattern")?.unwrap_or(4);
    if n == 0 {
        return Err(ArchError::InvalidValue { key: "sliding_window_pattern".into(), reason: "must be > 0".into() });
    }
    Ok((0..n_layer).map(|i| (i + 1) % n != 0).collect())
}

/// Which layers slide, from `cohere2.attention.sliding_window_pattern` (a bool per layer, or
/// a period as llama.cpp's `set_swa_pattern`), else llama.cpp's default of 4.
pub(crate) fn metadata_pattern(arch: &str, md: &Metadata, n_layer: u32) -> Result<Vec<bool>, ArchError> {
    let k = key(arch, "attention.sliding_window_pattern");
    match md.get(&k) {
        None => Ok(default_pattern(n_layer)),
        Some(MetaValue::Array(MetaArray::Bool(v))) if v.len() == n_layer as usize => Ok(v.clone()),
        Some(v) => match v.as_u64() {
            Some(0) => Ok(vec![true; n_layer as usize]),
            Some(n) => Ok((0..n_layer as u64).map(|il| il % n < n - 1).collect()),
            None => Err(ArchError::InvalidValue {
                key: k,
                reason: format!("{v:?} (expected {n_layer} bools or an unsigned period)"),
            }),
        },
    }
}

fn config_to_metadata(v2: bool, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
    let a = arch(v2);
    let mut b = Base::from_config_eps(config, "layer_norm_eps")?;
    if !v2 {
        // CommandR2Model.__init__: find_hparam(["model_max_length", "max_position_embeddings"]).
        if let Some(n) = cfg_u32_opt(config, "model_max_length")? {
            b.n_ctx = n;
        }
    }
    let rope = Rope::from_config(config)?;
    if let Some(s) = &rope.scaling {
        // The converter writes rope.scaling.type "none" after TextModel wrote the scaling:
        // gguf-py refuses the duplicate key, and llama.cpp would run the model unscaled.
        return Err(ArchError::Unsupported {
            what: "cohere rope scaling",
            detail: format!("{s:?} (llama.cpp's {a} converter writes rope.scaling.type = none)"),
        });
    }
    if let Some(f) = rope.partial_rotary_factor.filter(|&f| f != 1.0) {
        return Err(ArchError::Unsupported { what: "cohere partial rotary factor", detail: format!("{f}") });
    }
    if cfg_bool_opt(config, "attention_bias")?.unwrap_or(false) {
        return Err(ArchError::Unsupported {
            what: "cohere attention biases",
            detail: "attention_bias = true (llama.cpp's command-r/cohere2 graphs have no q/k/v/o biases)".into(),
        });
    }
    if !cfg_bool_opt(config, "tie_word_embeddings")?.unwrap_or(true) {
        return Err(ArchError::Unsupported {
            what: "cohere untied output",
            detail: "tie_word_embeddings = false (llama.cpp's command-r/cohere2 use token_embd as the output)".into(),
        });
    }
    let logit_scale = cfg_f64(config, "logit_scale")?;
    let head = b.n_embd / b.n_head;
    let v2_keys = if v2 {
        let rotary_pct = cfg_f64_opt(config, "rotary_pct")?.unwrap_or(1.0);
        if rotary_pct != 1.0 {
            // transformers' Cohere2 rotates the whole head whatever rotary_pct says.
            return Err(ArchError::Unsupported {
                what: "cohere2 rotary_pct",
                detail: format!("rotary_pct = {rotary_pct} (transformers rotates the whole head; llama.cpp would not)"),
            });
        }
        if b.head_dim() != head {
            return Err(ArchError::Unsupported {
                what: "cohere2 head size",
                detail: format!("head_dim = {} differs from hidden_size / num_attention_heads = {head}", b.head_dim()),
            });
        }
        let pattern = config_pattern(config, b.n_layer)?;
        Some((cfg_u32(config, "sliding_window")?, pattern))
    } else {
        None
    };
    write_general(a, config, md)?;
    write_base_counts(a, &b, md);
    if let Some(t) = rope.theta {
        md.insert(key(a, "rope.freq_base"), MetaValue::F32(t as f32));
    }
    md.insert(key(a, EPS_KEY), MetaValue::F32(b.rms_eps as f32));
    if let Some(hd) = b.head_dim_cfg {
        md.insert(key(a, "attention.key_length"), MetaValue::U32(hd));
        md.insert(key(a, "attention.value_length"), MetaValue::U32(hd));
    }
    md.insert(key(a, "logit_scale"), MetaValue::F32(logit_scale as f32));
    if let Some((window, pattern)) = v2_keys {
        md.insert(key(a, "attention.sliding_window"), MetaValue::U32(window));
        if pattern != default_pattern(b.n_layer) {
            md.insert(key(a, "attention.sliding_window_pattern"), MetaValue::Array(MetaArray::Bool(pattern)));
        }
        md.insert(key(a, "vocab_size"), MetaValue::U32(b.vocab));
        md.insert(key(a, "rope.dimension_count"), MetaValue::U32(head));
    }
    md.insert(key(a, "rope.scaling.type"), MetaValue::String("none".into()));
    Ok(())
}

fn metadata_to_config(v2: bool, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
    let a = arch(v2);
    let m = MdBase::read_eps(a, md, tensors, EPS_KEY)?;
    if !m.tied {
        return Err(ArchError::Unsupported {
            what: "cohere untied output",
            detail: "an output.weight tensor (transformers' Cohere models always tie the output)".into(),
        });
    }
    let head_dim = m.base.head_dim();
    if let Some(rd) = m.rope_dim.filter(|&rd| rd != head_dim) {
        return Err(ArchError::Unsupported {
            what: "cohere partial rotary embedding",
            detail: format!("{a}.rope.dimension_count = {rd} differs from the head dimension {head_dim}"),
        });
    }
    let mut c = m.config_entries(a, md, torch_dtype)?;
    c.remove("rms_norm_eps");
    c.insert("layer_norm_eps", f32_json(m.rms_eps));
    c.insert("logit_scale", f32_json(md_f32(md, &key(a, "logit_scale"))?));
    c.insert("attention_bias", json!(false));
    c.insert("attention_dropout", json!(0.0));
    c.insert("hidden_act", json!("silu"));
    if v2 {
        c.insert("head_dim", json!(head_dim));
        c.insert("sliding_window", json!(md_u32(md, &key(a, "attention.sliding_window"))?));
        let pattern = metadata_pattern(a, md, m.base.n_layer)?;
        let types: Vec<&str> =
            pattern.iter().map(|&s| if s { "sliding_attention" } else { "full_attention" }).collect();
        c.insert("layer_types", json!(types));
        // Read by llama.cpp's Cohere2Model (transformers ignores it).
        c.insert("rotary_pct", json!(1.0));
        Ok(assemble("Cohere2ForCausalLM", "cohere2", c))
    } else {
        if let Some(hd) = md_u32_opt(md, &key(a, "attention.key_length"))? {
            c.insert("head_dim", json!(hd));
        }
        let qk_norm = tensors.iter().any(|t| t.name.ends_with(".attn_q_norm.weight"));
        c.insert("use_qk_norm", json!(qk_norm));
        Ok(assemble("CohereForCausalLM", "cohere", c))
    }
}

fn hf_to_gguf(v2: bool, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
    let b = Base::from_config_eps(config, "layer_norm_eps")?;
    // Tied (checked in config_to_metadata): a saved lm_head is the embedding again.
    if hf_name == "lm_head.weight" {
        return Ok(None);
    }
    Ok(names::hf_to_gguf(arch(v2), block(v2), hf_name, b.n_layer)?.map(|name| TensorMap { name, fix: TensorFix::Copy }))
}

fn gguf_to_hf(v2: bool, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
    let n_layer = md_u32(md, &key(arch(v2), "block_count"))?;
    if gguf_name == "output.weight" {
        return Err(ArchError::UnknownTensor { arch: arch(v2), name: gguf_name.into() });
    }
    let name = names::gguf_to_hf(arch(v2), block(v2), gguf_name, n_layer)?;
    Ok(TensorMap { name, fix: TensorFix::Copy })
}

two_variant_arch!(CommandR, false, &["CohereForCausalLM"]);
two_variant_arch!(Cohere2, true, &["Cohere2ForCausalLM"]);
