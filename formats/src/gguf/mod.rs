//! GGUF v2/v3. TODO(helper): reader + writer.

/// Errors reading or writing GGUF.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("TODO")]
    Todo,
}
