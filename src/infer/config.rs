//! Hyper-parameters of the forward pass, read from GGUF-form metadata (`<arch>.*` keys) and
//! the tensor list. Defaults and per-family choices follow llama.cpp `src/llama-model.cpp`
//! (`load_hparams`) and `src/models/<arch>.cpp`.

use llmtool_formats::{Metadata, TensorInfo};

use super::InferError;

/// The model families with a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Phi3,
    Gemma,
    Gemma2,
    Qwen2,
    Qwen3,
    Gemma3,
    /// Cohere Command R / R+ (`command-r`).
    CommandR,
    /// Cohere Command R7B (`cohere2`).
    Cohere2,
    /// Qwen2-MoE (`qwen2moe`): qwen2 attention, MoE FFN with a gated shared expert.
    Qwen2Moe,
    /// Qwen3-MoE (`qwen3moe`): qwen3 attention, MoE FFN.
    Qwen3Moe,
}

/// The Mixture-of-Experts FFN of every layer (`<arch>.expert_*` keys; llama.cpp
/// `llm_graph_context::build_moe_ffn`).
#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    pub n_expert: usize,
    /// Experts per token (top-k).
    pub n_used: usize,
    /// Rows of each expert's gate/up matrices (`expert_feed_forward_length`; llama.cpp's
    /// default: `feed_forward_length` for llama (Mixtral), that / n_used for the Qwen MoEs).
    pub n_ff_exp: usize,
    /// Qwen2-MoE's shared expert size (`expert_shared_feed_forward_length`, else
    /// `feed_forward_length`); `None`: no shared expert.
    pub n_ff_shexp: Option<usize>,
    /// Whether the top-k weights are renormalised: llama.cpp's per-graph choice (llama and
    /// qwen3moe yes, qwen2moe no), overridden by `<arch>.expert_weights_norm`.
    pub norm_topk: bool,
}

/// Which normalization the blocks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// x / sqrt(mean(x²) + eps) · w.
    Rms,
    /// Mean-centred LayerNorm with a weight and no bias (Cohere; llama.cpp LLM_NORM).
    Layer,
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (x[2i], x[2i+1]): llama.cpp's LLAMA_ROPE_TYPE_NORM, used for `llama`
    /// because the converter permutes the Q/K rows of HF checkpoints into that order.
    Normal,
    /// Halves (x[i], x[i + n_rot/2]): LLAMA_ROPE_TYPE_NEOX (phi3, gemma, gemma2, qwen2).
    Neox,
}

/// RoPE scaling as written in `<arch>.rope.scaling.*` (ggml `ggml_rope_ext` parameters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    pub style: RopeStyle,
    /// Rotated dimensions per head (`rope.dimension_count`, default head_dim).
    pub n_rot: usize,
    pub freq_base: f32,
    /// 1 / linear factor (1 = no scaling).
    pub freq_scale: f32,
    /// YaRN: extrapolation mix (0 = plain linear interpolation), attention factor, betas,
    /// and the original training context.
    pub ext_factor: f32,
    pub attn_factor: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
    pub n_ctx_orig: usize,
}

/// Which frequency factors divide the rope angles (ggml `ggml_rope_ext`'s `freq_factors`:
/// θ_i = pos · base^(−2i/n_rot) / ff[i]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeFactors {
    None,
    /// Llama 3.x: `rope_freqs.weight`, always.
    Freqs,
    /// Phi-3 longrope: `rope_factors_long.weight` when the context exceeds the original
    /// training context (`n_ctx_orig`), else `rope_factors_short.weight`
    /// (llama.cpp `llama_model::get_rope_factors`).
    LongShort,
}

