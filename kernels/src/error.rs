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
    /// A byte buffer whose length is not a whole number of blocks (elements for plain types).
    #[error("{ty}: {found} bytes is not a multiple of the {type_size}-byte block")]
    PartialBlock { ty: GgmlType, found: usize, type_size: usize },
    /// An element count whose byte size does not fit in `usize`.
    #[error("{ty}: {n_elements} elements overflow the addressable byte size")]
    TooLarge { ty: GgmlType, n_elements: usize },
    /// A bitsandbytes buffer (packed codes, absmax, code table) of the wrong length.
    #[error("bitsandbytes: expected {expected} {what}, got {found}")]
    BnbLength { what: &'static str, expected: usize, found: usize },
    /// A type whose quantizer needs an importance matrix (ggml `ggml_quantize_requires_imatrix`).
    #[error("{ty} needs an importance matrix (imatrix) to quantize")]
    NeedsImatrix { ty: GgmlType },
    /// Importance weights whose length is not the row length.
    #[error("{ty}: {found} importance weights for rows of {n_per_row}")]
    ImatrixLength { ty: GgmlType, n_per_row: usize, found: usize },
}

impl KernelError {
    /// Checks that `src` holds exactly the bytes of `n_elements` elements of `ty`.
    pub(crate) fn check_len(ty: GgmlType, n_elements: usize, src_len: usize) -> Result<(), KernelError> {
        let block_size = ty.block_size();
        if !n_elements.is_multiple_of(block_size) {
            return Err(KernelError::RaggedBlocks { ty, n_elements, block_size });
        }
        let expected =
            (n_elements / block_size).checked_mul(ty.type_size()).ok_or(KernelError::TooLarge { ty, n_elements })?;
        if expected != src_len {
            return Err(KernelError::ByteLength { ty, n_elements, expected, found: src_len });
        }
        Ok(())
    }

    /// Number of elements in `len` bytes of `ty`, or an error if `len` is not whole blocks.
    pub(crate) fn elements_in(ty: GgmlType, len: usize) -> Result<usize, KernelError> {
        let type_size = ty.type_size();
        if !len.is_multiple_of(type_size) {
            return Err(KernelError::PartialBlock { ty, found: len, type_size });
        }
        (len / type_size).checked_mul(ty.block_size()).ok_or(KernelError::TooLarge { ty, n_elements: usize::MAX })
    }
}
