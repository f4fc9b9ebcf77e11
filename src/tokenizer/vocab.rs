//! [`Tokenizer`]: encode/decode from GGUF `tokenizer.ggml.*` metadata, token-identical to
//! llama.cpp (`llama-vocab.cpp`: `llama_vocab::impl::load`, `tokenize`, `token_to_piece`,
//! `detokenize`).
//!
//! - `gpt2` model: byte-level BPE; text split by the pre-tokenizer of `tokenizer.ggml.pre`
//!   ([`PreSplit`]), each word's bytes mapped to GPT-2's byte chars, merged by rank.
//! - `llama` model: SentencePiece-style; spaces escaped to `▁`, a space prefixed to text at the
//!   start and after each special token when `add_space_prefix`, merged by score, `<0xXX>` byte
//!   fallback. (The Gemma fixtures' GGUF has this model, as llama.cpp's converter writes it.)
//!
//! Special tokens (types CONTROL, USER_DEFINED, UNKNOWN) are cut out of the text first,
//! longest first; CONTROL and UNKNOWN ones only when `parse_special`.

use std::collections::{HashMap, HashSet};

use llmtool_formats::Metadata;

use super::bpe::{self, MergeRanks};
use super::error::{TokenizerError, TokenizerMetaError as E, GGUF};
use super::keys;
use super::split::PreSplit;
use super::spm::{self, SpmVocab};
use super::to_hf::{bool_key, float_array, int_array, string_array};
use super::unicode;

/// llama.cpp `llama_token_attr` bits.
mod attr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const RSTRIP: u32 = 1 << 8;
}

/// Which algorithm the vocabulary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// `gpt2`: byte-level BPE with a pre-tokenizer.
    Bpe(PreSplit),
    /// `llama`: SentencePiece-style, by score.
    Spm,
}

/// A tokenizer built from GGUF tokenizer metadata.
pub struct Tokenizer {
    kind: TokenizerKind,
    tokens: Vec<String>,
    token_to_id: HashMap<String, u32>,
    scores: Vec<f32>,
    attrs: Vec<u32>,
    ranks: MergeRanks,
    ignore_merges: bool,
    add_space_prefix: bool,
    add_bos: bool,
    add_eos: bool,
    bos: Option<u32>,
    eos: Option<u32>,
    eog: HashSet<u32>,
    /// CONTROL / USER_DEFINED / UNKNOWN tokens, longest text first.
    specials: Vec<u32>,
    /// All of `specials`' texts (pattern i = `specials[i]`): one pass over the text finds the
    /// special tokens that occur at all, so the per-token partition skips the others.
    special_finder: Option<aho_corasick::AhoCorasick>,
}

