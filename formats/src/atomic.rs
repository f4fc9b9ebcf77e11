//! Crash-safe outputs. TODO(helper).

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("TODO")]
    Todo,
}
