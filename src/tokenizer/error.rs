//! Errors of the tokenizer metadata conversion: each names the file (or "GGUF metadata"),
//! the key, and what was expected versus found.

/// Where a bad value came from.
pub const TOKENIZER_JSON: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
pub const CONFIG_JSON: &str = "config.json";
pub const TOKENIZER_MODEL: &str = "tokenizer.model";
pub const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";
pub const GGUF: &str = "GGUF metadata";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenizerMetaError {
    #[error("{file}: missing {key}")]
    Missing { file: &'static str, key: String },
    #[error("{file}: {key}: expected {expected}, found {found}")]
    BadValue { file: &'static str, key: String, expected: String, found: String },
    #[error("tokenizer.json: model.type {found:?} is not supported (supported: BPE, with or without byte_fallback)")]
    UnsupportedHfModel { found: String },
    #[error("tokenizer.json: pre_tokenizer not recognized: {found} (known: {known})")]
    UnknownPreTokenizer { found: String, known: String },
    #[error("GGUF metadata: tokenizer.ggml.model {found:?} is not supported (supported: gpt2, llama)")]
    UnsupportedGgufModel { found: String },
    #[error("GGUF metadata: tokenizer.ggml.pre {found:?} is not supported for model gpt2 (known: {known})")]
    UnknownPreName { found: String, known: String },
    #[error("{file}: token id {id} is given to both {first:?} and {second:?}")]
    DuplicateId { file: &'static str, id: u64, first: String, second: String },
    #[error("{file}: {key} has {found} entries, expected {expected} (one per token)")]
    LengthMismatch { file: &'static str, key: String, expected: usize, found: usize },
    #[error("{file}: {key} = {found} exceeds the cap of {cap} tokens")]
    TooLarge { file: &'static str, key: String, found: u64, cap: u64 },
}

impl TokenizerMetaError {
    pub(crate) fn bad(
        file: &'static str,
        key: impl Into<String>,
        expected: impl Into<String>,
        found: impl std::fmt::Display,
    ) -> Self {
        let mut found = found.to_string();
        if found.len() > 200 {
            let mut cut = 200;
            while !found.is_char_boundary(cut) {
                cut -= 1;
            }
            found.truncate(cut);
            found.push('…');
        }
        TokenizerMetaError::BadValue { file, key: key.into(), expected: expected.into(), found }
    }
}

/// Errors of the tokenizer proper (encode/decode), including a vocabulary that cannot be
/// loaded from GGUF metadata.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenizerError {
    #[error(transparent)]
    Meta(#[from] TokenizerMetaError),
    #[error("GGUF metadata: tokenizer.ggml.pre {found:?} has no pre-tokenizer here (supported: {known})")]
    UnsupportedPre { found: String, known: String },
    #[error("token id {id} is out of range: the vocabulary has {n_vocab} tokens")]
    UnknownTokenId { id: u32, n_vocab: usize },
    #[error("the tokenizer must add a {kind} token ({key} is true) but the vocabulary has none")]
    MissingSpecial { kind: &'static str, key: &'static str },
    #[error("byte fallback: the vocabulary has neither <0x{byte:02X}> nor the byte itself as a token")]
    NoByteToken { byte: u8 },
    #[error("token {id} ({text:?}) has type BYTE but is not spelled <0xXX>")]
    BadByteToken { id: u32, text: String },
}
