//! Tokenizer behaviour that needs no outside judge: decode(encode(x)) round trips on real and
//! fixture vocabularies, typed errors for bad ids and bad metadata, special-token handling on
//! a hand-made vocabulary.

mod common;

use common::{real_model, root};
use llmtool::model::Model;
use llmtool::tokenizer::{Tokenizer, TokenizerError, TokenizerMetaError};
use llmtool_formats::{MetaArray, MetaValue, Metadata};

fn strings() -> Vec<String> {
    let p = root().join("fixtures/tokenizer/strings.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn tokenizers() -> Vec<(String, Tokenizer)> {
    let mut out = vec![("smollm2".to_string(), Tokenizer::from_model(&Model::open(&real_model()).unwrap()).unwrap())];
    for arch in ["llama", "qwen2", "phi3", "gemma", "gemma2"] {
        let m = Model::open(&root().join("fixtures/models").join(arch)).unwrap();
        out.push((arch.to_string(), Tokenizer::from_model(&m).unwrap()));
    }
    out
}

#[test]
fn decode_of_encode_gives_the_text_back() {
    for (name, tok) in tokenizers() {
        for s in strings() {
            let ids = tok.encode(&s, false, false).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), s, "{name}: {ids:?}");
            // Concatenated pieces are the same bytes.
            let pieces: Vec<u8> = ids.iter().flat_map(|&i| tok.token_to_piece(i).unwrap()).collect();
            let skip = usize::from(tok.add_space_prefix() && pieces.first() == Some(&b' '));
            assert_eq!(&pieces[skip..], s.as_bytes(), "{name}");
        }
    }
}

#[test]
fn smollm2_special_tokens_and_flags() {
    let tok = Tokenizer::from_model(&Model::open(&real_model()).unwrap()).unwrap();
    assert_eq!(tok.n_vocab(), 49152);
    assert_eq!((tok.bos(), tok.eos(), tok.add_bos(), tok.add_eos()), (Some(1), Some(2), false, false));
    let im_end = tok.token_id("<|im_end|>").unwrap();
    assert!(tok.is_eog(im_end) && tok.is_eog(tok.token_id("<|endoftext|>").unwrap()));
    assert!(!tok.is_eog(tok.token_id("<|im_start|>").unwrap()));
    // parse_special: the control token written in the text is that token, or plain text.
    let with = tok.encode("a<|im_end|>b", false, true).unwrap();
    assert_eq!(with[1], im_end);
    let without = tok.encode("a<|im_end|>b", false, false).unwrap();
    assert!(!without.contains(&im_end) && without.len() > 3);
    assert_eq!(tok.decode(&with).unwrap(), "a<|im_end|>b");
    assert_eq!(tok.token_to_piece(im_end).unwrap(), b"<|im_end|>");
    assert!(tok.encode("", true, true).unwrap().is_empty());
}

#[test]
fn gemma_spm_adds_bos_and_escapes_spaces() {
    let tok = Tokenizer::from_model(&Model::open(&root().join("fixtures/models/gemma")).unwrap()).unwrap();
    assert_eq!(tok.kind(), llmtool::tokenizer::TokenizerKind::Spm);
    // Gemma's converted metadata: add_bos true, add_space_prefix false (as llama.cpp writes it).
    assert!(tok.add_bos() && !tok.add_space_prefix());
    let ids = tok.encode("Hello world", true, false).unwrap();
    assert_eq!(ids[0], tok.bos().unwrap());
    let pieces: Vec<Vec<u8>> = ids[1..].iter().map(|&i| tok.token_to_piece(i).unwrap()).collect();
    assert_eq!(pieces.concat(), b"Hello world");
    assert!(ids[1..].iter().any(|&i| tok.token_text(i).unwrap().starts_with('▁')), "space escaped to ▁");
    assert_eq!(tok.encode("", true, false).unwrap(), [tok.bos().unwrap()]);
}

#[test]
fn unknown_ids_are_typed_errors() {
    let tok = Tokenizer::from_model(&Model::open(&root().join("fixtures/models/llama")).unwrap()).unwrap();
    let n = tok.n_vocab() as u32;
    assert_eq!(tok.decode(&[0, n]).unwrap_err(), TokenizerError::UnknownTokenId { id: n, n_vocab: n as usize });
    assert!(matches!(tok.token_to_piece(u32::MAX), Err(TokenizerError::UnknownTokenId { .. })));
    assert!(tok.token_text(n).is_err());
}

