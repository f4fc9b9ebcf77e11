//! Architecture registry: for each supported model family, the mapping between a Hugging
//! Face checkpoint (config.json + tensor names/layouts) and llama.cpp's GGUF (metadata keys +
//! tensor names/layouts), in both directions.
//!
//! llmtool's internal naming and layout is GGUF's, as llama.cpp's `convert_hf_to_gguf.py`
//! writes it; the facts (keys, their types and order, tensor names, the Q/K permutation,
//! Gemma's norm offset) come from that script and from gguf-py (`constants.py`,
//! `tensor_mapping.py`), and are checked against gguf-py by the judges in `tests/judges/`.
//!
//! | GGUF arch | HF architectures | notes |
//! |---|---|---|
//! | `llama` | LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM | Q/K rows permuted (RoPE pairs); Mixtral: experts stacked |
//! | `phi3` | Phi3ForCausalLM | fused `attn_qkv` and `ffn_up` (= gate ‖ up) kept fused |
//! | `gemma` | GemmaForCausalLM | norms stored as w + 1; always tied |
//! | `gemma2` | Gemma2ForCausalLM | + post-attention/post-FFN norms, soft-capping |
//! | `qwen2` | Qwen2ForCausalLM | q/k/v biases |
//! | `qwen3` | Qwen3ForCausalLM | per-head q/k norms, explicit head_dim |
//! | `qwen2moe` | Qwen2MoeForCausalLM | qwen2 attention; router, stacked experts, gated shared expert |
//! | `qwen3moe` | Qwen3MoeForCausalLM | qwen3 attention; router, stacked experts |
//! | `gemma3` | Gemma3ForCausalLM, Gemma3ForConditionalGeneration (text tower) | gemma2 norms + q/k norms, sliding/global layers |
//! | `command-r` | CohereForCausalLM | LayerNorm, parallel block, logit scale, tied; R+ q/k norms |
//! | `cohere2` | Cohere2ForCausalLM | as command-r, sliding-window layers (global ones without rope) |

/// `impl Arch` for a module holding two variants of one family (gemma/gemma2,
/// command-r/cohere2, qwen2moe/qwen3moe): the module provides `arch(v2)`,
/// `config_to_metadata(v2, …)`, `metadata_to_config(v2, …)`, `hf_to_gguf(v2, …)` and
/// `gguf_to_hf(v2, …)` — with `experts`, also `hf_expert_slice(v2, …)` and
/// `gguf_expert_names(v2, …)` — and `$v2` picks the second variant. Defined before the `mod`
/// lines so the modules see it.
macro_rules! two_variant_arch {
    ($t:ty, $v2:expr, $hf:expr) => {
        two_variant_arch!(@impl $t, $v2, $hf,);
    };
    ($t:ty, $v2:expr, $hf:expr, experts) => {
        two_variant_arch!(@impl $t, $v2, $hf,
            fn hf_expert_slice(&self, hf_name: &str, config: &Value) -> Result<Option<ExpertSlice>, ArchError> {
                hf_expert_slice($v2, hf_name, config)
            }
            fn gguf_expert_names(&self, gguf_name: &str, md: &Metadata) -> Result<Option<Vec<String>>, ArchError> {
                gguf_expert_names($v2, gguf_name, md)
            }
            fn hf_fused_experts(&self, hf_name: &str, config: &Value) -> Result<Option<FusedSlice>, ArchError> {
                hf_fused_experts($v2, hf_name, config)
            }
        );
    };
    (@impl $t:ty, $v2:expr, $hf:expr, $($extra:tt)*) => {
        impl Arch for $t {
            fn gguf_arch(&self) -> &'static str {
                arch($v2)
            }
            fn hf_architectures(&self) -> &'static [&'static str] {
                $hf
            }
            fn config_to_metadata(&self, config: &Value, md: &mut Metadata) -> Result<(), ArchError> {
                config_to_metadata($v2, config, md)
            }
            fn metadata_to_config(
                &self,
                md: &Metadata,
                tensors: &[TensorInfo],
                torch_dtype: &str,
            ) -> Result<Value, ArchError> {
                metadata_to_config($v2, md, tensors, torch_dtype)
            }
            fn hf_to_gguf_tensor(&self, hf_name: &str, config: &Value) -> Result<Option<TensorMap>, ArchError> {
                hf_to_gguf($v2, hf_name, config)
            }
            fn gguf_to_hf_tensor(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError> {
                gguf_to_hf($v2, gguf_name, md)
            }
            $($extra)*
        }
    };
}

mod cohere;
mod common;
mod error;
mod experts;
mod fix;
mod gemma;
mod gemma3;
mod hparams;
mod llama;
mod mixtral;
mod names;
mod phi3;
mod qwen2;
mod qwen3;
mod qwen_moe;
mod rope;
mod rope_factors;

