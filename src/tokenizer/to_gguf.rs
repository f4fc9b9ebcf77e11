//! HF tokenizer files → `tokenizer.*` GGUF metadata, following llama.cpp
//! `convert_hf_to_gguf.py` (`get_vocab_base`, `_set_vocab_gpt2`, `_set_vocab_llama_hf`)
//! and gguf-py `vocab.py` (`SpecialVocab`) for special ids, add_bos/add_eos and the
//! chat template.
//!
//! Differences from llama.cpp, on purpose:
//! - `tokenizer.ggml.pre` is derived from the pre-tokenizer JSON ([`super::pre`]), not from
//!   a hash of token ids.
//! - For the SentencePiece-style `llama` model read from a tokenizer.json, gguf-py's
//!   `LlamaHfVocab` writes the placeholder score -1000 for every token; llama.cpp's SPM
//!   tokenizer merges by score, so we write `-rank` of the merge that produces a token
//!   (0 for tokens no merge produces), which orders merges as the BPE model does. We also
//!   keep the merges (`tokenizer.ggml.merges`, ignored by llama.cpp for this model) so that
//!   converting back gives the original merges instead of ones rebuilt from scores. When the
//!   HF dir also has the SentencePiece tokenizer.model, its scores replace these, as llama.cpp
//!   takes them ([`super::apply_spm_model_scores`]).

use super::error::{TokenizerMetaError as E, CONFIG_JSON, TOKENIZER_CONFIG, TOKENIZER_JSON};
use super::keys::{self, is_byte_token, TokenType};
use super::pre;
use llmtool_formats::{MetaArray, MetaValue, Metadata};
use serde_json::Value;
use std::collections::HashMap;

/// Upper bound on vocabulary sizes we accept (ids and config `vocab_size` are untrusted).
pub const MAX_VOCAB: u64 = 1 << 22;

/// Ids without a token (padding up to `vocab_size`, gaps between ids) allowed beyond one per
/// listed token.
pub const MAX_UNUSED_IDS: u64 = 1 << 16;

struct Added {
    content: String,
    special: bool,
}

