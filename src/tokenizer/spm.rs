//! SentencePiece-style merging by score (llama.cpp `llm_tokenizer_spm_session`).
//!
//! The text (spaces already escaped to `▁`) starts as its UTF-8 characters; the adjacent pair
//! whose concatenation is the vocabulary token with the highest score (leftmost among equal
//! scores) is merged until no pair is a token. Pieces that are no token are re-split along the
//! merges that made them, and characters that are no token become `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::error::TokenizerError;

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the smaller left index.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}

/// The vocabulary as the SPM session needs it.
pub(crate) trait SpmVocab {
    fn token_id(&self, text: &str) -> Option<u32>;
    fn score(&self, id: u32) -> f32;
    /// llama.cpp `byte_to_token` for SPM: `<0xXX>`, else the byte itself as a one-char token.
    fn byte_token(&self, byte: u8) -> Result<u32, TokenizerError>;
}

/// Tokenizes one escaped text fragment and appends its ids.
pub(crate) fn tokenize(text: &str, vocab: &dyn SpmVocab, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol { start, len: c.len_utf8(), prev: i.checked_sub(1), next: Some(i + 1) });
    }
    if let Some(last) = symbols.last_mut() {
        last.next = None;
    }
    let mut queue = BinaryHeap::new();
    let mut rev_merge: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut try_add = |symbols: &[Symbol], queue: &mut BinaryHeap<Bigram>, left: usize, right: usize| {
        let (l, r) = (&symbols[left], &symbols[right]);
        let piece = &text[l.start..l.start + l.len + r.len];
        if let Some(id) = vocab.token_id(piece) {
            queue.push(Bigram { left, right, score: vocab.score(id), size: piece.len() });
            rev_merge.insert(piece, (left, right));
        }
    };
    for i in 1..symbols.len() {
        try_add(&symbols, &mut queue, i - 1, i);
    }
    while let Some(b) = queue.pop() {
        let (l, r) = (symbols[b.left], symbols[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        symbols[b.left].len += r.len;
        symbols[b.right].len = 0;
        symbols[b.left].next = r.next;
        if let Some(n) = r.next {
            symbols[n].prev = Some(b.left);
        }
        if let Some(p) = l.prev {
            try_add(&symbols, &mut queue, p, b.left);
        }
        if let Some(n) = r.next {
            try_add(&symbols, &mut queue, b.left, n);
        }
    }
    let mut i = if symbols.is_empty() { None } else { Some(0) };
    while let Some(s) = i {
        resegment(text, &symbols, s, &rev_merge, vocab, out)?;
        i = symbols[s].next;
    }
    Ok(())
}

fn resegment(
    text: &str,
    symbols: &[Symbol],
    s: usize,
    rev_merge: &HashMap<&str, (usize, usize)>,
    vocab: &dyn SpmVocab,
    out: &mut Vec<u32>,
) -> Result<(), TokenizerError> {
    let sym = symbols[s];
    let piece = &text[sym.start..sym.start + sym.len];
    if let Some(id) = vocab.token_id(piece) {
        out.push(id);
        return Ok(());
    }
    match rev_merge.get(piece) {
        // A merged pair's halves are strictly shorter, so the recursion ends.
        Some(&(l, r)) if l != s && r != s => {
            resegment(text, symbols, l, rev_merge, vocab, out)?;
            resegment(text, symbols, r, rev_merge, vocab, out)
        }
        _ => {
            for b in piece.bytes() {
                out.push(vocab.byte_token(b)?);
            }
            Ok(())
        }
    }
}
