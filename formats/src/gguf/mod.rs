//! GGUF v2/v3: a reader that validates the whole file at open and hands out tensor data as
//! zero-copy slices of a memory map, and a streaming writer.
//!
//! Format facts come from ggml `src/gguf.cpp` (the reference reader/writer) and gguf-py
//! (`gguf_reader.py`, `gguf_writer.py`); each module says which rule it takes from where.
//! - [`reader`]: the byte layout and every check made at open.
//! - [`limits`]: named caps on counts and lengths.
//! - [`layout`] / [`writer`]: header layout and padding, streaming output.
//!
//! Only little-endian files are supported (big-endian ones are detected and refused).

mod encode;
mod error;
mod file;
pub mod layout;
pub mod limits;
mod reader;
mod tensor_check;
pub mod writer;

pub use error::{GgufError, TensorProblem};
pub use file::GgufFile;
pub use layout::{GgufHeader, GgufLayout};
pub use writer::write_gguf;

/// Data alignment when `general.alignment` is absent (ggml `GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u64 = 32;
