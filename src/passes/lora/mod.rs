//! LoRA merge: adapters (PEFT safetensors dirs or llama.cpp GGUF LoRA files) folded into a
//! base model's weights, W' = W + s·B·A per targeted tensor, lazily, tensor by tensor.
//!
//! * [`peft`] reads a PEFT adapter dir (adapter_config.json + adapter_model.safetensors) into
//!   low-rank factors per HF module, with PEFT's scaling rules.
//! * [`gguf_adapter`] reads a llama.cpp GGUF LoRA (already in GGUF names and layouts).
//! * [`map`] turns HF modules into edits of GGUF-named base tensors (Q/K permutation, shapes).
//! * [`merge`] is the [`TensorSource`](llmtool_formats::TensorSource) wrapper that applies the
//!   edits in f32 and writes the result back in the base tensor's type.
//! * [`extract`] is the inverse: an adapter from two models by truncated SVD, written by
//!   [`extract_write`] as a PEFT dir or a GGUF LoRA.

pub mod error;
pub mod extract;
pub mod extract_write;
pub mod gguf_adapter;
pub mod map;
pub mod merge;
pub mod peft;

pub use error::LoraError;
pub use gguf_adapter::GgufAdapter;
pub use map::{plan_edits, Edit, EditKind, LowRank};
pub use merge::LoraMerged;
pub use peft::{PeftAdapter, PeftModule};

use std::path::Path;

/// An adapter in either supported format.
pub enum Adapter {
    Peft(PeftAdapter),
    Gguf(GgufAdapter),
}

impl Adapter {
    /// A directory is a PEFT adapter (or a path to its adapter_config.json); a `.gguf` file a
    /// llama.cpp LoRA adapter.
    pub fn open(path: &Path) -> Result<Adapter, LoraError> {
        if path.is_dir() {
            return Ok(Adapter::Peft(PeftAdapter::open(path)?));
        }
        if path.file_name().is_some_and(|n| n == "adapter_config.json") {
            return Ok(Adapter::Peft(PeftAdapter::open(path.parent().unwrap_or(Path::new(".")))?));
        }
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            return Ok(Adapter::Gguf(GgufAdapter::open(path)?));
        }
        Err(LoraError::UnknownAdapter { path: path.to_path_buf() })
    }
}

/// `src` (row-major `rows × cols`) transposed to `cols × rows`.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = src[i * cols + j];
        }
    }
    out
}