pub use cohere::{Cohere2, CommandR};
pub use error::ArchError;
pub use experts::{is_router_tensor, ExpertSlice, FusedSlice};
pub use fix::apply_fix;
pub use gemma::{Gemma, Gemma2};
pub use gemma3::Gemma3;
pub use llama::Llama;
pub use llmtool_formats::GgmlType;
pub use phi3::Phi3;
pub use qwen2::Qwen2;
pub use qwen3::Qwen3;
pub use qwen_moe::{Qwen2Moe, Qwen3Moe};
pub use rope_factors::is_rope_factor_tensor;

use llmtool_formats::{Metadata, TensorInfo, TensorSource};

/// One model family.
pub trait Arch: Send + Sync {
    /// `general.architecture` value: "llama", "phi3", "gemma", "gemma2", "qwen2", "qwen3", "gemma3".
    fn gguf_arch(&self) -> &'static str;

    /// HF `architectures[0]` values handled by this family (the first is written back).
    fn hf_architectures(&self) -> &'static [&'static str];

    /// HF config.json -> GGUF metadata: `general.architecture`, `general.type` ("model"),
    /// `general.name` (basename of `_name_or_path`, when present), then the family's
    /// hyper-parameters with the keys, types and order of llama.cpp's converter.
    /// `general.file_type` and the `tokenizer.*` keys are not written here: the convert pass
    /// knows the output type, the tokenizer module the vocabulary.
    fn config_to_metadata(&self, config: &serde_json::Value, md: &mut Metadata) -> Result<(), ArchError>;

    /// GGUF metadata -> HF config.json (loadable by transformers' AutoConfig, 4.x and 5.x:
    /// legacy `rope_theta` / `rope_scaling` keys). `tensors` tells whether `output.weight`
    /// exists (else `tie_word_embeddings` is true) and gives the vocab size as a last resort.
    fn metadata_to_config(
        &self,
        md: &Metadata,
        tensors: &[TensorInfo],
        torch_dtype: &str,
    ) -> Result<serde_json::Value, ArchError>;

    /// HF tensor name -> GGUF name + the fix to apply to its bytes. `Ok(None)`: dropped on
    /// purpose (`rotary_emb.inv_freq`; `lm_head.weight` when embeddings are tied).
    fn hf_to_gguf_tensor(&self, hf_name: &str, config: &serde_json::Value) -> Result<Option<TensorMap>, ArchError>;

    /// GGUF tensor name -> HF name + the inverse fix.
    fn gguf_to_hf_tensor(&self, gguf_name: &str, md: &Metadata) -> Result<TensorMap, ArchError>;

    /// Tensors a GGUF holds that the HF checkpoint does not, computed from config.json (F32,
    /// 1-D), in the order llama.cpp's converter writes them (`generate_extra_tensors`, before
    /// the model's own): the rope factor tensors.
    fn extra_tensors(&self, _config: &serde_json::Value) -> Result<Vec<(String, Vec<f32>)>, ArchError> {
        Ok(Vec::new())
    }

    /// Completes a config.json made by [`Self::metadata_to_config`] with what only tensor data
    /// tells (the rope scaling behind rope factor tensors, which have no HF equivalent and
    /// are dropped).
    fn config_from_tensors(
        &self,
        _md: &Metadata,
        _tensors: &dyn TensorSource,
        _config: &mut serde_json::Value,
    ) -> Result<(), ArchError> {
        Ok(())
    }

    /// Mixture of Experts: for an HF tensor that is one expert's matrix, where it goes in the
    /// GGUF tensor stacking the experts (see `experts.rs`); `None` for every other tensor,
    /// which [`Self::hf_to_gguf_tensor`] maps.
    fn hf_expert_slice(&self, _hf_name: &str, _config: &serde_json::Value) -> Result<Option<ExpertSlice>, ArchError> {
        Ok(None)
    }

    /// Mixture of Experts saved by transformers 5: for an HF tensor holding every expert of a
    /// layer (`mlp.experts.gate_up_proj`, `mlp.experts.down_proj`), the stacked GGUF tensors
    /// it holds as row parts (see `experts.rs`); `None` for every other tensor.
    fn hf_fused_experts(&self, _hf_name: &str, _config: &serde_json::Value) -> Result<Option<FusedSlice>, ArchError> {
        Ok(None)
    }

    /// Mixture of Experts: for a GGUF tensor stacking the experts, the HF names of its
    /// experts' matrices in order (GGUF → HF unstacks it); `None` for every other tensor.
    fn gguf_expert_names(&self, _gguf_name: &str, _md: &Metadata) -> Result<Option<Vec<String>>, ArchError> {
        Ok(None)
    }

    /// For an HF tensor this family skips as a whole module that is not part of the model
    /// converted (e.g. the vision tower of a multimodal wrapper, as llama.cpp's text GGUF
    /// omits it): that module's name prefix, for the user to be told. `None` otherwise.
    fn skipped_prefix(&self, _hf_name: &str) -> Option<String> {
        None
    }
}

/// Where a tensor goes and what to do to its bytes on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMap {
    pub name: String,
    pub fix: TensorFix,
}