/// Text-detected tokens llama.cpp marks CONTROL (llama-vocab.cpp "auto-detect special tokens
/// by text"): end-of-turn, end-of-message and fill-in-the-middle tokens.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
/// FIM pad / repo / file-separator tokens: CONTROL and end-of-generation.
const FIM_EOG_TEXTS: &[&str] = &[
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];
/// Texts that end generation (llama-vocab.cpp `special_eog_ids`).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` keys.
    pub fn from_gguf_metadata(md: &Metadata) -> Result<Self, TokenizerError> {
        let model = md.get_str(keys::MODEL).ok_or_else(|| E::Missing { file: GGUF, key: keys::MODEL.into() })?;
        let pre_name = md.get_str(keys::PRE).unwrap_or("");
        // Defaults per model and pre type (llama_vocab::impl::load).
        let (kind, mut add_bos, mut add_space_prefix, ignore_merges) = match model {
            "gpt2" => {
                let split = PreSplit::from_pre_name(pre_name).ok_or_else(|| TokenizerError::UnsupportedPre {
                    found: pre_name.to_string(),
                    known:
                        "default, gpt-2, smollm, starcoder, command-r, llama-bpe, llama3, qwen2, stablelm2, tekken, …"
                            .into(),
                })?;
                // llama.cpp sets add_bos and ignore_merges for the llama3 names and `tekken`.
                let llama3 = split == PreSplit::Llama3 && !matches!(pre_name, "dbrx" | "smaug-bpe");
                let bos_and_whole_words = llama3 || split == PreSplit::Tekken;
                (TokenizerKind::Bpe(split), bos_and_whole_words, false, bos_and_whole_words)
            }
            "llama" => (TokenizerKind::Spm, true, true, false),
            other => return Err(E::UnsupportedGgufModel { found: other.to_string() }.into()),
        };
        if let Some(v) = bool_key(md, keys::ADD_SPACE_PREFIX)? {
            add_space_prefix = v;
        }
        let tokens =
            string_array(md, keys::TOKENS)?.ok_or_else(|| E::Missing { file: GGUF, key: keys::TOKENS.into() })?;
        let n = tokens.len();
        let n_checked = |key: &str, len: usize| -> Result<(), TokenizerError> {
            if len < n {
                return Err(E::LengthMismatch { file: GGUF, key: key.into(), expected: n, found: len }.into());
            }
            Ok(())
        };
        let scores: Vec<f32> = match float_array(md, keys::SCORES)? {
            Some(s) => {
                n_checked(keys::SCORES, s.len())?;
                s.iter().take(n).map(|&x| x as f32).collect()
            }
            None => vec![0.0; n],
        };
        let mut attrs: Vec<u32> = match int_array(md, keys::TOKEN_TYPE)? {
            Some(t) => {
                n_checked(keys::TOKEN_TYPE, t.len())?;
                t.iter()
                    .take(n)
                    .map(|&ty| match ty {
                        1 => attr::NORMAL,
                        2 => attr::UNKNOWN,
                        3 => attr::CONTROL,
                        4 => attr::USER_DEFINED,
                        5 => attr::UNUSED,
                        6 => attr::BYTE,
                        _ => attr::UNDEFINED,
                    })
                    .collect()
            }
            None => vec![attr::NORMAL; n],
        };
        let mut texts = Vec::with_capacity(n);
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            // llama.cpp renames empty tokens; a later duplicate text wins the text → id map.
            let t = if t.is_empty() { format!("[EMPTY_{i}]") } else { t.clone() };
            token_to_id.insert(t.clone(), i as u32);
            texts.push(t);
        }
        let ranks = match (kind, string_array(md, keys::MERGES)?) {
            (TokenizerKind::Bpe(_), None) => {
                return Err(E::Missing { file: GGUF, key: keys::MERGES.into() }.into());
            }
            (TokenizerKind::Bpe(_), Some(m)) => MergeRanks::from_merges(m),
            (TokenizerKind::Spm, _) => MergeRanks::default(),
        };

        // Special ids: SPM defaults bos 1, eos 2; a key out of range keeps the default.
        let in_range = |id: u64| (id < n as u64).then_some(id as u32);
        let (mut bos, mut eos) = match kind {
            TokenizerKind::Spm => (in_range(1), in_range(2)),
            TokenizerKind::Bpe(_) => (None, None),
        };
        let id_key = |key: &str| md.get(key).and_then(|v| v.as_u64()).and_then(in_range);
        if let Some(id) = id_key(keys::special_key("bos")) {
            bos = Some(id);
        }
        if let Some(id) = id_key(keys::special_key("eos")) {
            eos = Some(id);
        }
        let mut eot = id_key("tokenizer.ggml.eot_token_id");
        let mut eom = id_key("tokenizer.ggml.eom_token_id");
        if let Some(v) = bool_key(md, keys::ADD_BOS)? {
            add_bos = v;
        }
        let add_eos = bool_key(md, keys::ADD_EOS)?.unwrap_or(false);

        // Text-detected special tokens are made CONTROL; EOT/EOM take the lowest id found.
        let mut eog = HashSet::new();
        for (i, t) in texts.iter().enumerate() {
            let id = i as u32;
            let t = t.as_str();
            if EOT_TEXTS.contains(&t) && eot.is_none() {
                eot = Some(id);
                attrs[i] |= attr::CONTROL;
            }
            if EOM_TEXTS.contains(&t) && eom.is_none() {
                eom = Some(id);
                attrs[i] |= attr::CONTROL;
            }
            if FIM_TEXTS.contains(&t) || FIM_EOG_TEXTS.contains(&t) {
                attrs[i] |= attr::CONTROL;
            }
            if FIM_EOG_TEXTS.contains(&t) || EOG_TEXTS.contains(&t) {
                eog.insert(id);
                attrs[i] |= attr::CONTROL;
            }
            if attrs[i] & attr::CONTROL != 0 && t.contains("unused") {
                attrs[i] |= attr::UNUSED;
            }
            if matches!(t, "<|channel|>" | "<|message|>" | "<|start|>" | "<|constrain|>") {
                attrs[i] = attr::USER_DEFINED;
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| attrs[i as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0)
            .collect();
        specials.sort_by(|&a, &b| texts[b as usize].len().cmp(&texts[a as usize].len()));

        // Phi-3 special tokens eat the white space after them (per-model attributes in load()).
        let name = md.get_str("general.name").unwrap_or("").to_lowercase();
        if name.contains("phi-3") || name.contains("phi3") {
            for &id in &specials {
                attrs[id as usize] |= attr::RSTRIP;
            }
            let mut set = |t: &str, on: bool| {
                if let Some(&id) = token_to_id.get(t) {
                    if on {
                        attrs[id as usize] |= attr::RSTRIP;
                    } else {
                        attrs[id as usize] &= !attr::RSTRIP;
                    }
                }
            };
            set("</s>", true);
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                set(t, false);
            }
        }

        // Built over at most the vocabulary's own texts; if it cannot be built (it can only fail
        // on size limits), every special token is searched for the slow way.
        let special_finder =
            aho_corasick::AhoCorasick::new(specials.iter().map(|&id| texts[id as usize].as_str())).ok();

        Ok(Tokenizer {
            kind,
            tokens: texts,
            token_to_id,
            scores,
            attrs,
            ranks,
            ignore_merges,
            add_space_prefix,
            add_bos,
            add_eos,
            bos,
            eos,
            eog,
            specials,
            special_finder,
        })
    }

    /// The tokenizer of an opened model (GGUF file or HF dir, whose tokenizer files are
    /// mapped to GGUF metadata when it is opened).
    pub fn from_model(model: &crate::model::Model) -> Result<Self, TokenizerError> {
        Self::from_gguf_metadata(&model.metadata)
    }

    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// SPM: a space is put before the text (and after each special token).
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
    /// End of generation: eos, eot, eom and the text-detected end tokens (`<|im_end|>`, …).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }
    /// The token's text as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Result<&str, TokenizerError> {
        self.tokens
            .get(id as usize)
            .map(String::as_str)
            .ok_or(TokenizerError::UnknownTokenId { id, n_vocab: self.n_vocab() })
    }
    /// The id of a token text, if the vocabulary has it.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// Text → token ids, like `llama_tokenize(vocab, text, add_special, parse_special)`:
    /// `add_special` adds BOS/EOS as the metadata asks; `parse_special` lets CONTROL tokens
    /// written in the text become those tokens (USER_DEFINED ones always do).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let fragments = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.push(self.bos.ok_or(TokenizerError::MissingSpecial { kind: "BOS", key: keys::ADD_BOS })?);
        }
        match self.kind {
            TokenizerKind::Bpe(split) => {
                let byte_chars = unicode::byte_to_char_table();
                let lookup = |s: &str| self.token_to_id.get(s).copied();
                let mut cache: HashMap<&str, Vec<u32>> = HashMap::new();
                let mut encoded = String::new();
                for frag in &fragments {
                    match *frag {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(start, end) => {
                            for word in split.split(&text[start..end]) {
                                if let Some(ids) = cache.get(word) {
                                    out.extend_from_slice(ids);
                                    continue;
                                }
                                encoded.clear();
                                encoded.extend(word.bytes().map(|b| byte_chars[b as usize]));
                                let mut ids = Vec::new();
                                bpe::merge_word(&encoded, &self.ranks, self.ignore_merges, &lookup, &mut ids);
                                out.extend_from_slice(&ids);
                                cache.insert(word, ids);
                            }
                        }
                    }
                }
            }
            TokenizerKind::Spm => {
                let mut prev_special = true; // a space is prefixed to the first text, too
                let mut escaped = String::new();
                for frag in &fragments {
                    match *frag {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(start, end) => {
                            escaped.clear();
                            if self.add_space_prefix && prev_special {
                                escaped.push('▁');
                            }
                            escaped.extend(text[start..end].chars().map(|c| if c == ' ' { '▁' } else { c }));
                            spm::tokenize(&escaped, self, &mut out)?;
                            prev_special = false;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.push(self.eos.ok_or(TokenizerError::MissingSpecial { kind: "EOS", key: keys::ADD_EOS })?);
        }
        Ok(out)
    }

    /// Cuts special tokens out of `text` (llama.cpp `tokenizer_st_partition`): for each special
    /// token, longest first, every occurrence in the remaining text fragments.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = if text.is_empty() { vec![] } else { vec![Fragment::Text(0, text.len())] };
        let bytes = text.as_bytes();
        // C isspace: the lstrip/rstrip attributes strip ASCII white space only.
        let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
        let eligible = |id: u32| parse_special || self.attrs[id as usize] & (attr::CONTROL | attr::UNKNOWN) == 0;
        if !self.specials.iter().any(|&id| eligible(id)) {
            return frags;
        }
        // Which special tokens occur anywhere in the text (fragments are pieces of it).
        let present: Option<Vec<bool>> = self.special_finder.as_ref().map(|ac| {
            let mut present = vec![false; self.specials.len()];
            for m in ac.find_overlapping_iter(text) {
                present[m.pattern().as_usize()] = true;
            }
            present
        });
        for (i, &id) in self.specials.iter().enumerate() {
            if present.as_ref().is_some_and(|p| !p[i]) {
                continue;
            }
            // CONTROL and UNKNOWN tokens only with parse_special; USER_DEFINED ones always.
            if !eligible(id) {
                continue;
            }
            let a = self.attrs[id as usize];
            let tok = self.tokens[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(mut start, end) = f else {
                    next.push(f);
                    continue;
                };
                loop {
                    let Some(rel) = text[start..end].find(tok) else {
                        if end > start {
                            next.push(Fragment::Text(start, end));
                        }
                        break;
                    };
                    let m = start + rel;
                    // llama.cpp's LSTRIP (only set for some BERT-style vocabularies) is not kept.
                    if m > start {
                        next.push(Fragment::Text(start, m));
                    }
                    next.push(Fragment::Token(id));
                    start = m + tok.len();
                    if a & attr::RSTRIP != 0 {
                        while start < end && is_space(bytes[start]) {
                            start += 1;
                        }
                    }
                    if start >= end {
                        break;
                    }
                }
            }
            frags = next;
        }
        frags
    }

    /// One token's bytes, like `llama_token_to_piece(.., lstrip 0, special true)`: special
    /// and user-defined tokens as their text, byte tokens as their byte, normal tokens with
    /// GPT-2 byte chars (BPE) or `▁` (SPM) decoded; unused tokens are empty.
    pub fn token_to_piece(&self, id: u32) -> Result<Vec<u8>, TokenizerError> {
        let text = self.token_text(id)?;
        let a = self.attrs[id as usize];
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            return Ok(text.as_bytes().to_vec());
        }
        if a & attr::NORMAL != 0 {
            return Ok(match self.kind {
                TokenizerKind::Spm => text.replace('▁', " ").into_bytes(),
                TokenizerKind::Bpe(_) => decode_byte_chars(text),
            });
        }
        if a & attr::BYTE != 0 {
            let hex = text.strip_prefix("<0x").and_then(|h| h.strip_suffix('>'));
            return match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => Ok(vec![b]),
                None => Err(TokenizerError::BadByteToken { id, text: text.to_string() }),
            };
        }
        Ok(Vec::new())
    }

    /// Token ids → text: the pieces concatenated, like `llama_detokenize(.., remove_special
    /// false, unparse_special true)` — SPM drops the prefixed space of the first piece — but
    /// without its `clean_spaces` pass. Bytes that are not UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.token_to_piece(id)?;
            let skip = usize::from(i == 0 && self.add_space_prefix && piece.first() == Some(&b' '));
            bytes.extend_from_slice(&piece[skip..]);
        }
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("n_vocab", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish_non_exhaustive()
    }
}

/// A piece of the input: raw text (byte range) or a special token cut out of it.
#[derive(Debug, Clone, Copy)]
enum Fragment {
    Text(usize, usize),
    Token(u32),
}

/// GPT-2 byte chars → bytes (llama.cpp `llama_decode_text`): a char outside the byte map
/// becomes `[UNK_BYTE_0x<hex>…]` as there.
fn decode_byte_chars(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match unicode::char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

impl SpmVocab for Tokenizer {
    fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }
    fn score(&self, id: u32) -> f32 {
        self.scores[id as usize]
    }
    fn byte_token(&self, byte: u8) -> Result<u32, TokenizerError> {
        if let Some(&id) = self.token_to_id.get(format!("<0x{byte:02X}>").as_str()) {
            return Ok(id);
        }
        let single = if byte.is_ascii() { std::str::from_utf8(std::slice::from_ref(&byte)).ok() } else { None };
        single.and_then(|s| self.token_to_id.get(s).copied()).ok_or(TokenizerError::NoByteToken { byte })
    }
}