/// Feed-forward activation of the gated FFN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU: silu(gate) * up.
    Silu,
    /// GeGLU with the tanh approximation (`gelu_pytorch_tanh`).
    GeluTanh,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InferConfig {
    pub family: Family,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    /// Training context (`context_length`): the largest context the model supports.
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    pub rope: Rope,
    pub rope_factors: RopeFactors,
    /// Multiplier of q·k (1/sqrt(head_dim); gemma2: 1/sqrt(query_pre_attn_scalar) = 1/sqrt(head_dim)
    /// for the sizes llama.cpp knows except 27B).
    pub attn_scale: f32,
    /// gemma2: tanh soft-capping of the attention scores and of the final logits.
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    /// Sliding attention window (a key at distance >= window is masked) and which layers use it.
    pub sliding_window: Option<usize>,
    pub swa_every_other: bool,
    /// gemma3, cohere2: per layer, whether it slides (`swa_every_other` is then unused).
    pub swa_layers: Option<Vec<bool>>,
    /// gemma3: the RoPE of the sliding layers (local base, no scaling); None: `rope` everywhere.
    pub rope_swa: Option<Rope>,
    /// qwen3, gemma3: RMSNorm of each query and key head (`attn_q_norm`, `attn_k_norm`) before RoPE.
    pub qk_norm: bool,
    /// gemma: the token embeddings are multiplied by sqrt(n_embd).
    pub embed_scale: Option<f32>,
    pub activation: Activation,
    /// gemma2: extra RMSNorms after attention and after the FFN.
    pub post_norms: bool,
    /// The norm of every block and of the output (`rms_eps` is its epsilon).
    pub norm: NormKind,
    /// Cohere: attention and FFN both read the one input norm, x += attn(n) + ffn(n); no
    /// `ffn_norm`.
    pub parallel_block: bool,
    /// Cohere: logits are multiplied by `logit_scale`.
    pub logit_scale: Option<f32>,
    /// cohere2: the global (non-sliding, per `swa_layers`) layers skip RoPE.
    pub rope_swa_only: bool,
    /// Mixtral, Qwen-MoE: the experts of every layer's FFN (`None`: a dense FFN).
    pub moe: Option<MoeConfig>,
}

fn get_u64(md: &Metadata, key: &str) -> Result<Option<u64>, InferError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| InferError::BadKey {
            key: key.into(),
            expected: "an unsigned integer",
            found: format!("{v:?}"),
        }),
    }
}

fn get_f32(md: &Metadata, key: &str) -> Result<Option<f32>, InferError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(|x| Some(x as f32)).ok_or_else(|| InferError::BadKey {
            key: key.into(),
            expected: "a number",
            found: format!("{v:?}"),
        }),
    }
}

fn need_usize(md: &Metadata, key: &str) -> Result<usize, InferError> {
    let v = get_u64(md, key)?.ok_or_else(|| InferError::MissingKey(key.into()))?;
    if v == 0 || v > (1 << 24) {
        return Err(InferError::BadKey { key: key.into(), expected: "a value in 1..=2^24", found: v.to_string() });
    }
    Ok(v as usize)
}

/// The sliding layers: `key` as one bool per layer or a period (llama.cpp `load_swa_pattern`:
/// layer il slides iff il % n < n - 1; 0 = all), absent: the family's default period
/// (llama.cpp: gemma3 6, cohere2 4).
fn swa_pattern(md: &Metadata, key: &str, n_layer: usize, default_period: usize) -> Result<Vec<bool>, InferError> {
    use llmtool_formats::{MetaArray, MetaValue};
    let period = |n: usize| (0..n_layer).map(|il| n == 0 || il % n < n - 1).collect();
    match md.get(key) {
        None => Ok(period(default_period)),
        Some(MetaValue::Array(MetaArray::Bool(v))) if v.len() == n_layer => Ok(v.clone()),
        Some(v) => match v.as_u64() {
            Some(n) if n <= 1 << 24 => Ok(period(n as usize)),
            _ => Err(InferError::BadKey {
                key: key.into(),
                expected: "one bool per layer or an unsigned period",
                found: format!("{v:?}"),
            }),
        },
    }
}

