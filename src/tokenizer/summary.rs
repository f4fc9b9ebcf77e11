//! A short tokenizer summary for `llmtool inspect`.

use super::keys;
use super::to_hf::string_array;
use llmtool_formats::Metadata;

/// What `inspect` shows about a GGUF file's tokenizer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenizerSummary {
    /// `tokenizer.ggml.model` ("gpt2", "llama", …).
    pub model: String,
    pub pre: Option<String>,
    pub vocab_size: usize,
    pub merges: usize,
    pub bos_token_id: Option<u64>,
    pub eos_token_id: Option<u64>,
    pub unknown_token_id: Option<u64>,
    pub padding_token_id: Option<u64>,
    pub separator_token_id: Option<u64>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    pub has_chat_template: bool,
    /// Names of extra chat templates (`tokenizer.chat_templates`).
    pub chat_template_names: Vec<String>,
}

impl TokenizerSummary {
    /// `None` when the metadata has no `tokenizer.ggml.model`.
    pub fn from_metadata(md: &Metadata) -> Option<Self> {
        let model = md.get_str(keys::MODEL)?.to_string();
        let len = |key: &str| md.get_array(key).map_or(0, |a| a.len());
        Some(TokenizerSummary {
            model,
            pre: md.get_str(keys::PRE).map(str::to_string),
            vocab_size: len(keys::TOKENS),
            merges: len(keys::MERGES),
            bos_token_id: md.get_u64(keys::special_key("bos")),
            eos_token_id: md.get_u64(keys::special_key("eos")),
            unknown_token_id: md.get_u64(keys::special_key("unk")),
            padding_token_id: md.get_u64(keys::special_key("pad")),
            separator_token_id: md.get_u64(keys::special_key("sep")),
            add_bos_token: md.get_bool(keys::ADD_BOS),
            add_eos_token: md.get_bool(keys::ADD_EOS),
            has_chat_template: md.contains_key(keys::CHAT_TEMPLATE),
            chat_template_names: string_array(md, keys::CHAT_TEMPLATES)
                .ok()
                .flatten()
                .map(<[String]>::to_vec)
                .unwrap_or_default(),
        })
    }
}
