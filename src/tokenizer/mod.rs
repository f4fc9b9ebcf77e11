//! Tokenizer metadata: HF tokenizer files ⇄ GGUF `tokenizer.*` keys.
//!
//! - [`hf_to_gguf_metadata`]: tokenizer.json (+ tokenizer_config.json, config.json) → keys,
//!   as llama.cpp's `convert_hf_to_gguf.py` writes them.
//! - [`gguf_metadata_to_hf`]: keys → tokenizer.json / tokenizer_config.json /
//!   special_tokens_map.json that the `tokenizers` library loads.
//! - [`pre`]: the table of pre-tokenizer names and their JSON.
//! - [`TokenizerSummary`]: a short summary for `inspect`.
//!
//! - [`Tokenizer`]: encode/decode from GGUF tokenizer metadata, token-identical to llama.cpp.
//! - [`load_tokenizer`]: the tokenizer of a GGUF file or HF directory (no weights needed).
//!
//! Supported: byte-level BPE (`gpt2` model) and SentencePiece-style BPE with byte fallback
//! (`llama` model). WordPiece, Unigram and others are reported as unsupported.

mod bpe;
mod error;
pub mod keys;
mod load;
pub mod pre;
pub mod split;
mod spm;
mod spm_model;
mod summary;
mod to_gguf;
mod to_hf;
mod unicode;
mod vocab;

pub use error::{TokenizerError, TokenizerMetaError};
pub use keys::TokenType;
pub use load::{load_tokenizer, load_tokenizer_metadata, TokenizerLoadError};
pub use split::PreSplit;
pub use spm_model::{apply_spm_model_scores, read_spm_pieces, SpmPiece};
pub use summary::TokenizerSummary;
pub use to_gguf::{apply_chat_template_file, hf_to_gguf_metadata, MAX_VOCAB};
pub use to_hf::{gguf_metadata_to_hf, HfTokenizerFiles};
pub use vocab::{Tokenizer, TokenizerKind};
