//! The tokenizer against llama.cpp's own: ids that `llama-tokenize` produced, committed by
//! fixtures/tokenizer/gen_llama_cpp_ids.py.

mod common;

use std::time::Instant;

use common::{real_model, root, sha256_hex};
use llmtool::model::Model;
use llmtool::tokenizer::Tokenizer;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = root().join("fixtures/tokenizer").join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// WikiText-2's test text (shipped in data/wikitext-2-raw).
fn wiki_test_raw() -> Vec<u8> {
    std::fs::read(common::wiki_text()).unwrap()
}

#[test]
fn smollm2_wiki_test_raw_ids_equal_llama_cpp() {
    let fx = fixture("smollm2_wiki_test.json");
    let raw = wiki_test_raw();
    assert_eq!(sha256_hex(&raw), fx["text"]["sha256"].as_str().unwrap(), "wiki.test.raw is not the expected file");
    // llama-perplexity reads the file with common's -f, which drops one trailing newline.
    let text = std::str::from_utf8(&raw).unwrap();
    let text = if fx["trailing_newline_dropped"].as_bool().unwrap() { text.strip_suffix('\n').unwrap() } else { text };

    let model = Model::open(&real_model()).unwrap();
    let tok = Tokenizer::from_model(&model).unwrap();
    let t = Instant::now();
    let ids = tok.encode(text, fx["add_special"].as_bool().unwrap(), fx["parse_special"].as_bool().unwrap()).unwrap();
    eprintln!("encoded {} bytes into {} tokens in {:?}", text.len(), ids.len(), t.elapsed());

    for s in fx["samples"].as_array().unwrap() {
        let off = s["offset"].as_u64().unwrap() as usize;
        let want = ids_of(&s["ids"]);
        let got = &ids[off.min(ids.len())..(off + want.len()).min(ids.len())];
        assert_eq!(got, &want[..], "ids at offset {off}");
    }
    assert_eq!(ids.len() as u64, fx["n_tokens"].as_u64().unwrap(), "token count");
    let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
    assert_eq!(sha256_hex(&bytes), fx["ids_sha256_u32le"].as_str().unwrap(), "sha256 of the id sequence");
}

#[test]
fn strings_ids_equal_llama_cpp_for_every_vocabulary() {
    let fx = fixture("llama_cpp_strings.json");
    let strings: Vec<String> = serde_json::from_value(fixture("strings.json")).unwrap();
    let mut failures = Vec::new();
    for (name, rows) in fx["models"].as_object().unwrap() {
        let path = if name == "smollm2" { real_model() } else { root().join("fixtures/models").join(name) };
        let model = Model::open(&path).unwrap();
        let tok = Tokenizer::from_model(&model).unwrap();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), strings.len(), "{name}: one row per string");
        for (s, row) in strings.iter().zip(rows) {
            for (mode, add_special, parse_special) in [("special", true, true), ("plain", false, false)] {
                let want = ids_of(&row[mode]);
                let got = tok.encode(s, add_special, parse_special).unwrap();
                if got != want {
                    failures.push(format!("{name} {mode} {s:?}:\n  llama.cpp {want:?}\n  llmtool   {got:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// SmolLM2's vocabulary under other `tokenizer.ggml.pre` names: llama.cpp's Llama 3, Qwen2,
/// GPT-2 and `default` splitters on the strings and on the head of wiki.test.raw.
#[test]
fn other_pre_tokenizers_on_smollm2_vocabulary_equal_llama_cpp() {
    let fx = fixture("llama_cpp_pre.json");
    let strings: Vec<String> = serde_json::from_value(fixture("strings.json")).unwrap();
    let raw = wiki_test_raw();
    let head_len = fx["wiki_head_bytes"].as_u64().unwrap() as usize;
    let head = std::str::from_utf8(&raw[..head_len]).unwrap();
    let model = Model::open(&real_model()).unwrap();
    let mut failures = Vec::new();
    for (pre, want) in fx["pre"].as_object().unwrap() {
        let mut md = model.metadata.clone();
        md.insert("tokenizer.ggml.pre", llmtool_formats::MetaValue::String(pre.clone()));
        let tok = Tokenizer::from_gguf_metadata(&md).unwrap();
        for (s, row) in strings.iter().zip(want["strings"].as_array().unwrap()) {
            for (mode, add_special, parse_special) in [("special", true, true), ("plain", false, false)] {
                let want = ids_of(&row[mode]);
                let got = tok.encode(s, add_special, parse_special).unwrap();
                if got != want {
                    failures.push(format!("pre {pre} {mode} {s:?}:\n  llama.cpp {want:?}\n  llmtool   {got:?}"));
                }
            }
        }
        let ids = tok.encode(head, true, false).unwrap();
        let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        if ids.len() as u64 != want["wiki_head"]["n_tokens"].as_u64().unwrap()
            || sha256_hex(&bytes) != want["wiki_head"]["ids_sha256_u32le"].as_str().unwrap()
        {
            failures.push(format!(
                "pre {pre}: wiki head differs ({} tokens, llama.cpp {})",
                ids.len(),
                want["wiki_head"]["n_tokens"]
            ));
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
