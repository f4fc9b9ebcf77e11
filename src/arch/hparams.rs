//! Typed readers for HF `config.json` values and GGUF metadata values, and the
//! hyper-parameters every family shares, validated once.

use llmtool_formats::{MetaValue, Metadata};
use serde_json::Value;

use super::ArchError;

const CFG: &str = "config.json";
const MD: &str = "GGUF metadata";

fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

/// `config[key]`, with JSON `null` read as absent (transformers writes `null` for unset).
pub(crate) fn cfg_get<'a>(config: &'a Value, key: &str) -> Option<&'a Value> {
    config.get(key).filter(|v| !v.is_null())
}

pub(crate) fn cfg_u32_opt(config: &Value, key: &str) -> Result<Option<u32>, ArchError> {
    let Some(v) = cfg_get(config, key) else {
        return Ok(None);
    };
    let n = v.as_u64().ok_or_else(|| ArchError::WrongType {
        what: CFG,
        key: key.into(),
        expected: "a non-negative integer",
        found: json_kind(v),
    })?;
    u32::try_from(n)
        .map(Some)
        .map_err(|_| ArchError::InvalidValue { key: key.into(), reason: format!("{n} does not fit in u32") })
}

pub(crate) fn cfg_u32(config: &Value, key: &str) -> Result<u32, ArchError> {
    cfg_u32_opt(config, key)?.ok_or_else(|| ArchError::MissingKey { what: CFG, key: key.into() })
}

pub(crate) fn cfg_f64_opt(config: &Value, key: &str) -> Result<Option<f64>, ArchError> {
    let Some(v) = cfg_get(config, key) else {
        return Ok(None);
    };
    let x = v.as_f64().ok_or_else(|| ArchError::WrongType {
        what: CFG,
        key: key.into(),
        expected: "a number",
        found: json_kind(v),
    })?;
    if !x.is_finite() {
        return Err(ArchError::InvalidValue { key: key.into(), reason: format!("{x} is not finite") });
    }
    Ok(Some(x))
}

pub(crate) fn cfg_f64(config: &Value, key: &str) -> Result<f64, ArchError> {
    cfg_f64_opt(config, key)?.ok_or_else(|| ArchError::MissingKey { what: CFG, key: key.into() })
}

pub(crate) fn cfg_bool_opt(config: &Value, key: &str) -> Result<Option<bool>, ArchError> {
    let Some(v) = cfg_get(config, key) else {
        return Ok(None);
    };
    v.as_bool().map(Some).ok_or_else(|| ArchError::WrongType {
        what: CFG,
        key: key.into(),
        expected: "a bool",
        found: json_kind(v),
    })
}

pub(crate) fn cfg_str_opt<'a>(config: &'a Value, key: &str) -> Result<Option<&'a str>, ArchError> {
    let Some(v) = cfg_get(config, key) else {
        return Ok(None);
    };
    v.as_str().map(Some).ok_or_else(|| ArchError::WrongType {
        what: CFG,
        key: key.into(),
        expected: "a string",
        found: json_kind(v),
    })
}

fn meta_kind(v: &MetaValue) -> String {
    match v {
        MetaValue::String(s) => format!("string {s:?}"),
        MetaValue::Array(a) => format!("array of {}", a.element_type().name()),
        other => format!("{} {:?}", other.value_type().name(), other),
    }
}

pub(crate) fn md_u32_opt(md: &Metadata, key: &str) -> Result<Option<u32>, ArchError> {
    let Some(v) = md.get(key) else {
        return Ok(None);
    };
    let n = v.as_u64().ok_or_else(|| ArchError::WrongType {
        what: MD,
        key: key.into(),
        expected: "an unsigned integer",
        found: meta_kind(v),
    })?;
    u32::try_from(n)
        .map(Some)
        .map_err(|_| ArchError::InvalidValue { key: key.into(), reason: format!("{n} does not fit in u32") })
}

pub(crate) fn md_u32(md: &Metadata, key: &str) -> Result<u32, ArchError> {
    md_u32_opt(md, key)?.ok_or_else(|| ArchError::MissingKey { what: MD, key: key.into() })
}

pub(crate) fn md_f32_opt(md: &Metadata, key: &str) -> Result<Option<f32>, ArchError> {
    let Some(v) = md.get(key) else {
        return Ok(None);
    };
    match v {
        MetaValue::F32(x) => Ok(Some(*x)),
        MetaValue::F64(x) => Ok(Some(*x as f32)),
        other => Err(ArchError::WrongType { what: MD, key: key.into(), expected: "a float", found: meta_kind(other) }),
    }
}

pub(crate) fn md_f32(md: &Metadata, key: &str) -> Result<f32, ArchError> {
    md_f32_opt(md, key)?.ok_or_else(|| ArchError::MissingKey { what: MD, key: key.into() })
}

