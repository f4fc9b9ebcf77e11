//! `llmtool moe`: a Mixture of Experts from dense models, as mergekit-moe (mergekit 0.1.5,
//! `mergekit/moe/`) builds one: the base model's attention, norms and embeddings; each
//! layer's MLP of every expert model stacked as that layer's experts; a router per layer
//! from the experts' prompts (`gate_mode`).
//!
//! - [`config`]: the mergekit-moe YAML, checked before any tensor is read.
//! - [`inputs`]: the opened models and the shape/architecture checks.
//! - [`gates`]: the router weights (`cheap_embed`, `random`, `uniform_random`).
//! - [`hidden`]: `hidden` routers from the base model's hidden states, by our core.
//! - [`torch_rng`]: torch's CPU generator, for the seeded random gates.
//! - [`source`]: the MoE as a lazy tensor source in GGUF form (Mixtral: arch `llama` with
//!   `expert_count`), written as GGUF or HF by the usual writers.

pub mod config;
pub mod gates;
pub mod hidden;
pub mod inputs;
pub mod source;
pub mod torch_rng;

use std::path::PathBuf;

/// Errors building a MoE (configuration errors included).
#[derive(Debug, thiserror::Error)]
pub enum MoeError {
    #[error(transparent)]
    Config(#[from] config::MoeConfigError),
    #[error(transparent)]
    Resolve(#[from] crate::merge::config::ResolveError),
    #[error("{path}: {source}")]
    Open { path: PathBuf, source: Box<crate::model::ModelError> },
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("{path}: tensor {tensor} has shape {found:?}, but the base model's is {want:?}; experts must have the base model's shapes")]
    Shape { path: PathBuf, tensor: String, want: Vec<u64>, found: Vec<u64> },
    #[error("{path}: reading {tensor}: {reason}")]
    Read { path: PathBuf, tensor: String, reason: String },
    #[error("expert {expert}: prompt {prompt:?} tokenizes to nothing")]
    EmptyPrompt { expert: usize, prompt: String },
    #[error("tokenizer of the base model: {0}")]
    Tokenizer(String),
    #[error("gate_mode {mode}: {reason}")]
    Gates { mode: &'static str, reason: String },
}
