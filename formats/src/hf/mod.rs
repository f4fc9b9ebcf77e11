//! Hugging Face model directories: `config.json`, generation config, tokenizer files and
//! safetensors weights (one file or sharded), read with every file validated; the JSON files
//! written byte-for-byte as transformers' `save_pretrained` writes them.

mod bnb;
mod config;
mod dir;
mod pyjson;

pub use bnb::{BnbQuant, BnbTensor, HfWeights};
pub use config::{
    config_bool, config_f64, config_opt_bool, config_opt_f64, config_opt_usize, config_usize, BaseHparams,
};
pub use dir::{write_hf_files, write_json_like_python, HfDir, HfFiles, MAX_EXTRA_FILE_BYTES};
pub use pyjson::{python_float_repr, to_python_json};

use std::path::PathBuf;

/// Errors reading or writing an HF model directory.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{dir}: config.json is missing (an HF model directory needs one)")]
    MissingConfig { dir: PathBuf },
    #[error("{file}: invalid JSON: {message} (line {line}, column {column})")]
    Json { file: PathBuf, line: usize, column: usize, message: String },
    #[error("{file}: expected a JSON object at the top level")]
    NotAnObject { file: PathBuf },
    #[error("{dir}: only PyTorch pickle weights found ({}); {}", found.join(", "), crate::safetensors::PICKLE_ADVICE)]
    PickleOnly { dir: PathBuf, found: Vec<String> },
    #[error("{dir}: no weights found (expected model.safetensors or model.safetensors.index.json)")]
    MissingWeights { dir: PathBuf },
    #[error("{dir}: several *.safetensors files and no index ({}); cannot tell which are the weights", found.join(", "))]
    AmbiguousWeights { dir: PathBuf, found: Vec<String> },
    #[error(transparent)]
    Weights(#[from] crate::safetensors::SafetensorsError),
    #[error("config.json: '{key}' is missing")]
    MissingKey { key: String },
    #[error("config.json: '{key}' = {found}, expected {expected}")]
    BadKey { key: String, expected: String, found: String },
    #[error("config.json: {message}")]
    Inconsistent { message: String },
    /// A bitsandbytes-quantized weight or one of its companion tensors that cannot be read.
    #[error("bitsandbytes tensor '{tensor}': {message}")]
    Bnb { tensor: String, message: String },
}
