//! Errors of the architecture registry: each names the config key, metadata key or tensor
//! concerned and what was expected against what was found.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ArchError {
    /// Neither `architectures[0]` nor `model_type` (HF) / `general.architecture` (GGUF)
    /// names an architecture we support.
    #[error("unsupported architecture {found:?} (from {source_key}); supported: {supported}")]
    UnknownArchitecture { source_key: &'static str, found: String, supported: String },

    /// A required hyper-parameter is absent.
    #[error("missing {what} key `{key}`")]
    MissingKey { what: &'static str, key: String },

    /// A key is present with the wrong JSON / GGUF value type.
    #[error("{what} key `{key}`: expected {expected}, found {found}")]
    WrongType { what: &'static str, key: String, expected: &'static str, found: String },

    /// A hyper-parameter has an impossible value (zero heads, heads not dividing, ...).
    #[error("invalid hyper-parameter `{key}`: {reason}")]
    InvalidValue { key: String, reason: String },

    /// A feature of the model that llmtool does not convert (named), e.g. llama3 rope scaling.
    #[error("unsupported {what}: {detail}")]
    Unsupported { what: &'static str, detail: String },

    /// A tensor name the architecture does not know.
    #[error("unknown tensor `{name}` for architecture {arch}")]
    UnknownTensor { arch: &'static str, name: String },

    /// A tensor whose type, shape or byte length does not suit the requested fix.
    #[error("tensor `{name}`: cannot apply {fix}: {reason}")]
    BadTensor { name: String, fix: &'static str, reason: String },
}
