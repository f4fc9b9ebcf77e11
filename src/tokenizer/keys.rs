//! GGUF tokenizer keys (gguf-py `constants.py`, `Keys.Tokenizer`) and token types
//! (gguf-py `TokenType`, llama.cpp `llama_token_type`).

pub const MODEL: &str = "tokenizer.ggml.model";
pub const PRE: &str = "tokenizer.ggml.pre";
pub const TOKENS: &str = "tokenizer.ggml.tokens";
pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const SCORES: &str = "tokenizer.ggml.scores";
pub const MERGES: &str = "tokenizer.ggml.merges";
pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
pub const ADD_SEP: &str = "tokenizer.ggml.add_sep_token";
pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
/// Named templates: `tokenizer.chat_template.<name>`, names listed in `tokenizer.chat_templates`.
pub const CHAT_TEMPLATE_PREFIX: &str = "tokenizer.chat_template.";
pub const CHAT_TEMPLATES: &str = "tokenizer.chat_templates";

/// Special token kinds in gguf-py `SpecialVocab` order, with their GGUF id keys.
/// (`cls` has no GGUF key; gguf-py uses it as a fallback for `bos`. "seperator" is
/// spelled so in GGUF.)
pub const SPECIAL_TOKENS: [(&str, &str); 6] = [
    ("bos", "tokenizer.ggml.bos_token_id"),
    ("eos", "tokenizer.ggml.eos_token_id"),
    ("unk", "tokenizer.ggml.unknown_token_id"),
    ("sep", "tokenizer.ggml.seperator_token_id"),
    ("pad", "tokenizer.ggml.padding_token_id"),
    ("mask", "tokenizer.ggml.mask_token_id"),
];

/// The GGUF id key of a special token kind.
pub fn special_key(kind: &str) -> &'static str {
    SPECIAL_TOKENS.iter().find(|(k, _)| *k == kind).map(|(_, key)| *key).unwrap_or("")
}

/// gguf-py `TokenType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum TokenType {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

impl TokenType {
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

/// SentencePiece byte-fallback pieces are spelled `<0xAB>` (upper-case hex).
pub fn is_byte_token(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 6
        && s.starts_with("<0x")
        && b[5] == b'>'
        && b[3..5].iter().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
}
