//! GGUF `tokenizer.*` metadata → HF `tokenizer.json`, `tokenizer_config.json` and
//! `special_tokens_map.json` (the files transformers `save_pretrained` writes).
//!
//! `gpt2` (byte-level BPE): vocab + merges, the pre-tokenizer of the `tokenizer.ggml.pre`
//! name ([`super::pre`]), ByteLevel decoder. `llama` (SentencePiece-style BPE): byte-fallback
//! BPE with the Llama-2-style normalizer (`Prepend("▁")` when `add_space_prefix`, which
//! llama.cpp defaults to true) and decoder; merges from `tokenizer.ggml.merges` when present,
//! else rebuilt from scores like transformers' `SentencePieceExtractor` (every split of a
//! token into two vocabulary pieces, ordered by the token's score).

use super::error::{TokenizerMetaError as E, GGUF};
use super::keys::{self, TokenType};
use super::pre;
use llmtool_formats::{MetaArray, Metadata};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The three HF tokenizer files as JSON values.
#[derive(Debug, Clone, PartialEq)]
pub struct HfTokenizerFiles {
    pub tokenizer_json: Value,
    pub tokenizer_config: Value,
    pub special_tokens_map: Value,
}

pub(crate) fn string_array<'a>(md: &'a Metadata, key: &str) -> Result<Option<&'a [String]>, E> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => match v.as_array() {
            Some(MetaArray::String(s)) => Ok(Some(s)),
            _ => Err(E::bad(GGUF, key, "an array of strings", format!("{:?}", v.value_type()))),
        },
    }
}

pub(crate) fn int_array(md: &Metadata, key: &str) -> Result<Option<Vec<i64>>, E> {
    let Some(v) = md.get(key) else { return Ok(None) };
    let bad = || E::bad(GGUF, key, "an array of integers", format!("{:?}", v.value_type()));
    Ok(Some(match v.as_array().ok_or_else(bad)? {
        MetaArray::I32(a) => a.iter().map(|&x| x as i64).collect(),
        MetaArray::U32(a) => a.iter().map(|&x| x as i64).collect(),
        MetaArray::I8(a) => a.iter().map(|&x| x as i64).collect(),
        MetaArray::U8(a) => a.iter().map(|&x| x as i64).collect(),
        MetaArray::I16(a) => a.iter().map(|&x| x as i64).collect(),
        MetaArray::U16(a) => a.iter().map(|&x| x as i64).collect(),
        MetaArray::I64(a) => a.clone(),
        _ => return Err(bad()),
    }))
}

pub(crate) fn float_array(md: &Metadata, key: &str) -> Result<Option<Vec<f64>>, E> {
    let Some(v) = md.get(key) else { return Ok(None) };
    match v.as_array() {
        Some(MetaArray::F32(a)) => Ok(Some(a.iter().map(|&x| x as f64).collect())),
        Some(MetaArray::F64(a)) => Ok(Some(a.clone())),
        _ => Err(E::bad(GGUF, key, "an array of f32", format!("{:?}", v.value_type()))),
    }
}

pub(crate) fn bool_key(md: &Metadata, key: &str) -> Result<Option<bool>, E> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| E::bad(GGUF, key, "a bool", format!("{v:?}"))),
    }
}

/// Special token ids present in `md`, checked against the vocabulary size.
pub(crate) fn special_ids(md: &Metadata, n_vocab: usize) -> Result<Vec<(&'static str, usize)>, E> {
    let mut out = Vec::new();
    for (kind, key) in keys::SPECIAL_TOKENS {
        let Some(v) = md.get(key) else { continue };
        let id = v.as_u64().ok_or_else(|| E::bad(GGUF, key, "an unsigned token id", format!("{v:?}")))?;
        if id as usize >= n_vocab {
            return Err(E::bad(GGUF, key, format!("a token id below the vocabulary size {n_vocab}"), id));
        }
        out.push((kind, id as usize));
    }
    Ok(out)
}

