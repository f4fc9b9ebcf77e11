//! mergekit-moe's YAML (`mergekit/moe/config.py`, mergekit 0.1.5: `MoEMergeConfig`,
//! `Expert`) read as it is, and checked (`is_bad_config`) before any tensor is read.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How the routers are initialised (`get_gate_params`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    /// Hidden states of the base model for each expert's prompts (last token).
    Hidden,
    /// Normalised sum of the prompts' token embeddings, the same in every layer.
    CheapEmbed,
    /// `torch.randn((layers, experts, hidden))`.
    Random,
    /// `torch.rand(...) * 2 * scale - scale`, `scale = sqrt(1 / hidden)` (nn.Linear's init).
    UniformRandom,
}

impl GateMode {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            // get_gate_params treats "hidden_last" as "hidden" (average=False)
            "hidden" | "hidden_last" => GateMode::Hidden,
            "cheap_embed" => GateMode::CheapEmbed,
            "random" => GateMode::Random,
            "uniform_random" => GateMode::UniformRandom,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            GateMode::Hidden => "hidden",
            GateMode::CheapEmbed => "cheap_embed",
            GateMode::Random => "random",
            GateMode::UniformRandom => "uniform_random",
        }
    }
    pub fn needs_prompts(self) -> bool {
        matches!(self, GateMode::Hidden | GateMode::CheapEmbed)
    }
}

/// One expert (`Expert`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expert {
    pub source_model: String,
    #[serde(default)]
    pub positive_prompts: Option<Vec<String>>,
    #[serde(default)]
    pub negative_prompts: Option<Vec<String>>,
    #[serde(default)]
    pub noise_scale: Option<f64>,
    /// Multiplies the expert's `down_proj` (`noise_and_scale`, `is_residual`).
    #[serde(default)]
    pub residual_scale: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    base_model: String,
    experts: Vec<Expert>,
    #[serde(default)]
    gate_mode: Option<String>,
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default)]
    experts_per_token: Option<i64>,
    #[serde(default)]
    shared_experts: Option<Vec<Expert>>,
    #[serde(default)]
    architecture: Option<String>,
}

/// Output architecture (`architecture`, or chosen as mergekit-moe chooses: Mixtral unless
/// there are shared experts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutArch {
    Mixtral,
    Qwen2Moe,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct MoeConfig {
    pub base_model: String,
    pub experts: Vec<Expert>,
    pub shared_experts: Vec<Expert>,
    pub gate_mode: GateMode,
    pub dtype: Option<crate::passes::convert::OutType>,
    pub experts_per_token: u32,
    pub architecture: OutArch,
    /// Directory of the config file: relative model paths resolve there first.
    pub dir: Option<PathBuf>,
}

/// Errors in a mergekit-moe configuration.
#[derive(Debug, thiserror::Error)]
pub enum MoeConfigError {
    #[error("{origin}: cannot read: {source}")]
    Io { origin: String, source: std::io::Error },
    #[error("{origin}: not a mergekit-moe configuration: {msg}")]
    Yaml { origin: String, msg: String },
    #[error("{origin}: gate_mode '{mode}' is not known (hidden, hidden_last, cheap_embed, random, uniform_random; hidden_avg is not supported yet)")]
    GateMode { origin: String, mode: String },
    #[error("{origin}: dtype '{dtype}' is not supported (float32, float16, bfloat16)")]
    Dtype { origin: String, dtype: String },
    #[error("{origin}: experts_per_token is {n}; it must be at least 1")]
    PerTokenZero { origin: String, n: i64 },
    #[error("{origin}: experts_per_token is {n} but there are only {count} experts")]
    PerTokenAbove { origin: String, n: i64, count: usize },
    #[error("{origin}: expert {index} ({model}) has no positive_prompts (gate_mode {mode} routes by prompts)")]
    NoPrompts { origin: String, index: usize, model: String, mode: &'static str },
    #[error(
        "{origin}: every expert has the same positive and negative prompts; the routers could not tell them apart"
    )]
    SamePrompts { origin: String },
    #[error("{origin}: every expert is the same model ({model}); the MoE would compute exactly what that model does (to build it anyway, e.g. to train it further: --i-understand-this-is-not-useful-without-training)")]
    SameModels { origin: String, model: String },
    #[error("{origin}: shared_experts (Qwen2-MoE output): {reason}")]
    Shared { origin: String, reason: String },
    #[error("{origin}: {what} is not yet supported by llmtool moe")]
    NotSupported { origin: String, what: String },
}

