//! Checks on one tensor description, shared by the reader (on what the file says) and the
//! header layout (on what a caller wants written), so both accept exactly the same tensors.
//!
//! The rules follow ggml `src/gguf.cpp` `gguf_init_from_reader`: name shorter than
//! `GGML_MAX_NAME`, at most `GGML_MAX_DIMS` dimensions, every dimension a non-negative i64
//! (zero is allowed: an empty tensor has no data), the element count below `INT64_MAX`,
//! `ne[0]` a multiple of the type's block size, the byte size representable.

use super::error::TensorProblem;
use super::limits::{MAX_DIMS, MAX_TENSOR_NAME_LEN};
use crate::GgmlType;

/// Largest dimension ggml can hold (`int64_t ne[4]`).
pub const MAX_DIM: u64 = i64::MAX as u64;

pub(crate) fn check_name(name: &str) -> Result<(), TensorProblem> {
    if name.len() > MAX_TENSOR_NAME_LEN {
        return Err(TensorProblem::NameTooLong { len: name.len(), max: MAX_TENSOR_NAME_LEN });
    }
    Ok(())
}

/// Validates the shape against the type and returns the tensor's size in bytes.
pub(crate) fn check_shape(ty: GgmlType, ne: &[u64]) -> Result<u64, TensorProblem> {
    if ne.len() > MAX_DIMS {
        return Err(TensorProblem::TooManyDims { found: ne.len() as u64, max: MAX_DIMS });
    }
    for (index, &d) in ne.iter().enumerate() {
        if d > MAX_DIM {
            return Err(TensorProblem::DimTooLarge { index, found: d, max: MAX_DIM });
        }
    }
    // gguf.cpp: a zero-element tensor is trivially representable; otherwise the product
    // must stay below INT64_MAX.
    if !ne.contains(&0) {
        let n = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        match n {
            Some(n) if n < MAX_DIM => {}
            _ => return Err(TensorProblem::ElementCountOverflow { ne: ne.to_vec() }),
        }
    }
    let ne0 = ne.first().copied().unwrap_or(1);
    let block = ty.block_size() as u64;
    if ne0 % block != 0 {
        return Err(TensorProblem::RowNotBlockMultiple { ty, ne0, block });
    }
    let row = ty.row_bytes(ne0);
    let bytes = row.and_then(|r| ne.iter().skip(1).try_fold(r, |acc, &d| acc.checked_mul(d)));
    match bytes {
        // Must also be addressable as a slice on this machine.
        Some(b) if usize::try_from(b).is_ok() && b <= MAX_DIM => Ok(b),
        _ => Err(TensorProblem::SizeOverflow { ty, ne: ne.to_vec() }),
    }
}

/// The ggml type for a GGUF type id, naming removed ids in the error.
pub(crate) fn type_from_id(id: u32) -> Result<GgmlType, TensorProblem> {
    GgmlType::from_id(id).ok_or_else(|| TensorProblem::UnknownType {
        id,
        removed: super::limits::REMOVED_TYPE_IDS.iter().find(|(rid, _)| *rid == id).map(|(_, name)| *name),
    })
}
