//! RoPE base frequency and scaling: read from config.json in both the transformers >= 5 form
//! (`rope_parameters: {rope_theta, rope_type, factor, ...}`, possibly nested per layer type
//! under `full_attention`) and the legacy form (`rope_theta` + `rope_scaling`), written to the
//! GGUF keys llama.cpp's `TextModel.set_gguf_parameters` writes, and back.
//!
//! Supported scaling: `linear` and `yarn` (metadata only, as llama.cpp), `llama3` and
//! `longrope`/`su` (factor tensors, see [`super::rope_factors`]; the families that take them
//! say so). Refused with a clear error naming the key: `dynamic` (llama.cpp drops it
//! silently, which would change the model) and any other type.

use llmtool_formats::{MetaValue, Metadata};
use serde_json::{json, Map, Value};

use super::hparams::{cfg_get, f32_json, md_f32_opt, md_str_opt, md_u32_opt};
use super::rope_factors::Llama3Params;
use super::ArchError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RopeScaling {
    Linear {
        factor: f64,
    },
    Yarn {
        factor: f64,
        orig_ctx: u32,
        ext_factor: Option<f64>,
        attn_factor: Option<f64>,
        beta_fast: Option<f64>,
        beta_slow: Option<f64>,
    },
    /// Llama 3.x: stored as `rope_freqs.weight`, no metadata key (llama.cpp).
    Llama3(Llama3Params),
    /// Phi-3 long context: per-pair factors for contexts above / up to the original one.
    LongRope {
        long_factor: Vec<f64>,
        short_factor: Vec<f64>,
        attention_factor: Option<f64>,
    },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Rope {
    pub theta: Option<f64>,
    pub scaling: Option<RopeScaling>,
    pub partial_rotary_factor: Option<f64>,
}

fn num(obj: &Value, key: &str, ctx: &str) -> Result<Option<f64>, ArchError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().filter(|x| x.is_finite()).map(Some).ok_or_else(|| ArchError::WrongType {
            what: "config.json",
            key: format!("{ctx}.{key}"),
            expected: "a finite number",
            found: v.to_string(),
        }),
    }
}

impl Rope {
    pub fn from_config(config: &Value) -> Result<Self, ArchError> {
        // transformers >= 5: rope_parameters (maybe per layer type); else legacy keys.
        let params = cfg_get(config, "rope_parameters");
        let (params, ctx) = match params {
            Some(p) if p.get("full_attention").is_some() => (p.get("full_attention"), "rope_parameters.full_attention"),
            Some(p) => (Some(p), "rope_parameters"),
            None => (cfg_get(config, "rope_scaling"), "rope_scaling"),
        };
        if let Some(p) = params {
            if !p.is_object() {
                return Err(ArchError::WrongType {
                    what: "config.json",
                    key: ctx.into(),
                    expected: "an object",
                    found: p.to_string(),
                });
            }
        }
        let theta = match params.map(|p| num(p, "rope_theta", ctx)).transpose()?.flatten() {
            Some(t) => Some(t),
            None => super::hparams::cfg_f64_opt(config, "rope_theta")?,
        };
        if let Some(t) = theta {
            if t.is_nan() || t <= 0.0 {
                return Err(ArchError::InvalidValue {
                    key: "rope_theta".into(),
                    reason: format!("must be > 0, found {t}"),
                });
            }
        }
        let partial_rotary_factor = match params.map(|p| num(p, "partial_rotary_factor", ctx)).transpose()?.flatten() {
            Some(f) => Some(f),
            None => super::hparams::cfg_f64_opt(config, "partial_rotary_factor")?,
        };
        let mut scaling = None;
        if let Some(p) = params {
            // transformers >= 4.45 writes `rope_type`, older configs (Phi-3.5) `type`.
            let ty_key = if p.get("rope_type").is_some() { "rope_type" } else { "type" };
            let ty = p.get(ty_key).and_then(Value::as_str).unwrap_or("default");
            let orig_ctx = || {
                p.get("original_max_position_embeddings")
                    .or_else(|| config.get("original_max_position_embeddings"))
                    .and_then(Value::as_u64)
                    .and_then(|v| u32::try_from(v).ok())
            };
            let factor = || -> Result<f64, ArchError> {
                let f = num(p, "factor", ctx)?
                    .ok_or_else(|| ArchError::MissingKey { what: "config.json", key: format!("{ctx}.factor") })?;
                if f.is_nan() || f <= 0.0 {
                    return Err(ArchError::InvalidValue {
                        key: format!("{ctx}.factor"),
                        reason: format!("must be > 0, found {f}"),
                    });
                }
                Ok(f)
            };
            scaling = match ty {
                "default" => None,
                "linear" => Some(RopeScaling::Linear { factor: factor()? }),
                "yarn" => {
                    let orig = orig_ctx().ok_or_else(|| ArchError::MissingKey {
                        what: "config.json",
                        key: format!("{ctx}.original_max_position_embeddings"),
                    })?;
                    Some(RopeScaling::Yarn {
                        factor: factor()?,
                        orig_ctx: orig,
                        ext_factor: num(p, "extrapolation_factor", ctx)?,
                        attn_factor: match num(p, "attention_factor", ctx)? {
                            Some(a) => Some(a),
                            None => num(p, "attn_factor", ctx)?,
                        },
                        beta_fast: num(p, "beta_fast", ctx)?,
                        beta_slow: num(p, "beta_slow", ctx)?,
                    })
                }
                // llama.cpp LlamaModel.generate_extra_tensors: the same defaults.
                "llama3" => Some(RopeScaling::Llama3(Llama3Params {
                    factor: num(p, "factor", ctx)?.unwrap_or(8.0),
                    low_freq_factor: num(p, "low_freq_factor", ctx)?.unwrap_or(1.0),
                    high_freq_factor: num(p, "high_freq_factor", ctx)?.unwrap_or(4.0),
                    orig_ctx: orig_ctx().unwrap_or(8192) as f64,
                })),
                "longrope" | "su" => {
                    let list = |key: &str| -> Result<Vec<f64>, ArchError> {
                        let v = p.get(key).ok_or_else(|| ArchError::MissingKey {
                            what: "config.json",
                            key: format!("{ctx}.{key}"),
                        })?;
                        v.as_array()
                            .and_then(|a| a.iter().map(|x| x.as_f64().filter(|x| x.is_finite())).collect())
                            .ok_or_else(|| ArchError::WrongType {
                                what: "config.json",
                                key: format!("{ctx}.{key}"),
                                expected: "an array of numbers",
                                found: v.to_string(),
                            })
                    };
                    Some(RopeScaling::LongRope {
                        long_factor: list("long_factor")?,
                        short_factor: list("short_factor")?,
                        attention_factor: num(p, "attention_factor", ctx)?,
                    })
                }
                other => {
                    return Err(ArchError::Unsupported {
                        what: "rope scaling",
                        detail: format!(
                            "{ctx}.{ty_key} = {other:?} (llmtool converts \"default\", \"linear\", \"yarn\", \
                             \"llama3\" and \"longrope\")"
                        ),
                    })
                }
            };
        }
        Ok(Rope { theta, scaling, partial_rotary_factor })
    }

