//! Errors of the GPU path.

use crate::GgmlType;

/// What can go wrong when running a block codec on the GPU.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuError {
    /// No Vulkan adapter (no driver, no device); carries wgpu's message.
    #[error("no GPU adapter found (wgpu, Vulkan backend): {0}")]
    NoAdapter(String),
    /// The adapter was found but refused to open a device.
    #[error("GPU device request on adapter `{adapter}` failed: {message}")]
    RequestDevice { adapter: String, message: String },
    /// Mapping a read-back buffer failed.
    #[error("mapping a GPU read-back buffer of {bytes} bytes failed: {message}")]
    BufferMap { bytes: u64, message: String },
    /// Waiting for the device failed (device lost, timeout).
    #[error("waiting for the GPU failed: {0}")]
    Poll(String),
    /// A shader or pipeline failed validation (a bug, or a driver without a needed limit).
    #[error("GPU pipeline `{label}` failed validation: {message}")]
    Pipeline { label: String, message: String },
    /// The type/operation pair has no GPU kernel.
    #[error("{op} of {ty} has no GPU kernel (GPU types: {supported})")]
    Unsupported { ty: GgmlType, op: &'static str, supported: String },
    /// The input is not a whole number of blocks.
    #[error("{op} {ty}: input of {len} {unit} is not a multiple of {multiple}")]
    BadLength { ty: GgmlType, op: &'static str, len: usize, unit: &'static str, multiple: usize },
    /// The CPU reference failed on a block the GPU leaves to it (a bug: the block is whole).
    #[error("{op} {ty}: CPU reference for block {block} failed: {message}")]
    Reference { ty: GgmlType, op: &'static str, block: usize, message: String },
    /// The device limits leave no room for even one block group in a storage binding.
    #[error("{ty}: a block group needs {needed} bytes but the device binds at most {limit} bytes")]
    LimitTooSmall { ty: GgmlType, needed: u64, limit: u64 },
}