/// GGUF metadata → HF tokenizer files.
pub fn gguf_metadata_to_hf(md: &Metadata) -> Result<HfTokenizerFiles, E> {
    let model = md.get_str(keys::MODEL).ok_or_else(|| E::Missing { file: GGUF, key: keys::MODEL.into() })?;
    let spm = match model {
        "gpt2" => false,
        "llama" => true,
        other => return Err(E::UnsupportedGgufModel { found: other.to_string() }),
    };
    let tokens = string_array(md, keys::TOKENS)?.ok_or_else(|| E::Missing { file: GGUF, key: keys::TOKENS.into() })?;
    let n = tokens.len();
    let types: Vec<TokenType> = match int_array(md, keys::TOKEN_TYPE)? {
        None => vec![TokenType::Normal; n],
        Some(t) => {
            if t.len() != n {
                return Err(E::LengthMismatch {
                    file: GGUF,
                    key: keys::TOKEN_TYPE.into(),
                    expected: n,
                    found: t.len(),
                });
            }
            t.iter()
                .enumerate()
                .map(|(i, &v)| {
                    TokenType::from_i64(v)
                        .ok_or_else(|| E::bad(GGUF, format!("{}[{i}]", keys::TOKEN_TYPE), "a token type 1..=6", v))
                })
                .collect::<Result<_, _>>()?
        }
    };
    let specials = special_ids(md, n)?;
    let special_text = |kind: &str| specials.iter().find(|(k, _)| *k == kind).map(|&(_, id)| tokens[id].clone());

    let mut vocab = Map::with_capacity(n);
    for (i, t) in tokens.iter().enumerate() {
        // "[PAD<id>]" unused entries are convert_hf_to_gguf's padding up to config.json
        // vocab_size; they were never in the HF vocabulary.
        if types[i] == TokenType::Unused && *t == format!("[PAD{i}]") {
            continue;
        }
        // Later duplicates would make tokenizers' vocab ambiguous; keep the first id.
        vocab.entry(t.clone()).or_insert(json!(i));
    }
    let merges: Vec<Value> = match string_array(md, keys::MERGES)? {
        Some(m) => m
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut parts = s.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => Ok(json!([a, b])),
                    _ => Err(E::bad(GGUF, format!("{}[{i}]", keys::MERGES), "\"left right\"", format!("{s:?}"))),
                }
            })
            .collect::<Result<_, _>>()?,
        None if spm => {
            let scores = float_array(md, keys::SCORES)?.unwrap_or_else(|| vec![0.0; n]);
            if scores.len() != n {
                return Err(E::LengthMismatch {
                    file: GGUF,
                    key: keys::SCORES.into(),
                    expected: n,
                    found: scores.len(),
                });
            }
            merges_from_scores(tokens, &types, &scores)
        }
        None => return Err(E::Missing { file: GGUF, key: keys::MERGES.into() }),
    };

    // Added tokens: everything llama.cpp treats as special or user-defined.
    let added: Vec<Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, ty))| matches!(ty, TokenType::Control | TokenType::UserDefined | TokenType::Unknown))
        .map(|(id, (t, ty))| {
            json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": *ty != TokenType::UserDefined})
        })
        .collect();

    let add_space_prefix = bool_key(md, keys::ADD_SPACE_PREFIX)?.unwrap_or(spm);
    // llama.cpp defaults: SPM adds BOS, BPE does not (unless the pre name says so).
    let add_bos = bool_key(md, keys::ADD_BOS)?.unwrap_or(spm);
    let add_eos = bool_key(md, keys::ADD_EOS)?.unwrap_or(false);
    let bos = special_text("bos");
    let eos = special_text("eos");
    let unk = special_text("unk");

    let (normalizer, pre_tokenizer, decoder, model_json) = if spm {
        let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
        let normalizer = if add_space_prefix {
            json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u{2581}"}, replace]})
        } else {
            replace
        };
        let mut dec = vec![
            json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
            json!({"type": "ByteFallback"}),
            json!({"type": "Fuse"}),
        ];
        if add_space_prefix {
            dec.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
        }
        let model = json!({"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges});
        (normalizer, Value::Null, json!({"type": "Sequence", "decoders": dec}), model)
    } else {
        let pre_name = md.get_str(keys::PRE).unwrap_or("default");
        let p = pre::bpe_pre_json(pre_name)?;
        let model = json!({"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": p.ignore_merges,
            "vocab": vocab, "merges": merges});
        let decoder = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
        (p.normalizer, p.pre_tokenizer, decoder, model)
    };

    let post_processor = post_processor(
        spm,
        add_bos.then_some(()).and(bos.as_deref()),
        add_eos.then_some(()).and(eos.as_deref()),
        &specials,
        tokens,
    );
    let tokenizer_json = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
        "decoder": decoder, "model": model_json,
    });

    // tokenizer_config.json and special_tokens_map.json (transformers save_pretrained shape).
    let mut decoder_map = Map::new();
    for a in &added {
        let mut entry = a.as_object().cloned().unwrap_or_default();
        let id = entry.remove("id").unwrap_or(Value::Null);
        decoder_map.insert(id.to_string(), Value::Object(entry));
    }
    let mut tc = Map::new();
    tc.insert("add_bos_token".into(), json!(add_bos));
    tc.insert("add_eos_token".into(), json!(add_eos));
    tc.insert("added_tokens_decoder".into(), Value::Object(decoder_map));
    let mut stm = Map::new();
    for (kind, id) in &specials {
        let name = format!("{kind}_token");
        tc.insert(name.clone(), json!(tokens[*id]));
        stm.insert(name, json!({"content": tokens[*id], "lstrip": false, "normalized": false, "rstrip": false, "single_word": false}));
    }
    if let Some(t) = chat_template_json(md)? {
        tc.insert("chat_template".into(), t);
    }
    tc.insert("clean_up_tokenization_spaces".into(), json!(false));
    if spm {
        tc.insert("legacy".into(), json!(false));
    }
    tc.insert("tokenizer_class".into(), json!(if spm { "LlamaTokenizerFast" } else { "PreTrainedTokenizerFast" }));
    Ok(HfTokenizerFiles { tokenizer_json, tokenizer_config: Value::Object(tc), special_tokens_map: Value::Object(stm) })
}

