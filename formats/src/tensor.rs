//! Tensor descriptions and the lazy [`TensorSource`] every pass and writer works on.

use std::borrow::Cow;

use crate::{FormatError, GgmlType};

/// Name, element type and dimensions of one tensor.
///
/// `ne` is in **GGUF order**: `ne[0]` is the contiguous (fastest-varying) dimension, i.e. the
/// row length. A safetensors/PyTorch shape `[rows, cols]` is `ne = [cols, rows]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    pub ne: Vec<u64>,
}

impl TensorInfo {
    pub fn new(name: impl Into<String>, ty: GgmlType, ne: Vec<u64>) -> Self {
        TensorInfo { name: name.into(), ty, ne }
    }

    /// From a row-major (PyTorch/safetensors) shape.
    pub fn from_shape(name: impl Into<String>, ty: GgmlType, shape: &[u64]) -> Self {
        TensorInfo { name: name.into(), ty, ne: shape.iter().rev().copied().collect() }
    }

    /// Row-major (PyTorch/safetensors) shape: `ne` reversed.
    pub fn shape(&self) -> Vec<u64> {
        self.ne.iter().rev().copied().collect()
    }

    /// Number of elements, `None` on overflow.
    pub fn n_elements(&self) -> Option<u64> {
        self.ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Bytes of the tensor data, `None` on overflow or when `ne[0]` is not a multiple of the
    /// type's block size.
    pub fn n_bytes(&self) -> Option<u64> {
        let row = self.ty.row_bytes(self.ne.first().copied().unwrap_or(1))?;
        self.ne.iter().skip(1).try_fold(row, |acc, &d| acc.checked_mul(d))
    }
}

/// A lazy set of tensors: their descriptions up front, the bytes of one tensor on demand
/// (borrowed from a memory map when possible, owned when computed).
pub trait TensorSource: Send + Sync {
    /// Descriptions in the source's order.
    fn tensor_infos(&self) -> &[TensorInfo];

    /// The raw bytes of one tensor, laid out as its `TensorInfo` says (GGML block bytes or
    /// little-endian elements, `ne[0]` fastest).
    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError>;

    /// A hint that the tensor's bytes are not needed again soon: memory-mapped sources drop
    /// its pages from the resident set (see `mapped.rs`). Bytes handed out stay valid.
    fn release(&self, _name: &str) {}

    fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_infos().iter().find(|t| t.name == name)
    }
}
