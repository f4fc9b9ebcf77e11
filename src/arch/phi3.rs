//! Phi-3: GGUF arch `phi3` (convert_hf_to_gguf.py `Phi3MiniModel`).
//!
//! llama.cpp keeps Phi-3's fused projections fused in the GGUF: HF `self_attn.qkv_proj`
//! (rows: Q for all heads, then K, then V) is `blk.N.attn_qkv.weight`, and HF
//! `mlp.gate_up_proj` (rows: gate, then up) is `blk.N.ffn_up.weight` — there is no
//! `ffn_gate`; the split happens at inference time (llama.cpp's phi3 graph views the halves)
//! and must happen in a LoRA pass that targets one half. RoPE is NeoX style: no permutation.
//! The long-context (longrope / su) variants: `long_factor` / `short_factor` become the
//! `rope_factors_long/short.weight` tensors and the attention factor
//! `phi3.rope.scaling.attn_factor` (`Phi3MiniModel.generate_extra_tensors`; its
//! set_gguf_parameters does not call the base, so no `rope.scaling.type` is written). Phi-4-mini's
//! `partial_rotary_factor` sets rope.dimension_count = int(factor · n_embd) / n_head.

use llmtool_formats::{MetaValue, Metadata, TensorInfo, TensorSource};
use serde_json::{json, Value};

use super::common::{assemble, key, write_general, MdBase};
use super::hparams::{cfg_bool_opt, cfg_get, cfg_u32_opt, f32_json, md_f32_opt, md_u32, md_u32_opt, Base};
use super::names;
use super::rope::{Rope, RopeScaling};
use super::rope_factors::{longrope_attn_factor, read_factors, ROPE_FACTORS_LONG, ROPE_FACTORS_SHORT};
use super::{Arch, ArchError, TensorFix, TensorMap};

const ARCH: &str = "phi3";

const BLOCK: &[(&str, &str)] = &[
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.qkv_proj.weight", "attn_qkv.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
];

pub struct Phi3;

/// The original training context: top-level `original_max_position_embeddings`, else the one
/// in transformers 5's `rope_parameters`.
fn orig_ctx(config: &Value) -> Result<u32, ArchError> {
    match cfg_u32_opt(config, "original_max_position_embeddings")? {
        Some(v) => Ok(v),
        None => cfg_get(config, "rope_parameters")
            .and_then(|p| p.get("original_max_position_embeddings"))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ArchError::MissingKey {
                what: "config.json",
                key: "original_max_position_embeddings".into(),
            }),
    }
}

/// Rotated dimensions per head (Phi3MiniModel: int(rot_pct · n_embd) // n_head).
fn rope_dims(b: &Base, rope: &Rope) -> Result<u32, ArchError> {
    let pct = rope.partial_rotary_factor.unwrap_or(1.0);
    if !(pct > 0.0 && pct <= 1.0) {
        return Err(ArchError::InvalidValue {
            key: "partial_rotary_factor".into(),
            reason: format!("must be in (0, 1], found {pct}"),
        });
    }
    Ok(((pct * b.n_embd as f64) as u64 / b.n_head as u64) as u32)
}

/// The longrope factor lists and attention factor, checked against the rotary size
/// (`None`: no scaling, or an empty `long_factor`, which llama.cpp also ignores).
#[allow(clippy::type_complexity)]
fn longrope(config: &Value) -> Result<Option<(Vec<f32>, Vec<f32>, f64)>, ArchError> {
    let b = Base::from_config(config)?;
    let rope = Rope::from_config(config)?;
    let (long, short, attn) = match &rope.scaling {
        None => return Ok(None),
        Some(RopeScaling::LongRope { long_factor, short_factor, attention_factor }) => {
            (long_factor, short_factor, attention_factor)
        }
        Some(s) => {
            return Err(ArchError::Unsupported {
                what: "phi3 rope scaling",
                detail: format!("{s:?} (llama.cpp's phi3 converter takes longrope only)"),
            })
        }
    };
    if long.is_empty() {
        return Ok(None);
    }
    let half = rope_dims(&b, &rope)? / 2;
    if long.len() != half as usize || short.len() != half as usize {
        let ctx = if cfg_get(config, "rope_parameters").is_some() { "rope_parameters" } else { "rope_scaling" };
        return Err(ArchError::InvalidValue {
            key: format!("{ctx}.long_factor / short_factor"),
            reason: format!(
                "{} long and {} short factors; the rotary dimension {} needs {half} each",
                long.len(),
                short.len(),
                2 * half
            ),
        });
    }
    // The converter's attention factor; a config that states one is followed (transformers does).
    let attn = attn.unwrap_or_else(|| longrope_attn_factor(b.n_ctx, orig_ctx(config).unwrap_or(b.n_ctx)));
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    Ok(Some((f32s(long), f32s(short), attn)))
}