/// TemplateProcessing adding bos/eos (HF Llama style), or the ByteLevel post-processor
/// byte-level tokenizers carry when nothing is added.
fn post_processor(
    spm: bool,
    bos: Option<&str>,
    eos: Option<&str>,
    specials: &[(&str, usize)],
    tokens: &[String],
) -> Value {
    if bos.is_none() && eos.is_none() {
        return if spm {
            Value::Null
        } else {
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
        };
    }
    let st = |t: &str, type_id: u32| json!({"SpecialToken": {"id": t, "type_id": type_id}});
    let seq = |s: &str, type_id: u32| json!({"Sequence": {"id": s, "type_id": type_id}});
    let (mut single, mut pair) = (Vec::new(), Vec::new());
    if let Some(b) = bos {
        single.push(st(b, 0));
        pair.push(st(b, 0));
    }
    single.push(seq("A", 0));
    pair.push(seq("A", 0));
    if let Some(e) = eos {
        single.push(st(e, 0));
        pair.push(st(e, 0));
    }
    if let Some(b) = bos {
        pair.push(st(b, 1));
    }
    pair.push(seq("B", 1));
    if let Some(e) = eos {
        pair.push(st(e, 1));
    }
    let mut special_tokens = Map::new();
    for t in [bos, eos].into_iter().flatten() {
        let id = specials.iter().find(|(_, id)| tokens[*id] == t).map(|&(_, id)| id);
        special_tokens.insert(t.to_string(), json!({"id": t, "ids": [id], "tokens": [t]}));
    }
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special_tokens})
}

/// `tokenizer.chat_template` (+ named `tokenizer.chat_template.<name>`) → the
/// tokenizer_config.json `chat_template` value: a string, or a list of {name, template}.
fn chat_template_json(md: &Metadata) -> Result<Option<Value>, E> {
    let default = md.get(keys::CHAT_TEMPLATE).map(|v| {
        v.as_str().map(str::to_string).ok_or_else(|| E::bad(GGUF, keys::CHAT_TEMPLATE, "a string", format!("{v:?}")))
    });
    let default = default.transpose()?;
    let names = string_array(md, keys::CHAT_TEMPLATES)?.unwrap_or(&[]);
    if names.is_empty() {
        return Ok(default.map(Value::String));
    }
    let mut list = Vec::new();
    if let Some(d) = default {
        list.push(json!({"name": "default", "template": d}));
    }
    for name in names {
        let key = format!("{}{name}", keys::CHAT_TEMPLATE_PREFIX);
        let Some(t) = md.get_str(&key) else { return Err(E::Missing { file: GGUF, key }) };
        list.push(json!({"name": name, "template": t}));
    }
    Ok(Some(Value::Array(list)))
}

/// transformers `SentencePieceExtractor.extract` applied to GGUF tokens and scores.
fn merges_from_scores(tokens: &[String], types: &[TokenType], scores: &[f64]) -> Vec<Value> {
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (_, ty))| **ty == TokenType::Normal)
        .map(|(i, (t, _))| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(f64, usize, usize)> = Vec::new(); // (score, left id, right id)
    for (i, t) in tokens.iter().enumerate() {
        if types[i] != TokenType::Normal {
            continue;
        }
        let mut local: Vec<(usize, usize)> =
            t.char_indices().skip(1).filter_map(|(at, _)| Some((*ids.get(&t[..at])?, *ids.get(&t[at..])?))).collect();
        local.sort();
        merges.extend(local.into_iter().map(|(l, r)| (scores[i], l, r)));
    }
    // Stable sort by score, highest first (extractor: sorted(..., reverse=True)).
    merges.sort_by(|a, b| b.0.total_cmp(&a.0));
    merges.into_iter().map(|(_, l, r)| json!([tokens[l], tokens[r]])).collect()
}