/// The MoE configuration from `<arch>.expert_*` keys: `None` without `expert_count` (or 0) in
/// the dense families; the Qwen MoE families require it.
fn moe_config(md: &Metadata, arch: &str, family: Family, n_ff: usize) -> Result<Option<MoeConfig>, InferError> {
    let k = |s: &str| format!("{arch}.{s}");
    let qwen_moe = matches!(family, Family::Qwen2Moe | Family::Qwen3Moe);
    let n_expert = match get_u64(md, &k("expert_count"))? {
        Some(0) | None if !qwen_moe => return Ok(None),
        Some(_) => need_usize(md, &k("expert_count"))?,
        None => return Err(InferError::MissingKey(k("expert_count"))),
    };
    let n_used = need_usize(md, &k("expert_used_count"))?;
    if n_used > n_expert {
        return Err(InferError::BadKey {
            key: k("expert_used_count"),
            expected: "at most expert_count",
            found: format!("{n_used} (expert_count = {n_expert})"),
        });
    }
    // llama.cpp LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX = 1 (the only one these graphs use).
    if let Some(g) = get_u64(md, &k("expert_gating_func"))?.filter(|&g| g != 1) {
        return Err(InferError::Unsupported {
            what: "expert gating function",
            detail: format!("{} = {g} (only softmax, 1, is supported)", k("expert_gating_func")),
        });
    }
    let n_ff_exp = match get_u64(md, &k("expert_feed_forward_length"))? {
        Some(_) => need_usize(md, &k("expert_feed_forward_length"))?,
        None if family == Family::Llama => n_ff,
        None => (n_ff / n_used).max(1),
    };
    let n_ff_shexp = match family {
        Family::Qwen2Moe => Some(match get_u64(md, &k("expert_shared_feed_forward_length"))? {
            Some(_) => need_usize(md, &k("expert_shared_feed_forward_length"))?,
            None => n_ff,
        }),
        _ => None,
    };
    let norm_topk = match md.get(&k("expert_weights_norm")) {
        None => family != Family::Qwen2Moe,
        Some(llmtool_formats::MetaValue::Bool(b)) => *b,
        Some(v) => {
            return Err(InferError::BadKey {
                key: k("expert_weights_norm"),
                expected: "a bool",
                found: format!("{v:?}"),
            })
        }
    };
    Ok(Some(MoeConfig { n_expert, n_used, n_ff_exp, n_ff_shexp, norm_topk }))
}

impl InferConfig {
    /// Reads the configuration of a GGUF-form model.
    pub fn from_metadata(md: &Metadata, tensors: &[TensorInfo]) -> Result<Self, InferError> {
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .ok_or_else(|| InferError::MissingKey("general.architecture".into()))?;
        let family = match arch {
            "llama" => Family::Llama,
            "phi3" => Family::Phi3,
            "gemma" => Family::Gemma,
            "gemma2" => Family::Gemma2,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "gemma3" => Family::Gemma3,
            "command-r" => Family::CommandR,
            "cohere2" => Family::Cohere2,
            "qwen2moe" => Family::Qwen2Moe,
            "qwen3moe" => Family::Qwen3Moe,
            other => return Err(InferError::UnsupportedArch(other.into())),
        };
        let k = |s: &str| format!("{arch}.{s}");
        let n_embd = need_usize(md, &k("embedding_length"))?;
        let n_layer = need_usize(md, &k("block_count"))?;
        let n_head = need_usize(md, &k("attention.head_count"))?;
        let n_head_kv = match get_u64(md, &k("attention.head_count_kv"))? {
            Some(_) => need_usize(md, &k("attention.head_count_kv"))?,
            None => n_head,
        };
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(InferError::BadKey {
                key: k("attention.head_count_kv"),
                expected: "a divisor of attention.head_count",
                found: n_head_kv.to_string(),
            });
        }
        let head_dim = match get_u64(md, &k("attention.key_length"))? {
            Some(_) => need_usize(md, &k("attention.key_length"))?,
            None if n_embd.is_multiple_of(n_head) => n_embd / n_head,
            None => {
                return Err(InferError::BadKey {
                    key: k("embedding_length"),
                    expected: "a multiple of attention.head_count (no key_length given)",
                    found: n_embd.to_string(),
                })
            }
        };
        let n_ff = need_usize(md, &k("feed_forward_length"))?;
        let n_ctx_train = need_usize(md, &k("context_length"))?;
        let cohere = matches!(family, Family::CommandR | Family::Cohere2);
        // Cohere's LayerNorm epsilon has its own key (llama.cpp LLM_KV_ATTENTION_LAYERNORM_EPS).
        let eps_key = if cohere { k("attention.layer_norm_epsilon") } else { k("attention.layer_norm_rms_epsilon") };
        let rms_eps = get_f32(md, &eps_key)?.ok_or_else(|| InferError::MissingKey(eps_key.clone()))?;
        let n_vocab = tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .and_then(|t| t.ne.get(1).copied())
            .ok_or_else(|| InferError::MissingTensor("token_embd.weight".into()))? as usize;

