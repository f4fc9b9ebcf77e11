//! Tokenizer metadata: HF tokenizer files ⇄ GGUF `tokenizer.*` keys.
//!
//! - [`hf_to_gguf_metadata`]: tokenizer.json (+ tokenizer_config.json, config.json) → keys,
//!   as llama.cpp's `convert_hf_to_gguf.py` writes them.
//! - [`gguf_metadata_to_hf`]: keys → tokenizer.json / tokenizer_config.json /
//!   special_tokens_map.json that the `tokenizers` library loads.
//! - [`pre`]: the table of pre-tokenizer names and their JSON.
//! - [`TokenizerSummary`]: a short summary for `inspect`.
//!
//! Supported: byte-level BPE (`gpt2` model) and SentencePiece-style BPE with byte fallback
//! (`llama` model). WordPiece, Unigram and others are reported as unsupported.

mod error;
pub mod keys;
pub mod pre;
mod summary;
mod to_gguf;
mod to_hf;

pub use error::TokenizerMetaError;
pub use keys::TokenType;
pub use summary::TokenizerSummary;
pub use to_gguf::{hf_to_gguf_metadata, MAX_VOCAB};
pub use to_hf::{gguf_metadata_to_hf, HfTokenizerFiles};
