//! safetensors: single files and sharded sets (`model.safetensors.index.json`), read over
//! mmap and validated completely at open; written streaming, one tensor at a time.
//!
//! Format (huggingface/safetensors `docs`, `safetensors/src/tensor.rs`): an 8-byte
//! little-endian header length N, N bytes of UTF-8 JSON (`{"__metadata__": {str: str},
//! NAME: {"dtype", "shape", "data_offsets": [begin, end]}}`, padded with spaces to a multiple
//! of 8 by writers), then the data buffer; offsets are relative to the buffer and the tensors
//! must tile it exactly.

mod error;
mod header;
mod read;
mod size;
mod write;

pub use error::SafetensorsError;
pub use header::MAX_HEADER_BYTES;
pub use read::{SafetensorsSet, Shard};
/// The upstream `safetensors` crate, for differential tests and the fuzz target.
#[doc(hidden)]
pub use safetensors as upstream;
pub use safetensors::Dtype;
pub use size::parse_size;
pub use write::{header_bytes, shard_file_name, write_safetensors, write_sharded, INDEX_FILE_NAME, SINGLE_FILE_NAME};

/// Name, dtype and row-major shape of one tensor of a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
}

impl StTensor {
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: Vec<u64>) -> Self {
        StTensor { name: name.into(), dtype, shape }
    }

    /// Bytes of the data: `product(shape) * bitsize / 8`; `None` on overflow or when the
    /// bit count is not a whole number of bytes (sub-byte dtypes F4/F6).
    pub fn n_bytes(&self) -> Option<u64> {
        n_bytes(self.dtype, &self.shape)
    }
}

pub(crate) fn n_bytes(dtype: Dtype, shape: &[u64]) -> Option<u64> {
    let n = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
    let bits = n.checked_mul(dtype.bitsize() as u64)?;
    (bits % 8 == 0).then_some(bits / 8)
}

/// The GGML type holding the same elements, for the dtypes GGUF has (F32, F16, BF16, F64,
/// I8, I16, I32, I64); `None` for the others (BOOL, unsigned, FP8/FP4/FP6, C64).
pub fn ggml_type(dtype: Dtype) -> Option<crate::GgmlType> {
    use crate::GgmlType as G;
    Some(match dtype {
        Dtype::F32 => G::F32,
        Dtype::F16 => G::F16,
        Dtype::BF16 => G::BF16,
        Dtype::F64 => G::F64,
        Dtype::I8 => G::I8,
        Dtype::I16 => G::I16,
        Dtype::I32 => G::I32,
        Dtype::I64 => G::I64,
        _ => return None,
    })
}

/// The safetensors dtype for a GGML type, when there is one (the inverse of [`ggml_type`]).
pub fn dtype_for_ggml(ty: crate::GgmlType) -> Option<Dtype> {
    use crate::GgmlType as G;
    Some(match ty {
        G::F32 => Dtype::F32,
        G::F16 => Dtype::F16,
        G::BF16 => Dtype::BF16,
        G::F64 => Dtype::F64,
        G::I8 => Dtype::I8,
        G::I16 => Dtype::I16,
        G::I32 => Dtype::I32,
        G::I64 => Dtype::I64,
        _ => return None,
    })
}

/// Extensions of PyTorch pickle checkpoints, which llmtool refuses to load (unpickling runs
/// arbitrary code).
pub const PICKLE_EXTENSIONS: &[&str] = &["bin", "pt", "pth", "ckpt", "pkl"];

/// Advice given when a pickle checkpoint is met.
pub const PICKLE_ADVICE: &str = "PyTorch pickle checkpoints are not read (loading them can run \
arbitrary code); convert to safetensors first, e.g. with transformers \
`AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out, safe_serialization=True)`";

/// Whether `path` looks like a pickle checkpoint by its extension.
pub fn is_pickle_path(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| PICKLE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}