        // Cohere: HF rotates adjacent pairs natively (llama.cpp LLAMA_ROPE_TYPE_NORM, unpermuted).
        let style = if matches!(family, Family::Llama | Family::CommandR | Family::Cohere2) {
            RopeStyle::Normal
        } else {
            RopeStyle::Neox
        };
        let n_rot = match get_u64(md, &k("rope.dimension_count"))? {
            Some(_) => need_usize(md, &k("rope.dimension_count"))?,
            None => head_dim,
        };
        if n_rot > head_dim || !n_rot.is_multiple_of(2) {
            return Err(InferError::BadKey {
                key: k("rope.dimension_count"),
                expected: "an even number <= the head dimension",
                found: n_rot.to_string(),
            });
        }
        let mut rope = Rope {
            style,
            n_rot,
            freq_base: get_f32(md, &k("rope.freq_base"))?.unwrap_or(10000.0),
            freq_scale: 1.0,
            ext_factor: 0.0,
            attn_factor: 1.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: n_ctx_train,
        };
        // llama.cpp llama-model.cpp: n_ctx_orig_yarn = original_context_length, else n_ctx_train
        // (read whatever the scaling type: longrope chooses its factors by it).
        if let Some(n) = get_u64(md, &k("rope.scaling.original_context_length"))? {
            rope.n_ctx_orig = n as usize;
        }
        // llama.cpp llama-context.cpp: yarn_attn_factor *= rope.scaling.attn_factor (longrope).
        if let Some(a) = get_f32(md, &k("rope.scaling.attn_factor"))? {
            rope.attn_factor *= a;
        }
        let scaling = md.get(&k("rope.scaling.type")).and_then(|v| v.as_str()).unwrap_or("none");
        // llama.cpp: rope.scaling.factor, else the legacy rope.scale_linear.
        let factor = get_f32(md, &k("rope.scaling.factor"))?.or(get_f32(md, &k("rope.scale_linear"))?);
        match scaling {
            "none" => {}
            "linear" | "yarn" => {
                if let Some(f) = factor.filter(|f| *f > 0.0) {
                    rope.freq_scale = 1.0 / f;
                }
                if scaling == "yarn" {
                    // llama.cpp llama-context.cpp: yarn_ext_factor < 0 means 1.0 for YaRN.
                    rope.ext_factor = get_f32(md, &k("rope.scaling.yarn_ext_factor"))?.unwrap_or(1.0);
                    rope.attn_factor *= get_f32(md, &k("rope.scaling.yarn_attn_factor"))?.unwrap_or(1.0);
                    rope.beta_fast = get_f32(md, &k("rope.scaling.yarn_beta_fast"))?.unwrap_or(32.0);
                    rope.beta_slow = get_f32(md, &k("rope.scaling.yarn_beta_slow"))?.unwrap_or(1.0);
                }
            }
            other => {
                return Err(InferError::Unsupported {
                    what: "rope scaling",
                    detail: format!("{} = {other:?} (the inference core does linear and yarn)", k("rope.scaling.type")),
                })
            }
        }
        let has = |name: &str| tensors.iter().any(|t| t.name == name);
        let rope_factors =
            match (has("rope_freqs.weight"), has("rope_factors_long.weight"), has("rope_factors_short.weight")) {
                (false, false, false) => RopeFactors::None,
                (true, false, false) => RopeFactors::Freqs,
                (false, true, true) => RopeFactors::LongShort,
                _ => {
                    return Err(InferError::Unsupported {
                        what: "rope scaling",
                        detail: "rope factor tensors: expected rope_freqs.weight alone, or rope_factors_long.weight \
                             with rope_factors_short.weight"
                            .into(),
                    })
                }
            };