/// HF tokenizer files → GGUF metadata keys written into `md` in the order
/// `convert_hf_to_gguf.py` writes them: model, pre, tokens, [scores], token_type,
/// [add_space_prefix], merges, special token ids, add_bos/add_eos, chat template.
pub fn hf_to_gguf_metadata(
    tokenizer_json: &Value,
    tokenizer_config: Option<&Value>,
    config: Option<&Value>,
    md: &mut Metadata,
) -> Result<(), E> {
    let model = tokenizer_json.get("model").ok_or_else(|| E::Missing { file: TOKENIZER_JSON, key: "model".into() })?;
    let model_type = model.get("type").and_then(Value::as_str).unwrap_or("");
    // tokenizers omits "type" for BPE in some old files; a vocab + merges object is BPE.
    let is_bpe = model_type == "BPE" || (model_type.is_empty() && model.get("merges").is_some());
    if !is_bpe {
        let found = if model_type.is_empty() { "(none)" } else { model_type };
        return Err(E::UnsupportedHfModel { found: found.to_string() });
    }
    let spm_style = model.get("byte_fallback").and_then(Value::as_bool).unwrap_or(false);

    // Vocabulary: id -> text, from model.vocab and added_tokens.
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| E::bad(TOKENIZER_JSON, "model.vocab", "an object of token -> id", "something else"))?;
    let mut by_id: HashMap<u64, String> = HashMap::with_capacity(vocab.len());
    let mut max_id: Option<u64> = None;
    let mut put = |id: u64, text: &str, by_id: &mut HashMap<u64, String>| -> Result<(), E> {
        if id >= MAX_VOCAB {
            return Err(E::TooLarge {
                file: TOKENIZER_JSON,
                key: format!("id of {text:?}"),
                found: id,
                cap: MAX_VOCAB,
            });
        }
        if let Some(prev) = by_id.get(&id) {
            if prev != text {
                return Err(E::DuplicateId { file: TOKENIZER_JSON, id, first: prev.clone(), second: text.into() });
            }
        }
        by_id.insert(id, text.to_string());
        max_id = Some(max_id.map_or(id, |m| m.max(id)));
        Ok(())
    };
    for (text, id) in vocab {
        let id =
            id.as_u64().ok_or_else(|| E::bad(TOKENIZER_JSON, format!("model.vocab[{text:?}]"), "a token id", id))?;
        put(id, text, &mut by_id)?;
    }
    let mut added: HashMap<u64, Added> = HashMap::new();
    let mut added_list: Vec<(u64, String)> = Vec::new(); // file order, for SpecialVocab lookups
    if let Some(list) = tokenizer_json.get("added_tokens") {
        let list = list.as_array().ok_or_else(|| E::bad(TOKENIZER_JSON, "added_tokens", "an array", list))?;
        for (i, t) in list.iter().enumerate() {
            let id = t.get("id").and_then(Value::as_u64);
            let content = t.get("content").and_then(Value::as_str);
            let (Some(id), Some(content)) = (id, content) else {
                return Err(E::bad(TOKENIZER_JSON, format!("added_tokens[{i}]"), "an object with id and content", t));
            };
            put(id, content, &mut by_id)?;
            let special = t.get("special").and_then(Value::as_bool).unwrap_or(false);
            added.insert(id, Added { content: content.to_string(), special });
            added_list.push((id, content.to_string()));
        }
    }
    // convert_hf_to_gguf pads to config.json's vocab_size with "[PAD<id>]" unused tokens.
    let n_from_files = max_id.map_or(0, |m| m + 1);
    let n_config = match config.and_then(|c| c.get("vocab_size")) {
        Some(v) => v.as_u64().ok_or_else(|| E::bad(CONFIG_JSON, "vocab_size", "an unsigned integer", v))?,
        None => 0,
    };
    if n_config > MAX_VOCAB {
        return Err(E::TooLarge { file: CONFIG_JSON, key: "vocab_size".into(), found: n_config, cap: MAX_VOCAB });
    }
    // Ids with no token become "[PAD<id>]" entries: a few-byte file could otherwise claim
    // 2^22 of them (a 58-byte tokenizer.json giving one token the id 2^22 − 1 made 200 MB;
    // tests/alloc_bounds.rs). Real padding is small (Qwen2.5: 271 of 151,936; phi-2: 905 of
    // 51,200), so at most as many unused ids as listed tokens, plus MAX_UNUSED_IDS.
    let cap = (2 * by_id.len() as u64).saturating_add(MAX_UNUSED_IDS);
    if n_from_files.max(n_config) > cap {
        let (file, key, found) = if n_config > n_from_files {
            (CONFIG_JSON, "vocab_size".to_string(), n_config)
        } else {
            (TOKENIZER_JSON, format!("largest token id + 1 ({} tokens listed)", by_id.len()), n_from_files)
        };
        return Err(E::TooLarge { file, key, found, cap });
    }
    let n_vocab = n_from_files.max(n_config) as usize;

    // Merges: "a b" strings (old format) or [a, b] pairs (tokenizers ≥ 0.20). Spaces inside
    // a pair's parts are written as U+0120 like gguf-py SpecialVocab does.
    let merges = read_merges(model)?;

    let unk_text = model.get("unk_token").and_then(Value::as_str);
    let mut tokens = Vec::with_capacity(n_vocab);
    let mut types = Vec::with_capacity(n_vocab);
    for id in 0..n_vocab as u64 {
        let Some(text) = by_id.get(&id) else {
            tokens.push(format!("[PAD{id}]"));
            types.push(TokenType::Unused as i32);
            continue;
        };
        let mut text = text.clone();
        let ty = if let Some(a) = added.get(&id) {
            if a.special || looks_special(&a.content) {
                TokenType::Control
            } else {
                // convert_hf_to_gguf: "pre-normalize user-defined spaces" (added for Gemma).
                text = text.replace('\u{2581}', " ");
                TokenType::UserDefined
            }
        } else if spm_style && is_byte_token(&text) {
            TokenType::Byte
        } else if spm_style && Some(text.as_str()) == unk_text {
            TokenType::Unknown
        } else {
            TokenType::Normal
        };
        tokens.push(text);
        types.push(ty as i32);
    }

    if spm_style {
        md.insert(keys::MODEL, MetaValue::String("llama".into()));
        md.insert(keys::PRE, MetaValue::String("default".into()));
    } else {
        md.insert(keys::MODEL, MetaValue::String("gpt2".into()));
        md.insert(keys::PRE, MetaValue::String(pre::detect_bpe_pre(tokenizer_json, config)?.into()));
    }
    if spm_style {
        let scores = merge_rank_scores(&tokens, &types, &merges);
        md.insert(keys::TOKENS, MetaValue::Array(MetaArray::String(tokens)));
        md.insert(keys::SCORES, MetaValue::Array(MetaArray::F32(scores)));
        md.insert(keys::TOKEN_TYPE, MetaValue::Array(MetaArray::I32(types)));
        md.insert(keys::ADD_SPACE_PREFIX, MetaValue::Bool(adds_space_prefix(tokenizer_json)));
    } else {
        md.insert(keys::TOKENS, MetaValue::Array(MetaArray::String(tokens)));
        md.insert(keys::TOKEN_TYPE, MetaValue::Array(MetaArray::I32(types)));
    }
    if !merges.is_empty() {
        md.insert(keys::MERGES, MetaValue::Array(MetaArray::String(merges)));
    }
    special_vocab(tokenizer_json, tokenizer_config, config, &added_list, n_vocab, md)
}

