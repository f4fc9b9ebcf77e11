//! safetensors. TODO(helper).

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("TODO")]
    Todo,
}