        let mut window = get_u64(md, &k("attention.sliding_window"))?.filter(|&w| w > 0).map(|w| w as usize);
        if family == Family::Gemma2 && window.is_none() {
            window = Some(4096); // llama.cpp gemma2.cpp: "default value of gemma 2"
        }
        // llama.cpp gemma2.cpp: 27B (46 layers) scales by 1/sqrt(n_embd/n_head), the rest by
        // 1/sqrt(head_dim) (= query_pre_attn_scalar).
        // gemma3.cpp: 27B (62 layers) likewise; query_pre_attn_scalar is not stored.
        let attn_scale = if (family == Family::Gemma2 && n_layer == 46) || (family == Family::Gemma3 && n_layer == 62) {
            1.0 / ((n_embd / n_head) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };
        let logit_scale = if cohere { get_f32(md, &k("logit_scale"))?.filter(|s| *s != 0.0) } else { None };
        let (attn_softcap, final_softcap) = match family {
            Family::Gemma2 => (
                get_f32(md, &k("attn_logit_softcapping"))?.filter(|c| *c > 0.0),
                get_f32(md, &k("final_logit_softcapping"))?.filter(|c| *c > 0.0),
            ),
            // gemma3.cpp: no attention soft-capping; final soft-capping when the key is set.
            Family::Gemma3 => (None, get_f32(md, &k("final_logit_softcapping"))?.filter(|c| *c > 0.0)),
            _ => (None, None),
        };
        let (swa_layers, rope_swa) = if family == Family::Gemma3 && window.is_some() {
            let layers = swa_pattern(md, &k("attention.sliding_window_pattern"), n_layer, 6)?;
            // llama.cpp llama-hparams.h: rope_freq_base_train_swa defaults to 10000, and the
            // sliding layers' frequency scale is 1 (the linear factor is for global layers).
            let local = Rope {
                freq_base: get_f32(md, &k("rope.freq_base_swa"))?.unwrap_or(10000.0),
                freq_scale: 1.0,
                ext_factor: 0.0,
                attn_factor: 1.0,
                ..rope
            };
            (Some(layers), Some(local))
        } else if family == Family::Cohere2 {
            if window.is_none() {
                return Err(InferError::MissingKey(k("attention.sliding_window")));
            }
            (Some(swa_pattern(md, &k("attention.sliding_window_pattern"), n_layer, 4)?), None)
        } else {
            (None, None)
        };
        Ok(InferConfig {
            family,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_vocab,
            n_ctx_train,
            rms_eps,
            rope,
            rope_factors,
            attn_scale,
            attn_softcap,
            final_softcap,
            // gemma2: every other (even) layer (llama.cpp swa pattern 2). phi3: every layer, as
            // transformers does (llama.cpp currently disables Phi-3's window, phi3.cpp).
            sliding_window: if matches!(family, Family::Phi3 | Family::Gemma2 | Family::Gemma3 | Family::Cohere2) {
                window
            } else {
                None
            },
            swa_every_other: family == Family::Gemma2,
            swa_layers,
            rope_swa,
            qk_norm: matches!(family, Family::Qwen3 | Family::Qwen3Moe | Family::Gemma3),
            embed_scale: matches!(family, Family::Gemma | Family::Gemma2 | Family::Gemma3)
                .then(|| (n_embd as f32).sqrt()),
            activation: if matches!(family, Family::Gemma | Family::Gemma2 | Family::Gemma3) {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            post_norms: matches!(family, Family::Gemma2 | Family::Gemma3),
            norm: if cohere { NormKind::Layer } else { NormKind::Rms },
            parallel_block: cohere,
            logit_scale,
            rope_swa_only: family == Family::Cohere2,
            moe: moe_config(md, arch, family, n_ff)?,
        })
    }

    /// Whether layer `il` uses the sliding window.
    pub fn layer_window(&self, il: usize) -> Option<usize> {
        if let (Some(w), Some(layers)) = (self.sliding_window, &self.swa_layers) {
            return layers.get(il).copied().unwrap_or(false).then_some(w);
        }
        match self.sliding_window {
            Some(w) if !self.swa_every_other || il.is_multiple_of(2) => Some(w),
            _ => None,
        }
    }

    /// The RoPE of layer `il`: `rope_swa` on sliding layers when set, else `rope`.
    pub fn layer_rope(&self, il: usize) -> &Rope {
        match &self.rope_swa {
            Some(r) if self.layer_window(il).is_some() => r,
            _ => &self.rope,
        }
    }

    /// Whether layer `il` rotates q and k (cohere2: only its sliding layers, cohere2.cpp).
    pub fn layer_rotates(&self, il: usize) -> bool {
        !self.rope_swa_only || self.swa_layers.as_ref().is_some_and(|p| p.get(il).copied().unwrap_or(false))
    }

    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}