fn read_merges(model: &Value) -> Result<Vec<String>, E> {
    let Some(list) = model.get("merges") else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| E::bad(TOKENIZER_JSON, "model.merges", "an array", list))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        match m {
            Value::String(s) => out.push(s.clone()),
            Value::Array(pair) if pair.len() == 2 && pair.iter().all(Value::is_string) => {
                let part = |v: &Value| v.as_str().unwrap_or("").replace(' ', "\u{0120}");
                out.push(format!("{} {}", part(&pair[0]), part(&pair[1])));
            }
            other => {
                return Err(E::bad(TOKENIZER_JSON, format!("model.merges[{i}]"), "\"a b\" or [\"a\", \"b\"]", other))
            }
        }
    }
    Ok(out)
}

/// convert_hf_to_gguf `does_token_look_special`: added tokens some models forget to mark special.
pub(crate) fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// Score = −(rank of the first merge producing the token); 0 for the rest (see module doc).
fn merge_rank_scores(tokens: &[String], types: &[i32], merges: &[String]) -> Vec<f32> {
    let mut rank: HashMap<String, usize> = HashMap::with_capacity(merges.len());
    for (r, m) in merges.iter().enumerate() {
        rank.entry(m.replacen(' ', "", 1)).or_insert(r);
    }
    tokens
        .iter()
        .zip(types)
        .map(|(t, &ty)| match (ty == TokenType::Normal as i32).then(|| rank.get(t)).flatten() {
            Some(&r) => -(r as f32),
            None => 0.0,
        })
        .collect()
}

