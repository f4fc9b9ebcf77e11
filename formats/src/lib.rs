//! llmtool-formats: bytes on disk ⇄ tensors + metadata.
//!
//! - [`gguf`]: GGUF v2/v3 reader (mmap, validated at open) and streaming writer.
//! - [`safetensors`]: single-file and sharded safetensors, read over mmap, written streaming.
//! - [`hf`]: Hugging Face model directories (config, tokenizer files, weights).
//! - [`atomic`]: crash-safe output files and directories.
//!
//! Tensors are described by [`TensorInfo`] in GGUF's dimension order and handed out by a
//! [`TensorSource`]. No math beyond what a format needs; no GPU.

pub mod atomic;
pub mod error;
pub mod gguf;
pub mod hf;
pub mod imatrix;
mod mapped;
pub mod metadata;
pub mod safetensors;
pub mod tensor;

pub use error::FormatError;
pub use llmtool_kernels::GgmlType;
pub use metadata::{MetaArray, MetaValue, Metadata, ValueType};
pub use tensor::{TensorInfo, TensorSource};