impl MoeConfig {
    /// Every model reference: the base model, the experts, the shared experts.
    pub fn referenced_models(&self) -> Vec<String> {
        let experts = self.experts.iter().chain(&self.shared_experts).map(|e| e.source_model.clone());
        std::iter::once(self.base_model.clone()).chain(experts).collect()
    }

    /// The experts that get a router row: the experts, then the shared expert when it has
    /// prompts or the gates are random (mergekit/scripts/moe.py `build`: `need_gates`).
    pub fn gated(&self) -> Vec<&Expert> {
        let shared_gated = self.shared_experts.iter().any(|e| e.positive_prompts.is_some())
            || matches!(self.gate_mode, GateMode::Random | GateMode::UniformRandom);
        self.experts.iter().chain(self.shared_experts.iter().filter(|_| shared_gated)).collect()
    }

    /// `allow_all_same`: mergekit-moe's `--i-understand-this-is-not-useful-without-training`
    /// (experts that are all the same model are accepted).
    pub fn load(path: &Path, allow_all_same: bool) -> Result<Self, MoeConfigError> {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| MoeConfigError::Io { origin: origin.clone(), source })?;
        let mut c = Self::parse_allowing(&text, &origin, allow_all_same)?;
        c.dir = Some(path.parent().map(Path::to_path_buf).unwrap_or_default());
        Ok(c)
    }

    /// Parses and checks YAML text (`origin` names it in messages).
    pub fn parse(text: &str, origin: &str) -> Result<Self, MoeConfigError> {
        Self::parse_allowing(text, origin, false)
    }

    /// [`Self::parse`], experts that are all the same model accepted when `allow_all_same`.
    pub fn parse_allowing(text: &str, origin: &str, allow_all_same: bool) -> Result<Self, MoeConfigError> {
        let o = || origin.to_string();
        let raw: Raw =
            crate::yaml::from_str(text).map_err(|e| MoeConfigError::Yaml { origin: o(), msg: e.to_string() })?;
        let mode_name = raw.gate_mode.unwrap_or_else(|| "hidden".into());
        let gate_mode = GateMode::parse(&mode_name)
            .ok_or_else(|| MoeConfigError::GateMode { origin: o(), mode: mode_name.clone() })?;
        let dtype = match raw.dtype.as_deref() {
            None => None,
            Some("float32" | "fp32" | "f32") => Some(crate::passes::convert::OutType::F32),
            Some("float16" | "fp16" | "f16" | "half") => Some(crate::passes::convert::OutType::F16),
            Some("bfloat16" | "bf16") => Some(crate::passes::convert::OutType::Bf16),
            Some(d) => return Err(MoeConfigError::Dtype { origin: o(), dtype: d.into() }),
        };
        // is_bad_config, in its order
        let n = raw.experts_per_token.unwrap_or(2);
        if n < 1 {
            return Err(MoeConfigError::PerTokenZero { origin: o(), n });
        }
        if n as usize > raw.experts.len() {
            return Err(MoeConfigError::PerTokenAbove { origin: o(), n, count: raw.experts.len() });
        }
        if gate_mode.needs_prompts() {
            for (index, e) in raw.experts.iter().enumerate() {
                if e.positive_prompts.as_ref().is_none_or(Vec::is_empty) {
                    return Err(MoeConfigError::NoPrompts {
                        origin: o(),
                        index,
                        model: e.source_model.clone(),
                        mode: gate_mode.name(),
                    });
                }
            }
            let tup = |e: &Expert| (e.positive_prompts.clone(), e.negative_prompts.clone().unwrap_or_default());
            if raw.experts.len() > 1 && raw.experts[1..].iter().all(|e| tup(e) == tup(&raw.experts[0])) {
                return Err(MoeConfigError::SamePrompts { origin: o() });
            }
        }
        if !allow_all_same
            && raw.experts.len() > 1
            && raw.experts[1..].iter().all(|e| e.source_model == raw.experts[0].source_model)
        {
            return Err(MoeConfigError::SameModels { origin: o(), model: raw.experts[0].source_model.clone() });
        }
        let shared_experts = raw.shared_experts.unwrap_or_default();
        for e in raw.experts.iter().chain(&shared_experts) {
            if e.noise_scale.is_some() {
                return Err(MoeConfigError::NotSupported {
                    origin: o(),
                    what: format!("noise_scale (expert {})", e.source_model),
                });
            }
        }
        let architecture = match raw.architecture.as_deref() {
            None if shared_experts.is_empty() => OutArch::Mixtral,
            None => OutArch::Qwen2Moe,
            Some(a) if a.eq_ignore_ascii_case("mixtral") => OutArch::Mixtral,
            // mergekit matches the start of the name ("Qwen MoE")
            Some(a) if "qwen moe".starts_with(&a.to_ascii_lowercase()) => OutArch::Qwen2Moe,
            Some(a) => return Err(MoeConfigError::NotSupported { origin: o(), what: format!("architecture '{a}'") }),
        };
        if architecture == OutArch::Mixtral && !shared_experts.is_empty() {
            return Err(MoeConfigError::NotSupported {
                origin: o(),
                what: "shared_experts with Mixtral output (mergekit-moe: Mixtral has no shared experts)".into(),
            });
        }
        if architecture == OutArch::Qwen2Moe {
            // mergekit/moe/qwen.py `supports_config`
            if shared_experts.len() != 1 {
                return Err(MoeConfigError::Shared {
                    origin: o(),
                    reason: format!("{} given, exactly one needed", shared_experts.len()),
                });
            }
            if gate_mode != GateMode::Random && shared_experts[0].positive_prompts.as_ref().is_none_or(Vec::is_empty) {
                return Err(MoeConfigError::Shared {
                    origin: o(),
                    reason: "the shared expert needs positive_prompts (its gate is routed like the experts') unless gate_mode is random".into(),
                });
            }
        }
        Ok(MoeConfig {
            base_model: raw.base_model,
            experts: raw.experts,
            shared_experts,
            gate_mode,
            dtype,
            experts_per_token: n as u32,
            architecture,
            dir: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "base_model: a\ngate_mode: cheap_embed\nexperts:\n  - source_model: a\n    positive_prompts: [\"x\"]\n  - source_model: b\n    positive_prompts: [\"y\"]\n";

    #[test]
    fn reads_mergekit_moe_yaml_with_its_defaults() {
        let c = MoeConfig::parse(OK, "t").unwrap();
        assert_eq!((c.gate_mode, c.experts_per_token, c.architecture), (GateMode::CheapEmbed, 2, OutArch::Mixtral));
        assert_eq!(c.experts[1].positive_prompts.as_deref(), Some(&["y".to_string()][..]));
        let h = MoeConfig::parse(&OK.replace("gate_mode: cheap_embed\n", ""), "t").unwrap();
        assert_eq!(h.gate_mode, GateMode::Hidden);
    }

    #[test]
    fn bad_configs_are_named_errors() {
        let e = |t: &str| MoeConfig::parse(t, "t").unwrap_err().to_string();
        assert!(e(&format!("{OK}experts_per_token: 3\n")).contains("experts_per_token is 3 but there are only 2"));
        assert!(e(&format!("{OK}experts_per_token: 0\n")).contains("at least 1"));
        assert!(e(&OK.replace("cheap_embed", "magic")).contains("gate_mode 'magic'"));
        assert!(e(&OK.replace("[\"y\"]", "[]")).contains("expert 1 (b) has no positive_prompts"));
        assert!(e(&OK.replace("[\"y\"]", "[\"x\"]")).contains("same positive and negative prompts"));
        assert!(e(&OK.replace("model: b", "model: a")).contains("every expert is the same model"));
        assert!(MoeConfig::parse_allowing(&OK.replace("model: b", "model: a"), "t", true).is_ok());
        assert!(e(&format!("{OK}bogus: 1\n")).contains("unknown field `bogus`"));
        let shared = |t: &str| format!("{OK}shared_experts:\n  - source_model: c\n{t}");
        assert_eq!(
            MoeConfig::parse(&shared("    positive_prompts: [\"z\"]\n"), "t").unwrap().architecture,
            OutArch::Qwen2Moe
        );
        assert!(e(&shared("")).contains("the shared expert needs positive_prompts"));
        assert!(e(&format!("{OK}architecture: mixtral\nshared_experts:\n  - source_model: c\n")).contains("Mixtral"));
        // random needs no prompts
        let r = OK.replace("cheap_embed", "random").replace("[\"y\"]", "[]");
        assert_eq!(MoeConfig::parse(&r, "t").unwrap().gate_mode, GateMode::Random);
    }
}