fn strings_array(v: &[&str]) -> MetaValue {
    MetaValue::Array(MetaArray::String(v.iter().map(|s| s.to_string()).collect()))
}

/// A byte-level vocabulary: the 256 byte chars, "ab", and two special tokens.
fn tiny_bpe(pre: &str) -> Metadata {
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", MetaValue::String("gpt2".into()));
    md.insert("tokenizer.ggml.pre", MetaValue::String(pre.into()));
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| {
            // GPT-2 byte chars: printable Latin-1 as is, the rest from U+0100 in order.
            let printable = |b: u8| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
            if printable(b) {
                char::from(b).to_string()
            } else {
                let n = (0..b).filter(|&x| !printable(x)).count() as u32;
                char::from_u32(256 + n).unwrap().to_string()
            }
        })
        .collect();
    tokens.extend(["ab".to_string(), "<|ctl|>".to_string(), "<user>".to_string()]);
    let mut types = vec![1i32; 257];
    types.extend([3, 4]);
    md.insert("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::String(tokens)));
    md.insert("tokenizer.ggml.token_type", MetaValue::Array(MetaArray::I32(types)));
    md.insert("tokenizer.ggml.merges", strings_array(&["a b"]));
    md.insert("tokenizer.ggml.bos_token_id", MetaValue::U32(257));
    md
}

#[test]
fn hand_made_vocabulary_specials_and_merges() {
    let md = tiny_bpe("gpt-2");
    let tok = Tokenizer::from_gguf_metadata(&md).unwrap();
    let (ab, ctl, user) = (256, 257, 258);
    assert_eq!(tok.encode("ab", false, false).unwrap(), [ab]);
    // USER_DEFINED tokens are cut out even without parse_special; CONTROL ones only with it.
    assert_eq!(tok.encode("ab<user>ab", false, false).unwrap(), [ab, user, ab]);
    assert_eq!(tok.encode("ab<|ctl|>", false, true).unwrap(), [ab, ctl]);
    assert_ne!(tok.encode("ab<|ctl|>", false, false).unwrap(), [ab, ctl]);
    assert!(!tok.add_bos());
    let mut md = md;
    md.insert("tokenizer.ggml.add_bos_token", MetaValue::Bool(true));
    let tok = Tokenizer::from_gguf_metadata(&md).unwrap();
    assert_eq!(tok.encode("ab", true, false).unwrap(), [ctl, ab]);
}

#[test]
fn bad_metadata_is_a_typed_error() {
    let mut md = tiny_bpe("no-such-pre");
    assert!(matches!(Tokenizer::from_gguf_metadata(&md), Err(TokenizerError::UnsupportedPre { .. })));
    md.remove("tokenizer.ggml.model");
    assert!(matches!(
        Tokenizer::from_gguf_metadata(&md),
        Err(TokenizerError::Meta(TokenizerMetaError::Missing { .. }))
    ));
    let mut md = tiny_bpe("gpt-2");
    md.remove("tokenizer.ggml.merges");
    assert!(matches!(
        Tokenizer::from_gguf_metadata(&md),
        Err(TokenizerError::Meta(TokenizerMetaError::Missing { .. }))
    ));
    let mut md = tiny_bpe("gpt-2");
    md.insert("tokenizer.ggml.token_type", MetaValue::Array(MetaArray::I32(vec![1; 3])));
    assert!(matches!(
        Tokenizer::from_gguf_metadata(&md),
        Err(TokenizerError::Meta(TokenizerMetaError::LengthMismatch { .. }))
    ));
    let mut md = tiny_bpe("gpt-2");
    md.insert("tokenizer.ggml.add_bos_token", MetaValue::Bool(true));
    md.remove("tokenizer.ggml.bos_token_id");
    let tok = Tokenizer::from_gguf_metadata(&md).unwrap();
    assert!(matches!(tok.encode("x", true, false), Err(TokenizerError::MissingSpecial { .. })));
}
