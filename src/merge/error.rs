//! Errors of planning and running a merge.

use std::path::PathBuf;

use super::config::{ConfigError, ResolveError};
use super::methods::MergeError;

#[derive(Debug, thiserror::Error)]
pub enum MergeRunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: Box<crate::model::ModelError> },
    #[error("{path}: tensor '{tensor}': {reason}")]
    Read { path: PathBuf, tensor: String, reason: String },
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Merge(#[from] MergeError),
}
