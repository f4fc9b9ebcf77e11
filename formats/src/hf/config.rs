//! Typed, checked reads of `config.json` keys, and the hyper-parameters every decoder-only
//! architecture needs.

use serde_json::Value;

use super::HfError;

fn missing(key: &str) -> HfError {
    HfError::MissingKey { key: key.to_string() }
}

fn bad(key: &str, expected: &str, found: &Value) -> HfError {
    HfError::BadKey { key: key.to_string(), expected: expected.to_string(), found: found.to_string() }
}

/// A present, non-null key (`null` counts as absent, as transformers' defaults do).
fn get<'a>(config: &'a Value, key: &str) -> Option<&'a Value> {
    config.get(key).filter(|v| !v.is_null())
}

/// A non-negative integer key (JSON integers only; `4096.0` is refused).
pub fn config_usize(config: &Value, key: &str) -> Result<usize, HfError> {
    config_opt_usize(config, key)?.ok_or_else(|| missing(key))
}

pub fn config_opt_usize(config: &Value, key: &str) -> Result<Option<usize>, HfError> {
    let Some(v) = get(config, key) else {
        return Ok(None);
    };
    v.as_u64().and_then(|u| usize::try_from(u).ok()).map(Some).ok_or_else(|| bad(key, "a non-negative integer", v))
}

/// A finite number key (integers accepted).
pub fn config_f64(config: &Value, key: &str) -> Result<f64, HfError> {
    config_opt_f64(config, key)?.ok_or_else(|| missing(key))
}

pub fn config_opt_f64(config: &Value, key: &str) -> Result<Option<f64>, HfError> {
    let Some(v) = get(config, key) else {
        return Ok(None);
    };
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(bad(key, "a finite number", v)),
    }
}

pub fn config_bool(config: &Value, key: &str) -> Result<bool, HfError> {
    config_opt_bool(config, key)?.ok_or_else(|| missing(key))
}

pub fn config_opt_bool(config: &Value, key: &str) -> Result<Option<bool>, HfError> {
    let Some(v) = get(config, key) else {
        return Ok(None);
    };
    v.as_bool().map(Some).ok_or_else(|| bad(key, "true or false", v))
}

/// Hyper-parameters shared by the Llama-like families, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseHparams {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// `num_key_value_heads`, defaulting to `num_attention_heads` (transformers LlamaConfig).
    pub num_key_value_heads: usize,
    /// `head_dim`, defaulting to `hidden_size / num_attention_heads`.
    pub head_dim: usize,
    pub intermediate_size: Option<usize>,
    pub vocab_size: usize,
    pub max_position_embeddings: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    /// `tie_word_embeddings`, default true as in transformers `PretrainedConfig`.
    pub tie_word_embeddings: bool,
}

fn positive(config: &Value, key: &str) -> Result<usize, HfError> {
    let v = config_usize(config, key)?;
    if v == 0 {
        return Err(bad(key, "a positive integer", &Value::from(0)));
    }
    Ok(v)
}

fn opt_positive(config: &Value, key: &str) -> Result<Option<usize>, HfError> {
    match config_opt_usize(config, key)? {
        Some(0) => Err(bad(key, "a positive integer", &Value::from(0))),
        v => Ok(v),
    }
}

impl BaseHparams {
    pub fn from_config(config: &Value) -> Result<Self, HfError> {
        if !config.is_object() {
            return Err(HfError::Inconsistent { message: "config is not a JSON object".into() });
        }
        let hidden_size = positive(config, "hidden_size")?;
        let num_hidden_layers = positive(config, "num_hidden_layers")?;
        let num_attention_heads = positive(config, "num_attention_heads")?;
        let num_key_value_heads = opt_positive(config, "num_key_value_heads")?.unwrap_or(num_attention_heads);
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(HfError::Inconsistent {
                message: format!(
                    "num_key_value_heads = {num_key_value_heads} does not divide num_attention_heads = {num_attention_heads}"
                ),
            });
        }
        let head_dim = match opt_positive(config, "head_dim")? {
            Some(h) => h,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(HfError::Inconsistent {
                        message: format!(
                            "hidden_size = {hidden_size} is not divisible by num_attention_heads = {num_attention_heads} (and head_dim is absent)"
                        ),
                    });
                }
                hidden_size / num_attention_heads
            }
        };
        let intermediate_size = opt_positive(config, "intermediate_size")?;
        let vocab_size = positive(config, "vocab_size")?;
        let max_position_embeddings = opt_positive(config, "max_position_embeddings")?;
        let rms_norm_eps = config_opt_f64(config, "rms_norm_eps")?;
        if let Some(eps) = rms_norm_eps {
            if eps <= 0.0 {
                return Err(bad("rms_norm_eps", "a positive number", &config["rms_norm_eps"]));
            }
        }
        let rope_theta = config_opt_f64(config, "rope_theta")?;
        if let Some(t) = rope_theta {
            if t <= 0.0 {
                return Err(bad("rope_theta", "a positive number", &config["rope_theta"]));
            }
        }
        let tie_word_embeddings = config_opt_bool(config, "tie_word_embeddings")?.unwrap_or(true);
        Ok(BaseHparams {
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            intermediate_size,
            vocab_size,
            max_position_embeddings,
            rms_norm_eps,
            rope_theta,
            tie_word_embeddings,
        })
    }
}
