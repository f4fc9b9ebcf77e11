use crate::GgmlType;

/// Errors of the kernels crate: wrong buffer sizes or a type without a codec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    #[error("no {op} kernel for tensor type {ty}")]
    Unsupported { ty: GgmlType, op: &'static str },
    #[error("{ty}: {n_elements} elements is not a multiple of the block size {block_size}")]
    RaggedBlocks { ty: GgmlType, n_elements: usize, block_size: usize },
    #[error("{ty}: expected {expected} bytes for {n_elements} elements, got {found}")]
    ByteLength { ty: GgmlType, n_elements: usize, expected: usize, found: usize },
}