/// SentencePiece `add_dummy_prefix` as HF writes it: a `Prepend("▁")` normalizer (Llama 2
/// style) or a `Metaspace` pre-tokenizer with `prepend_scheme` first/always.
fn adds_space_prefix(tok: &Value) -> bool {
    fn any(v: &Value, f: &dyn Fn(&Value) -> bool) -> bool {
        f(v) || ["normalizers", "pretokenizers"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(Value::as_array))
            .any(|a| a.iter().any(|x| any(x, f)))
    }
    let prepend = |v: &Value| v.get("type").and_then(Value::as_str) == Some("Prepend");
    let metaspace = |v: &Value| {
        v.get("type").and_then(Value::as_str) == Some("Metaspace")
            && matches!(v.get("prepend_scheme").and_then(Value::as_str), Some("first") | Some("always"))
    };
    tok.get("normalizer").is_some_and(|n| any(n, &prepend))
        || tok.get("pre_tokenizer").is_some_and(|p| any(p, &metaspace))
}

/// gguf-py `SpecialVocab._try_load_from_tokenizer_json` + `_try_load_from_config_json` +
/// `add_to_gguf` (simplified: the RobertaProcessing sep handling and the eot/eom fallbacks
/// are left out).
fn special_vocab(
    tok: &Value,
    tc: Option<&Value>,
    config: Option<&Value>,
    added: &[(u64, String)],
    n_vocab: usize,
    md: &mut Metadata,
) -> Result<(), E> {
    let token_str = |kind: &str| -> Option<String> {
        let e = tc?.get(format!("{kind}_token"))?;
        e.as_str().map(str::to_string).or_else(|| e.get("content")?.as_str().map(str::to_string))
    };
    let mut bos = token_str("bos");
    let eos = token_str("eos").or_else(|| token_str("sep"));
    if bos.is_none() {
        bos = token_str("cls");
    }
    // add_bos / add_eos from the post-processor (TemplateProcessing / RobertaProcessing).
    let mut add: Vec<(&'static str, bool)> = Vec::new();
    let set_add = |add: &mut Vec<(&'static str, bool)>, kind: &'static str, v: bool| match add
        .iter_mut()
        .find(|(k, _)| *k == kind)
    {
        Some(e) => e.1 = v,
        None => add.push((kind, v)),
    };
    if let Some(pp) = tok.get("post_processor").filter(|v| !v.is_null()) {
        let procs: Vec<&Value> = match pp.get("processors").and_then(Value::as_array) {
            Some(list) => list.iter().collect(),
            None => vec![pp],
        };
        for p in procs {
            match p.get("type").and_then(Value::as_str) {
                Some("RobertaProcessing") => {
                    set_add(&mut add, "bos", true);
                    set_add(&mut add, "eos", true);
                }
                Some("TemplateProcessing") => {
                    let single = p.get("single").and_then(Value::as_array).cloned().unwrap_or_default();
                    if single.len() > 1 {
                        let special = |v: &Value| v.get("SpecialToken")?.get("id")?.as_str().map(str::to_string);
                        if let Some(first) = special(&single[0]) {
                            set_add(&mut add, "bos", Some(&first) == bos.as_ref() || tc.is_none());
                            if tc.is_none() {
                                bos = Some(first);
                            }
                        }
                        if let Some(last) = special(&single[single.len() - 1]) {
                            set_add(&mut add, "eos", Some(&last) == eos.as_ref() || tc.is_none());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(tc) = tc {
        for (kind, _) in keys::SPECIAL_TOKENS {
            if let Some(v) = tc.get(format!("add_{kind}_token")).and_then(Value::as_bool) {
                let kind: &'static str = match kind {
                    "bos" => "bos",
                    "eos" => "eos",
                    "sep" => "sep",
                    _ => continue, // GGUF has add_* keys for bos, eos, sep only
                };
                set_add(&mut add, kind, v);
            }
        }
    }

    // Special token ids: tokenizer_config.json `<kind>_token` looked up among added tokens,
    // then config.json `<kind>_token_id` for kinds still unset; ids must be < n_vocab.
    let content_of = |kind: &str| match kind {
        "bos" => bos.clone(),
        "eos" => eos.clone(),
        k => token_str(k),
    };
    let mut ids: Vec<(&'static str, u64)> = Vec::new();
    for (kind, _) in keys::SPECIAL_TOKENS {
        let Some(content) = content_of(kind) else { continue };
        if let Some((id, _)) = added.iter().find(|(_, c)| *c == content) {
            if (*id as usize) < n_vocab {
                ids.push((kind, *id));
            }
        }
    }
    if let Some(config) = config {
        for (kind, _) in keys::SPECIAL_TOKENS {
            let key = format!("{kind}_token_id");
            let v = config.get(&key).or_else(|| config.get("text_config")?.get(&key));
            let Some(v) = v.filter(|v| !v.is_null()) else { continue };
            if !v.is_number() {
                continue; // lists of eos ids (Llama 3.1) are skipped like gguf-py does
            }
            let id = v.as_u64().ok_or_else(|| E::bad(CONFIG_JSON, key.clone(), "a non-negative token id", v))?;
            if (id as usize) < n_vocab && !ids.iter().any(|(k, _)| *k == kind) {
                ids.push((kind, id));
            }
        }
    }
    for (kind, id) in ids {
        md.insert(keys::special_key(kind), MetaValue::U32(id as u32));
    }
    for (kind, v) in add {
        let key = match kind {
            "bos" => keys::ADD_BOS,
            "eos" => keys::ADD_EOS,
            _ => keys::ADD_SEP,
        };
        md.insert(key, MetaValue::Bool(v));
    }

    // Chat template: a string, or a list of {name, template} (gguf-py add_chat_template).
    if let Some(t) = tc.and_then(|tc| tc.get("chat_template")).filter(|v| !v.is_null()) {
        match t {
            Value::String(s) => {
                md.insert(keys::CHAT_TEMPLATE, MetaValue::String(s.clone()));
            }
            Value::Array(list) => {
                let mut default = None;
                let mut names = Vec::new();
                for (i, choice) in list.iter().enumerate() {
                    let name = choice.get("name").and_then(Value::as_str).unwrap_or("");
                    let Some(template) = choice.get("template").and_then(Value::as_str) else {
                        return Err(E::bad(
                            TOKENIZER_CONFIG,
                            format!("chat_template[{i}].template"),
                            "a string",
                            choice,
                        ));
                    };
                    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
                    if name.is_empty() {
                        continue;
                    }
                    if name == "default" {
                        default = Some(template.to_string());
                    } else if !names.contains(&name) {
                        md.insert(format!("{}{name}", keys::CHAT_TEMPLATE_PREFIX), MetaValue::String(template.into()));
                        names.push(name);
                    }
                }
                if !names.is_empty() {
                    md.insert(keys::CHAT_TEMPLATES, MetaValue::Array(MetaArray::String(names)));
                }
                if let Some(d) = default {
                    md.insert(keys::CHAT_TEMPLATE, MetaValue::String(d));
                }
            }
            other => {
                return Err(E::bad(TOKENIZER_CONFIG, "chat_template", "a string or a list of {name, template}", other))
            }
        }
    }
    Ok(())
}

/// The chat template transformers ≥ 4.50 saves beside tokenizer_config.json in
/// `chat_template.jinja` (`path`): written to `tokenizer.chat_template` when the tokenizer
/// config held none, as gguf-py's `SpecialVocab._try_load_from_tokenizer_json` takes it (the
/// config's own `chat_template` wins; the file is only read when a tokenizer config exists).
pub fn apply_chat_template_file(path: &std::path::Path, md: &mut Metadata) -> Result<(), E> {
    if md.contains_key(keys::CHAT_TEMPLATE) || !path.is_file() {
        return Ok(());
    }
    let source = std::fs::read_to_string(path)
        .map_err(|e| E::bad(super::error::CHAT_TEMPLATE_JINJA, "file", "a readable UTF-8 file", e))?;
    md.insert(keys::CHAT_TEMPLATE, MetaValue::String(source));
    Ok(())
}
