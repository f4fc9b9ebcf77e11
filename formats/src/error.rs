//! The crate-wide error: one variant per format module, each carrying its own typed error.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    Safetensors(#[from] crate::safetensors::SafetensorsError),
    #[error(transparent)]
    Hf(#[from] crate::hf::HfError),
    #[error(transparent)]
    Write(#[from] crate::atomic::WriteError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no tensor named '{0}'")]
    NoSuchTensor(String),
    #[error("{0}")]
    Other(String),
}