    /// Refuses the scalings that need factor tensors, for a family whose llama.cpp converter
    /// writes none (it would silently drop the scaling).
    pub fn refuse_factor_scaling(&self, family: &'static str) -> Result<(), ArchError> {
        match &self.scaling {
            Some(RopeScaling::Llama3(_)) | Some(RopeScaling::LongRope { .. }) => Err(ArchError::Unsupported {
                what: "rope scaling",
                detail: format!(
                    "{family}: llama3/longrope rope scaling needs rope factor tensors, which llama.cpp's {family} \
                     converter does not write (llmtool converts them for llama and phi3)"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Writes the scaling keys (in llama.cpp's order: type, factor, original context, yarn
    /// extras). The base frequency is written by the caller where its family writes it.
    pub fn write_scaling(&self, arch: &str, md: &mut Metadata) {
        let k = |s: &str| format!("{arch}.rope.scaling.{s}");
        match &self.scaling {
            // llama3: factors in rope_freqs.weight, no key (llama.cpp TextModel skips it);
            // longrope: phi3 writes its own keys (Phi3MiniModel does not call the base).
            None | Some(RopeScaling::Llama3(_)) | Some(RopeScaling::LongRope { .. }) => {}
            Some(RopeScaling::Linear { factor }) => {
                md.insert(k("type"), MetaValue::String("linear".into()));
                md.insert(k("factor"), MetaValue::F32(*factor as f32));
            }
            Some(RopeScaling::Yarn { factor, orig_ctx, ext_factor, attn_factor, beta_fast, beta_slow }) => {
                md.insert(k("type"), MetaValue::String("yarn".into()));
                md.insert(k("factor"), MetaValue::F32(*factor as f32));
                md.insert(k("original_context_length"), MetaValue::U32(*orig_ctx));
                for (key, v) in [
                    ("yarn_ext_factor", ext_factor),
                    ("yarn_attn_factor", attn_factor),
                    ("yarn_beta_fast", beta_fast),
                    ("yarn_beta_slow", beta_slow),
                ] {
                    if let Some(v) = v {
                        md.insert(k(key), MetaValue::F32(*v as f32));
                    }
                }
            }
        }
    }

    /// The legacy `rope_scaling` object (read by transformers 4.x and 5.x) from metadata.
    pub fn scaling_to_config(arch: &str, md: &Metadata) -> Result<Option<Value>, ArchError> {
        let k = |s: &str| format!("{arch}.rope.scaling.{s}");
        let Some(ty) = md_str_opt(md, &k("type"))? else {
            return Ok(None);
        };
        let factor = || -> Result<Value, ArchError> {
            md_f32_opt(md, &k("factor"))?
                .map(f32_json)
                .ok_or_else(|| ArchError::MissingKey { what: "GGUF metadata", key: k("factor") })
        };
        match ty {
            "none" => Ok(None),
            "linear" => Ok(Some(json!({"rope_type": "linear", "factor": factor()?}))),
            "yarn" => {
                let mut m = Map::new();
                m.insert("rope_type".into(), json!("yarn"));
                m.insert("factor".into(), factor()?);
                let orig = md_u32_opt(md, &k("original_context_length"))?.ok_or_else(|| ArchError::MissingKey {
                    what: "GGUF metadata",
                    key: k("original_context_length"),
                })?;
                m.insert("original_max_position_embeddings".into(), json!(orig));
                for (key, hf) in [
                    ("yarn_ext_factor", "extrapolation_factor"),
                    ("yarn_attn_factor", "attention_factor"),
                    ("yarn_beta_fast", "beta_fast"),
                    ("yarn_beta_slow", "beta_slow"),
                ] {
                    if let Some(v) = md_f32_opt(md, &k(key))? {
                        m.insert(hf.into(), f32_json(v));
                    }
                }
                Ok(Some(Value::Object(m)))
            }
            other => Err(ArchError::Unsupported {
                what: "rope scaling",
                detail: format!("{} = {other:?} (llmtool converts linear and yarn)", k("type")),
            }),
        }
    }
}
