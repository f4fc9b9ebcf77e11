//! Byte-pair merging by rank (llama.cpp `llm_tokenizer_bpe_session::tokenize`).
//!
//! A word starts as its UTF-8 characters; the adjacent pair with the lowest merge rank (the
//! leftmost among equal ranks) is merged until no pair has a rank. Each final piece is looked
//! up in the vocabulary; a piece that is not a token falls back to single-byte tokens the way
//! llama.cpp does it (bytes that are no token are dropped).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Merge ranks: `first → second → rank`, looked up without allocating.
#[derive(Debug, Default)]
pub(crate) struct MergeRanks {
    ranks: HashMap<String, HashMap<String, u32>>,
}

impl MergeRanks {
    /// From `tokenizer.ggml.merges` entries "first second": split at the first space after the
    /// first byte; an entry without one is the pair ("", "") as in llama.cpp; the first entry of
    /// a pair wins (`std::map::emplace`).
    pub(crate) fn from_merges(merges: &[String]) -> Self {
        let mut ranks: HashMap<String, HashMap<String, u32>> = HashMap::new();
        for (rank, m) in merges.iter().enumerate() {
            // Byte-wise like std::string::find(' ', 1); a space is its own char, so both
            // halves are on char boundaries.
            let (first, second) = match m.bytes().skip(1).position(|b| b == b' ') {
                Some(i) => (&m[..i + 1], &m[i + 2..]),
                None => ("", ""),
            };
            ranks.entry(first.to_string()).or_default().entry(second.to_string()).or_insert(rank as u32);
        }
        MergeRanks { ranks }
    }

    fn rank(&self, first: &str, second: &str) -> Option<u32> {
        self.ranks.get(first)?.get(second).copied()
    }
}

/// A candidate merge: (rank, left, right, left len, right len) — ordered by rank, then left.
type Bigram = (u32, usize, usize, usize, usize);

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Merges one (byte-encoded) word and appends its token ids.
///
/// `lookup` maps a piece to its token id; `ignore_merges` (Llama 3) takes a word that is a
/// token as a whole.
pub(crate) fn merge_word(
    word: &str,
    ranks: &MergeRanks,
    ignore_merges: bool,
    lookup: &dyn Fn(&str) -> Option<u32>,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges {
        if let Some(id) = lookup(word) {
            out.push(id);
            return;
        }
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
    for (i, (start, c)) in word.char_indices().enumerate() {
        symbols.push(Symbol { start, len: c.len_utf8(), prev: i.checked_sub(1), next: Some(i + 1) });
    }
    if let Some(last) = symbols.last_mut() {
        last.next = None;
    }
    let text = |s: &Symbol| &word[s.start..s.start + s.len];

    // (rank, left) ascending; the lengths at push time tell whether the pair is still current.
    let mut queue: BinaryHeap<Reverse<Bigram>> = BinaryHeap::new();
    let push = |queue: &mut BinaryHeap<_>, symbols: &[Symbol], left: usize, right: usize| {
        let (l, r) = (&symbols[left], &symbols[right]);
        if let Some(rank) = ranks.rank(text(l), text(r)) {
            queue.push(Reverse((rank, left, right, l.len, r.len)));
        }
    };
    for i in 1..symbols.len() {
        push(&mut queue, &symbols, i - 1, i);
    }
    while let Some(Reverse((_, left, right, left_len, right_len))) = queue.pop() {
        if symbols[left].len == 0 || symbols[right].len == 0 {
            continue;
        }
        if symbols[left].len != left_len || symbols[right].len != right_len || symbols[left].next != Some(right) {
            continue; // outdated
        }
        symbols[left].len += symbols[right].len;
        symbols[right].len = 0;
        let next = symbols[right].next;
        symbols[left].next = next;
        if let Some(n) = next {
            symbols[n].prev = Some(left);
        }
        if let Some(p) = symbols[left].prev {
            push(&mut queue, &symbols, p, left);
        }
        if let Some(n) = next {
            push(&mut queue, &symbols, left, n);
        }
    }
    for s in symbols.iter().filter(|s| s.len > 0) {
        let piece = text(s);
        match lookup(piece) {
            Some(id) => out.push(id),
            None => {
                // llama.cpp looks up each raw byte as a one-byte string and drops misses.
                for b in piece.bytes() {
                    if b.is_ascii() {
                        if let Some(id) = lookup(std::str::from_utf8(&[b]).unwrap_or("")) {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_lowest_rank_first() {
        let vocab = ["a", "b", "c", "ab", "bc", "abc"];
        let lookup = |s: &str| vocab.iter().position(|&v| v == s).map(|i| i as u32);
        // "b c" has the lower rank, then "a bc".
        let ranks = MergeRanks::from_merges(&["b c".into(), "a b".into(), "a bc".into()]);
        let mut out = Vec::new();
        merge_word("abc", &ranks, false, &lookup, &mut out);
        assert_eq!(out, [5]);
        let ranks = MergeRanks::from_merges(&["a b".into(), "b c".into()]);
        out.clear();
        merge_word("abc", &ranks, false, &lookup, &mut out);
        assert_eq!(out, [3, 2]);
    }
}
