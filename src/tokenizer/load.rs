//! [`load_tokenizer`]: the tokenizer of a GGUF file or an HF directory, without the weights.
//!
//! A GGUF file gives its `tokenizer.ggml.*` keys; an HF directory its tokenizer.json (with
//! tokenizer_config.json and config.json when present), mapped to those keys by
//! [`hf_to_gguf_metadata`] (and a tokenizer.model's scores) exactly as `convert` maps them. A directory holding only tokenizer
//! files is enough, so a conversion's tokenizer can be checked before any weights exist.

use std::path::{Path, PathBuf};

use llmtool_formats::gguf::GgufFile;
use llmtool_formats::Metadata;
use serde_json::Value;

use super::{apply_spm_model_scores, hf_to_gguf_metadata, Tokenizer, TokenizerError, TokenizerMetaError};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerLoadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid JSON: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Gguf { path: PathBuf, message: String },
    #[error("{dir}: no tokenizer.json (an HF directory needs one to be tokenized with)")]
    NoTokenizerJson { dir: PathBuf },
    #[error("{path}: {source}")]
    Meta { path: PathBuf, source: TokenizerMetaError },
    #[error("{path}: {source}")]
    Tokenizer { path: PathBuf, source: TokenizerError },
}

fn read_json(path: &Path) -> Result<Value, TokenizerLoadError> {
    let bytes = std::fs::read(path).map_err(|source| TokenizerLoadError::Io { path: path.into(), source })?;
    serde_json::from_slice(&bytes).map_err(|e| TokenizerLoadError::Json { path: path.into(), message: e.to_string() })
}

/// The GGUF-form tokenizer metadata of a GGUF file or HF directory.
pub fn load_tokenizer_metadata(path: &Path) -> Result<Metadata, TokenizerLoadError> {
    if path.is_dir() {
        let tj = path.join("tokenizer.json");
        if !tj.is_file() {
            return Err(TokenizerLoadError::NoTokenizerJson { dir: path.into() });
        }
        let tokenizer_json = read_json(&tj)?;
        let optional = |name: &str| {
            let p = path.join(name);
            p.is_file().then(|| read_json(&p)).transpose()
        };
        let tokenizer_config = optional("tokenizer_config.json")?;
        let config = optional("config.json")?;
        let mut md = Metadata::new();
        hf_to_gguf_metadata(&tokenizer_json, tokenizer_config.as_ref(), config.as_ref(), &mut md)
            .map_err(|source| TokenizerLoadError::Meta { path: tj, source })?;
        let spm = path.join("tokenizer.model");
        if spm.is_file() {
            apply_spm_model_scores(&spm, &mut md).map_err(|source| TokenizerLoadError::Meta { path: spm, source })?;
        }
        return Ok(md);
    }
    let file =
        GgufFile::open(path).map_err(|e| TokenizerLoadError::Gguf { path: path.into(), message: e.to_string() })?;
    Ok(file.metadata)
}

/// The tokenizer of a GGUF file or HF directory (see the module doc).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, TokenizerLoadError> {
    let md = load_tokenizer_metadata(path)?;
    Tokenizer::from_gguf_metadata(&md).map_err(|source| TokenizerLoadError::Tokenizer { path: path.into(), source })
}
