//! Hugging Face model directories. TODO(helper).

#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error("TODO")]
    Todo,
}