impl Arch for Phi3 {
    fn gguf_arch(&self) -> &'static str {
        ARCH
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Phi3ForCausalLM"]
    }

    fn config_to_metadata(&self, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
        let b = Base::from_config(config)?;
        let rope = Rope::from_config(config)?;
        let longrope = longrope(config)?;
        let orig_ctx = orig_ctx(config)?;
        let rope_dims = rope_dims(&b, &rope)?;
        // Phi-4 has no sliding window: llama.cpp writes 0 for a null one.
        let sliding_window = cfg_u32_opt(config, "sliding_window")?.unwrap_or(0);
        write_general(ARCH, config, md)?;
        if let Some((_, _, attn)) = longrope {
            // written while the factor tensors are generated, before set_gguf_parameters
            md.insert(key(ARCH, "rope.scaling.attn_factor"), MetaValue::F32(attn as f32));
        }
        md.insert(key(ARCH, "context_length"), MetaValue::U32(b.n_ctx));
        md.insert(key(ARCH, "rope.scaling.original_context_length"), MetaValue::U32(orig_ctx));
        md.insert(key(ARCH, "embedding_length"), MetaValue::U32(b.n_embd));
        md.insert(key(ARCH, "feed_forward_length"), MetaValue::U32(b.n_ff));
        md.insert(key(ARCH, "block_count"), MetaValue::U32(b.n_layer));
        md.insert(key(ARCH, "attention.head_count"), MetaValue::U32(b.n_head));
        md.insert(key(ARCH, "attention.head_count_kv"), MetaValue::U32(b.n_head_kv));
        md.insert(key(ARCH, "attention.layer_norm_rms_epsilon"), MetaValue::F32(b.rms_eps as f32));
        md.insert(key(ARCH, "rope.dimension_count"), MetaValue::U32(rope_dims));
        md.insert(key(ARCH, "rope.freq_base"), MetaValue::F32(rope.theta.unwrap_or(10000.0) as f32));
        md.insert(key(ARCH, "attention.sliding_window"), MetaValue::U32(sliding_window));
        Ok(())
    }

    fn metadata_to_config(&self, md: &Metadata, tensors: &[TensorInfo], torch_dtype: &str) -> Result<Value, ArchError> {
        let m = MdBase::read(ARCH, md, tensors)?;
        let b = &m.base;
        let mut c = m.config_entries(ARCH, md, torch_dtype)?;
        let orig = md_u32_opt(md, &key(ARCH, "rope.scaling.original_context_length"))?.unwrap_or(b.n_ctx);
        c.insert("original_max_position_embeddings", json!(orig));
        let sw = md_u32_opt(md, &key(ARCH, "attention.sliding_window"))?.filter(|&w| w != 0);
        c.insert("sliding_window", json!(sw));
        if let Some(rd) = m.rope_dim {
            if rd as u64 * b.n_head as u64 != b.n_embd as u64 {
                c.insert("partial_rotary_factor", json!((rd as f64 * b.n_head as f64) / b.n_embd as f64));
            }
        }
        c.insert("attention_dropout", json!(0.0));
        c.insert("embd_pdrop", json!(0.0));
        c.insert("resid_pdrop", json!(0.0));
        c.insert("hidden_act", json!("silu"));
        Ok(assemble("Phi3ForCausalLM", "phi3", c))
    }

    fn hf_to_gguf_tensor(&self, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
        let b = Base::from_config(config)?;
        if hf_name == "lm_head.weight" && cfg_bool_opt(config, "tie_word_embeddings")?.unwrap_or(false) {
            return Ok(None);
        }
        Ok(names::hf_to_gguf(ARCH, BLOCK, hf_name, b.n_layer)?.map(|name| TensorMap { name, fix: TensorFix::Copy }))
    }

    fn extra_tensors(&self, config: &Value) -> Result<Vec<(String, Vec<f32>)>, ArchError> {
        Ok(match longrope(config)? {
            Some((long, short, _)) => vec![(ROPE_FACTORS_LONG.into(), long), (ROPE_FACTORS_SHORT.into(), short)],
            None => Vec::new(),
        })
    }

    fn config_from_tensors(
        &self,
        md: &Metadata,
        tensors: &dyn TensorSource,
        config: &mut Value,
    ) -> Result<(), ArchError> {
        let long = read_factors(tensors, ROPE_FACTORS_LONG)?;
        let short = read_factors(tensors, ROPE_FACTORS_SHORT)?;
        let (long, short) = match (long, short) {
            (None, None) => return Ok(()),
            (Some(l), Some(s)) => (l, s),
            (l, _) => {
                let missing = if l.is_none() { ROPE_FACTORS_LONG } else { ROPE_FACTORS_SHORT };
                return Err(ArchError::Unsupported {
                    what: "phi3 rope scaling",
                    detail: format!("longrope needs both factor tensors; `{missing}` is missing"),
                });
            }
        };
        let list = |v: &[f32]| Value::Array(v.iter().map(|&x| f32_json(x)).collect());
        // The form of Phi-3.5's published config.json (transformers 4.x and 5.x read it).
        let mut s = serde_json::Map::new();
        s.insert("long_factor".into(), list(&long));
        s.insert("short_factor".into(), list(&short));
        s.insert("type".into(), json!("longrope"));
        let n_ctx = md_u32(md, &key(ARCH, "context_length"))?;
        let orig = md_u32_opt(md, &key(ARCH, "rope.scaling.original_context_length"))?.unwrap_or(n_ctx);
        if let Some(a) = md_f32_opt(md, &key(ARCH, "rope.scaling.attn_factor"))? {
            if a != longrope_attn_factor(n_ctx, orig) as f32 {
                s.insert("attention_factor".into(), f32_json(a));
            }
        }
        config["rope_scaling"] = Value::Object(s);
        Ok(())
    }

    fn gguf_to_hf_tensor(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
        let n_layer = md_u32(md, &key(ARCH, "block_count"))?;
        Ok(TensorMap { name: names::gguf_to_hf(ARCH, BLOCK, gguf_name, n_layer)?, fix: TensorFix::Copy })
    }
}