/// A layout fix (see [`apply_fix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorFix {
    Copy,
    /// Llama Q/K: HF stores the rotary halves (NeoX style), llama.cpp interleaved pairs
    /// (convert_hf_to_gguf.py `LlamaModel.permute`). `n_head` is the head count *of this
    /// tensor*: `num_attention_heads` for Q, `num_key_value_heads` for K (GQA) — the mapper
    /// fills it in, so the fix needs nothing else.
    PermuteQk {
        n_head: u32,
    },
    /// The inverse of `PermuteQk` with the same `n_head`.
    UnpermuteQk {
        n_head: u32,
    },
    /// Gemma RMSNorm computes x * (1 + w): llama.cpp stores w + 1 (GemmaModel.modify_tensors).
    AddOne,
    SubtractOne,
}

impl TensorFix {
    /// The element type `apply_fix` produces from a tensor of type `ty`: the norm offsets
    /// compute in and return F32; permutations keep the type.
    pub fn output_type(&self, ty: GgmlType) -> GgmlType {
        match self {
            TensorFix::AddOne | TensorFix::SubtractOne => GgmlType::F32,
            _ => ty,
        }
    }

    /// The fix that undoes this one.
    pub fn inverse(self) -> TensorFix {
        match self {
            TensorFix::Copy => TensorFix::Copy,
            TensorFix::PermuteQk { n_head } => TensorFix::UnpermuteQk { n_head },
            TensorFix::UnpermuteQk { n_head } => TensorFix::PermuteQk { n_head },
            TensorFix::AddOne => TensorFix::SubtractOne,
            TensorFix::SubtractOne => TensorFix::AddOne,
        }
    }
}

static LLAMA: Llama = Llama;
static PHI3: Phi3 = Phi3;
static GEMMA: Gemma = Gemma;
static GEMMA2: Gemma2 = Gemma2;
static QWEN2: Qwen2 = Qwen2;
static QWEN3: Qwen3 = Qwen3;
static GEMMA3: Gemma3 = Gemma3;
static COMMAND_R: CommandR = CommandR;
static COHERE2: Cohere2 = Cohere2;
static QWEN2MOE: Qwen2Moe = Qwen2Moe;
static QWEN3MOE: Qwen3Moe = Qwen3Moe;
static ALL: [&'static dyn Arch; 11] =
    [&LLAMA, &PHI3, &GEMMA, &GEMMA2, &QWEN2, &QWEN3, &GEMMA3, &COMMAND_R, &COHERE2, &QWEN2MOE, &QWEN3MOE];

/// Every supported family.
pub fn supported() -> &'static [&'static dyn Arch] {
    &ALL
}

fn supported_list() -> String {
    ALL.iter()
        .map(|a| format!("{} ({})", a.gguf_arch(), a.hf_architectures().join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The family of an HF config: by `architectures[0]`, else by `model_type` (matched against
/// the GGUF arch names, which equal transformers' model types for these families, plus
/// "mistral" and "cohere" = `command-r`).
pub fn from_hf_config(config: &serde_json::Value) -> Result<&'static dyn Arch, ArchError> {
    if let Some(first) = config.get("architectures").and_then(|a| a.as_array()).and_then(|a| a.first()) {
        let name = first.as_str().ok_or_else(|| ArchError::WrongType {
            what: "config.json",
            key: "architectures[0]".into(),
            expected: "a string",
            found: first.to_string(),
        })?;
        return ALL.iter().copied().find(|a| a.hf_architectures().contains(&name)).ok_or_else(|| {
            ArchError::UnknownArchitecture {
                source_key: "config.json architectures[0]",
                found: name.into(),
                supported: supported_list(),
            }
        });
    }
    match config.get("model_type") {
        Some(serde_json::Value::String(mt)) => {
            let mt = match mt.as_str() {
                "mistral" | "mixtral" => "llama",
                "qwen2_moe" => "qwen2moe",
                "qwen3_moe" => "qwen3moe",
                "gemma3_text" => "gemma3",
                "cohere" => "command-r",
                other => other,
            };
            ALL.iter().copied().find(|a| a.gguf_arch() == mt).ok_or_else(|| ArchError::UnknownArchitecture {
                source_key: "config.json model_type",
                found: mt.into(),
                supported: supported_list(),
            })
        }
        Some(other) => Err(ArchError::WrongType {
            what: "config.json",
            key: "model_type".into(),
            expected: "a string",
            found: other.to_string(),
        }),
        None => Err(ArchError::MissingKey { what: "config.json", key: "architectures (or model_type)".into() }),
    }
}

/// The family of a GGUF file, by `general.architecture`.
pub fn from_gguf_metadata(md: &Metadata) -> Result<&'static dyn Arch, ArchError> {
    let arch = hparams::md_str_opt(md, "general.architecture")?
        .ok_or_else(|| ArchError::MissingKey { what: "GGUF metadata", key: "general.architecture".into() })?;
    ALL.iter().copied().find(|a| a.gguf_arch() == arch).ok_or_else(|| ArchError::UnknownArchitecture {
        source_key: "general.architecture",
        found: arch.into(),
        supported: supported_list(),
    })
}
