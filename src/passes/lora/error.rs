//! Errors of the LoRA pass: each names the adapter file and the key or tensor concerned.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error(
        "{path}: not a LoRA adapter (expected a PEFT adapter directory with adapter_config.json, or a .gguf LoRA file)"
    )]
    UnknownAdapter { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: key '{key}': {reason}")]
    Config { path: PathBuf, key: String, reason: String },
    #[error("{path}: key '{key}' = {value} changes the merged weights in a way llmtool does not implement; refusing rather than merging wrongly")]
    Unsupported { path: PathBuf, key: String, value: String },
    #[error("{path}: tensor '{tensor}': {reason}")]
    Tensor { path: PathBuf, tensor: String, reason: String },
    #[error("{path}: {source}")]
    Format { path: PathBuf, source: Box<llmtool_formats::FormatError> },
    #[error("{path}: module '{module}' (tensor '{tensor}'): {reason}")]
    Target { path: PathBuf, module: String, tensor: String, reason: String },
    #[error("base tensor '{tensor}': {reason}")]
    Base { tensor: String, reason: String },
}
