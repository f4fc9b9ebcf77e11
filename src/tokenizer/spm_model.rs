//! SentencePiece `tokenizer.model` (protobuf `ModelProto`, sentencepiece_model.proto): the
//! pieces' scores, which tokenizer.json does not keep.
//!
//! llama.cpp's converter reads tokenizer.model when an HF dir has one
//! (`convert_hf_to_gguf.py` `_create_vocab_sentencepiece`) and writes its scores; the SPM
//! tokenizer merges by them. The merge ranks of tokenizer.json can order pieces differently:
//! Mistral's whitespace-run pieces (`▁▁`, …) have score −1e9 in the .model but early ids, so
//! their merges rank early in the tokenizer.json transformers makes. With the .model's scores,
//! `llama` vocabularies tokenize exactly like `sentencepiece`.

use std::path::Path;

use llmtool_formats::{MetaArray, MetaValue, Metadata};

use super::error::{TokenizerMetaError as E, TOKENIZER_MODEL};
use super::keys;
use super::to_hf::string_array;

/// One `ModelProto.pieces` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SpmPiece {
    pub piece: String,
    pub score: f32,
}

/// Reads the pieces (field 1: piece = 1, score = 2) of a serialized `ModelProto`.
pub fn read_spm_pieces(bytes: &[u8]) -> Result<Vec<SpmPiece>, E> {
    let mut pieces = Vec::new();
    for field in Fields(bytes) {
        if let (1, Wire::Bytes(msg)) = field? {
            let mut p = SpmPiece { piece: String::new(), score: 0.0 };
            for f in Fields(msg) {
                match f? {
                    (1, Wire::Bytes(s)) => {
                        p.piece = String::from_utf8(s.to_vec()).map_err(|_| {
                            E::bad(TOKENIZER_MODEL, format!("pieces[{}].piece", pieces.len()), "UTF-8", "other bytes")
                        })?
                    }
                    (2, Wire::Fixed32(v)) => p.score = f32::from_bits(v),
                    _ => {}
                }
            }
            pieces.push(p);
        }
    }
    if pieces.is_empty() {
        return Err(E::Missing { file: TOKENIZER_MODEL, key: "pieces".into() });
    }
    Ok(pieces)
}

/// For a `llama` (SentencePiece-style) vocabulary in `md`: each token whose text is the
/// .model's piece of the same id takes that piece's score. Other vocabularies are left alone.
pub fn apply_spm_model_scores(path: &Path, md: &mut Metadata) -> Result<(), E> {
    if md.get_str(keys::MODEL) != Some("llama") {
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(|e| E::bad(TOKENIZER_MODEL, "file", "a readable file", e))?;
    let pieces = read_spm_pieces(&bytes)?;
    let Some(tokens) = string_array(md, keys::TOKENS)? else { return Ok(()) };
    let mut scores = match md.get(keys::SCORES).and_then(MetaValue::as_array) {
        Some(MetaArray::F32(s)) if s.len() == tokens.len() => s.clone(),
        _ => vec![0.0; tokens.len()],
    };
    for ((t, p), s) in tokens.iter().zip(&pieces).zip(scores.iter_mut()) {
        if *t == p.piece {
            *s = p.score;
        }
    }
    md.insert(keys::SCORES, MetaValue::Array(MetaArray::F32(scores)));
    Ok(())
}

enum Wire<'a> {
    /// A varint or fixed64 value (not needed here).
    Other,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Protobuf fields of one message: (field number, value).
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, E> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or_else(truncated)?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(E::bad(TOKENIZER_MODEL, "protobuf", "a varint of at most 10 bytes", "a longer one"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], E> {
        if self.0.len() < n {
            return Err(truncated());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
}

fn truncated() -> E {
    E::bad(TOKENIZER_MODEL, "protobuf", "a complete ModelProto", "a truncated message")
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), E>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let mut read = || -> Result<(u64, Wire<'a>), E> {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => {
                    self.varint()?;
                    Wire::Other
                }
                1 => {
                    self.take(8)?;
                    Wire::Other
                }
                2 => {
                    let n = usize::try_from(self.varint()?).map_err(|_| truncated())?;
                    Wire::Bytes(self.take(n)?)
                }
                5 => Wire::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default())),
                w => return Err(E::bad(TOKENIZER_MODEL, "protobuf", "wire type 0, 1, 2 or 5", w)),
            };
            Ok((key >> 3, value))
        };
        let r = read();
        if r.is_err() {
            self.0 = &[]; // stop after an error
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pieces_and_scores() {
        // pieces { piece: "▁a" score: -2.5 type: NORMAL } trainer_spec { } pieces { piece: "b" }
        let mut piece = vec![0x0a, 4];
        piece.extend_from_slice("▁a".as_bytes());
        piece.push(0x15);
        piece.extend_from_slice(&(-2.5f32).to_le_bytes());
        piece.extend_from_slice(&[0x18, 1]);
        let mut bytes = vec![0x0a, piece.len() as u8];
        bytes.extend_from_slice(&piece);
        bytes.extend_from_slice(&[0x12, 2, 0x08, 3, 0x0a, 3, 0x0a, 1, b'b']);
        let p = read_spm_pieces(&bytes).unwrap();
        assert_eq!(p, [SpmPiece { piece: "▁a".into(), score: -2.5 }, SpmPiece { piece: "b".into(), score: 0.0 }]);
        assert!(read_spm_pieces(&bytes[..5]).is_err());
        assert!(read_spm_pieces(b"").is_err());
    }
}
