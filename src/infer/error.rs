//! Errors of the inference core.

use llmtool_formats::{FormatError, GgmlType};
use llmtool_kernels::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("GGUF metadata: missing key '{0}'")]
    MissingKey(String),
    #[error("GGUF metadata: key '{key}': expected {expected}, found {found}")]
    BadKey { key: String, expected: &'static str, found: String },
    #[error("architecture '{0}' has no forward pass (supported: llama (incl. Mixtral), phi3, gemma, gemma2, gemma3, qwen2, qwen3, qwen2moe, qwen3moe, command-r, cohere2)")]
    UnsupportedArch(String),
    #[error("{what}: {detail}")]
    Unsupported { what: &'static str, detail: String },
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    #[error("tensor '{name}': expected shape {expected:?} (GGUF order), found {found:?}")]
    Shape { name: String, expected: Vec<u64>, found: Vec<u64> },
    #[error("tensor '{name}': type {ty:?} cannot be used by the inference core")]
    TensorType { name: String, ty: GgmlType },
    #[error("token id {id} at index {index} is out of range (vocabulary of {n_vocab})")]
    TokenOutOfRange { id: u32, index: usize, n_vocab: usize },
    #[error("KV cache overflow: positions {pos}..{end} do not fit in a cache of {cap} positions")]
    CacheOverflow { pos: usize, end: usize, cap: usize },
    #[error("forward at position {pos}, but the KV cache holds only {len} positions (positions must continue)")]
    CacheGap { pos: usize, len: usize },
    #[error("KV cache was made for another model geometry ({found}); expected {expected}")]
    CacheGeometry { expected: String, found: String },
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("tensor '{name}': {source}")]
    Kernel { name: String, source: KernelError },
}