pub(crate) fn md_str_opt<'a>(md: &'a Metadata, key: &str) -> Result<Option<&'a str>, ArchError> {
    let Some(v) = md.get(key) else {
        return Ok(None);
    };
    v.as_str().map(Some).ok_or_else(|| ArchError::WrongType {
        what: MD,
        key: key.into(),
        expected: "a string",
        found: meta_kind(v),
    })
}

/// An f32 metadata value as the JSON number a person would write: the shortest decimal that
/// reads back to the same f32 (`1e-6`, not `9.999999974752427e-7`), so config values survive
/// HF -> GGUF (f32) -> HF unchanged.
pub(crate) fn f32_json(x: f32) -> Value {
    let shortest: f64 = format!("{x}").parse().unwrap_or(x as f64);
    serde_json::Number::from_f64(shortest).map(Value::Number).unwrap_or(Value::Null)
}

/// Hyper-parameters shared by every supported family, read from config.json and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Base {
    pub n_ctx: u32,
    pub n_embd: u32,
    pub n_ff: u32,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub rms_eps: f64,
    /// `head_dim` when the config states it (it may differ from n_embd / n_head).
    pub head_dim_cfg: Option<u32>,
    pub vocab: u32,
    /// Mixture of Experts: the expert counts (`None`: dense).
    pub experts: Option<super::experts::ExpertCounts>,
}

/// Most layers a model may declare (the largest released models have about 130).
pub const MAX_LAYERS: u32 = 4096;

impl Base {
    pub fn from_config(config: &Value) -> Result<Self, ArchError> {
        Self::from_config_eps(config, "rms_norm_eps")
    }

    /// Like [`Self::from_config`], with the norm epsilon read from `eps_key` (Cohere's
    /// LayerNorm: `layer_norm_eps`); it lands in `rms_eps`, the family's one norm epsilon.
    pub fn from_config_eps(config: &Value, eps_key: &str) -> Result<Self, ArchError> {
        let n_head = cfg_u32(config, "num_attention_heads")?;
        let n_embd = cfg_u32(config, "hidden_size")?;
        // HF: num_key_value_heads defaults to num_attention_heads (no GQA).
        let n_head_kv = cfg_u32_opt(config, "num_key_value_heads")?.unwrap_or(n_head);
        let head_dim_cfg = cfg_u32_opt(config, "head_dim")?;
        let b = Base {
            n_ctx: cfg_u32(config, "max_position_embeddings")?,
            n_embd,
            n_ff: cfg_u32(config, "intermediate_size")?,
            n_layer: cfg_u32(config, "num_hidden_layers")?,
            n_head,
            n_head_kv,
            rms_eps: cfg_f64(config, eps_key)?,
            head_dim_cfg,
            vocab: cfg_u32(config, "vocab_size")?,
            experts: super::experts::ExpertCounts::from_config(config)?,
        };
        b.validate()?;
        Ok(b)
    }

    pub fn validate(&self) -> Result<(), ArchError> {
        let bad = |key: &str, reason: String| Err(ArchError::InvalidValue { key: key.into(), reason });
        for (key, v) in [
            ("hidden_size", self.n_embd),
            ("intermediate_size", self.n_ff),
            ("num_hidden_layers", self.n_layer),
            ("num_attention_heads", self.n_head),
            ("num_key_value_heads", self.n_head_kv),
            ("max_position_embeddings", self.n_ctx),
            ("vocab_size", self.vocab),
        ] {
            if v == 0 {
                return bad(key, "must be > 0, found 0".into());
            }
        }
        // Per-layer tables are built from this count before any tensor is seen: a config
        // claiming 600 million layers must not allocate for them (found by fuzz/hf_config).
        if self.n_layer > MAX_LAYERS {
            return bad("num_hidden_layers", format!("{} layers; at most {MAX_LAYERS} are supported", self.n_layer));
        }
        if self.n_head_kv > self.n_head || !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(
                "num_key_value_heads",
                format!("{} KV heads must divide num_attention_heads = {}", self.n_head_kv, self.n_head),
            );
        }
        match self.head_dim_cfg {
            Some(0) => return bad("head_dim", "must be > 0, found 0".into()),
            Some(_) => {}
            None if !self.n_embd.is_multiple_of(self.n_head) => {
                return bad(
                    "hidden_size",
                    format!(
                        "{} is not divisible by num_attention_heads = {} and no head_dim is given",
                        self.n_embd, self.n_head
                    ),
                )
            }
            None => {}
        }
        if self.rms_eps.is_nan() || self.rms_eps <= 0.0 {
            return bad("rms_norm_eps", format!("must be > 0, found {}", self.rms_eps));
        }
        Ok(())
    }

    /// Per-head dimension: `head_dim` if stated, else hidden_size / heads.
    pub fn head_dim(&self) -> u32 {
        self.head_dim_cfg.unwrap_or(self.n_embd / self.n_head)
    }
}
