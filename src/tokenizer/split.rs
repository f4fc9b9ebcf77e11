//! Pre-tokenizer splitting: text → words, as llama.cpp's `unicode_regex_split` does for the
//! regex lists `llm_tokenizer_bpe` selects per `tokenizer.ggml.pre` (llama-vocab.cpp).
//!
//! The regexes are applied in turn, each one splitting the pieces the previous one left, and
//! text a regex does not match stays as its own piece ("isolated" behaviour). llama.cpp runs
//! the GPT-2, Llama 3 and Qwen2 regexes through hand-written matchers (`unicode.cpp`,
//! `unicode_regex_split_custom_*`) whose quirks we keep, e.g. `\s+(?!\S)` at the end of a
//! piece takes the whole run; the single-class regexes (`\p{N}`, `\p{N}+`, the punctuation run
//! of the `default` list, `[0-9][0-9][0-9]`) are plain leftmost-longest runs.

use super::unicode::{self, flags, is_letter, is_number, is_whitespace};

/// A pre-tokenizer: the regex list of one llama.cpp pre type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreSplit {
    /// `[\p{P}\$\+<=>\^~\|]+`, GPT-2, `\p{N}+`, `[0-9][0-9][0-9]` (llama.cpp `default`).
    Default,
    /// GPT-2's regex alone (`gpt-2`, `mpt`, `olmo`, …).
    Gpt2,
    /// `\p{N}` then GPT-2's regex (`smollm`, `starcoder`, `refact`, `command-r`, …).
    DigitsGpt2,
    /// Llama 3's regex: `\p{N}{1,3}` digit groups (`llama-bpe`, `llama3`, `dbrx`, …).
    Llama3,
    /// Qwen2's regex: Llama 3's with single digits (`qwen2`, `stablelm2`, …).
    Qwen2,
    /// Mistral's tekken regex: case-aware letter runs, single digits (`tekken`).
    Tekken,
}

impl PreSplit {
    /// The splitter of a `tokenizer.ggml.pre` name (llama-vocab.cpp `llama_vocab::impl::load`
    /// and `llm_tokenizer_bpe`); `None` for names we do not implement.
    pub fn from_pre_name(name: &str) -> Option<PreSplit> {
        Some(match name {
            "" | "default" => PreSplit::Default,
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de" | "a.x-4.0"
            | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "exaone4" | "jina-v1-en" | "jina-v2-code"
            | "roberta-bpe" => PreSplit::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "mellum2" => {
                PreSplit::DigitsGpt2
            }
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
            | "jina-v5-nano" | "dbrx" | "smaug-bpe" => PreSplit::Llama3,
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" => PreSplit::Qwen2,
            "tekken" => PreSplit::Tekken,
            _ => return None,
        })
    }

    /// Splits `text` into words (slices of `text`, in order, covering it).
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let cpts: Vec<char> = text.chars().collect();
        let mut lens = vec![cpts.len()];
        match self {
            PreSplit::Default => {
                lens = split_runs(&cpts, &lens, is_default_punct);
                lens = split_gpt2(&cpts, &lens);
                lens = split_runs(&cpts, &lens, is_number);
                lens = split_digit_triples(&cpts, &lens);
            }
            PreSplit::Gpt2 => lens = split_gpt2(&cpts, &lens),
            PreSplit::DigitsGpt2 => {
                lens = split_each(&cpts, &lens, is_number);
                lens = split_gpt2(&cpts, &lens);
            }
            PreSplit::Llama3 => lens = split_llama3(&cpts, &lens, Some(3)),
            PreSplit::Qwen2 => lens = split_llama3(&cpts, &lens, Some(1)),
            PreSplit::Tekken => lens = split_tekken(&cpts, &lens),
        }
        let mut words = Vec::with_capacity(lens.len());
        let mut byte = 0;
        let mut cp = 0;
        for len in lens {
            let start = byte;
            for c in &cpts[cp..cp + len] {
                byte += c.len_utf8();
            }
            cp += len;
            words.push(&text[start..byte]);
        }
        words
    }
}

/// `[\p{P}\$\+<=>\^~\|]` as llama.cpp matches it on its "collapsed" text: ASCII punctuation
/// plus `$+<=>^~|`, and non-ASCII code points whose category is P (white space first).
fn is_default_punct(c: char) -> bool {
    if c.is_ascii() {
        return matches!(c, '!'..='#' | '%'..='*' | ','..='/' | ':' | ';' | '?' | '@' | '['..=']' | '_' | '{' | '}')
            || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|');
    }
    let f = flags(c);
    f & unicode::WHITESPACE == 0 && f & unicode::PUNCT != 0
}

/// Applies `matcher` (the match length at a position, if any) left to right over each piece;
/// matches and the gaps between them become pieces (std::regex_iterator in
/// `unicode_regex_split_stl`).
fn split_matches(cpts: &[char], lens: &[usize], matcher: impl Fn(&[char], usize) -> Option<usize>) -> Vec<usize> {
    let mut out = Vec::with_capacity(lens.len());
    let mut start = 0;
    for &len in lens {
        let piece = &cpts[start..start + len];
        start += len;
        let mut gap_start = 0;
        let mut pos = 0;
        while pos < piece.len() {
            match matcher(piece, pos) {
                Some(n) if n > 0 => {
                    if pos > gap_start {
                        out.push(pos - gap_start);
                    }
                    out.push(n);
                    pos += n;
                    gap_start = pos;
                }
                _ => pos += 1,
            }
        }
        if piece.len() > gap_start {
            out.push(piece.len() - gap_start);
        }
    }
    out
}

/// Maximal runs of `pred` code points (`\p{N}+`, the `default` punctuation run).
fn split_runs(cpts: &[char], lens: &[usize], pred: fn(char) -> bool) -> Vec<usize> {
    split_matches(cpts, lens, |p, pos| {
        let n = p[pos..].iter().take_while(|&&c| pred(c)).count();
        (n > 0).then_some(n)
    })
}

/// Each `pred` code point on its own (`\p{N}`).
fn split_each(cpts: &[char], lens: &[usize], pred: fn(char) -> bool) -> Vec<usize> {
    split_matches(cpts, lens, |p, pos| pred(p[pos]).then_some(1))
}

/// `[0-9][0-9][0-9]`: non-overlapping ASCII digit triples, left to right.
fn split_digit_triples(cpts: &[char], lens: &[usize]) -> Vec<usize> {
    split_matches(cpts, lens, |p, pos| {
        (p.len() - pos >= 3 && p[pos..pos + 3].iter().all(char::is_ascii_digit)).then_some(3)
    })
}

/// Collects piece lengths; every match ends where the next starts.
struct Pieces {
    out: Vec<usize>,
    prev_end: usize,
}

impl Pieces {
    fn add(&mut self, end: usize) {
        if end > self.prev_end {
            self.out.push(end - self.prev_end);
        }
        self.prev_end = end;
    }
}

/// Runs `segment(pieces, ini, end)` on each pre-split segment `ini..end` of `lens` (the
/// piece boundaries it adds are relative to the whole text) and returns the piece lengths.
fn split_segments(lens: &[usize], mut segment: impl FnMut(&mut Pieces, usize, usize)) -> Vec<usize> {
    let mut pieces = Pieces { out: Vec::with_capacity(lens.len() * 2), prev_end: 0 };
    let mut start = 0;
    for &len in lens {
        let (ini, end) = (start, start + len);
        start = end;
        pieces.prev_end = ini;
        segment(&mut pieces, ini, end);
    }
    pieces.out
}

/// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
fn split_gpt2(cpts: &[char], lens: &[usize]) -> Vec<usize> {
    split_segments(lens, |pieces, ini, end| {
        // The code point at `p` if inside this piece.
        let at = |p: usize| (p < end).then(|| cpts[p]);
        let mut pos = ini;
        while pos < end {
            let c = cpts[pos];
            if c == '\'' && pos + 1 < end {
                let n = cpts[pos + 1];
                if matches!(n, 's' | 't' | 'm' | 'd') {
                    pos += 2;
                    pieces.add(pos);
                    continue;
                }
                if pos + 2 < end && matches!((n, cpts[pos + 2]), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                    pos += 3;
                    pieces.add(pos);
                    continue;
                }
            }
            // ` ?X+` for X = letters, numbers, "other" (not space/letter/number).
            let c2 = if c == ' ' { at(pos + 1) } else { Some(c) };
            let classes: [fn(char) -> bool; 3] =
                [is_letter, is_number, |c| !(is_whitespace(c) || is_letter(c) || is_number(c))];
            if let Some(class) = c2.and_then(|c2| classes.into_iter().find(|f| f(c2))) {
                pos += usize::from(c == ' ');
                while at(pos).is_some_and(class) {
                    pos += 1;
                }
                pieces.add(pos);
                continue;
            }
            let n_ws = (pos..end).take_while(|&p| is_whitespace(cpts[p])).count();
            if n_ws > 1 && pos + n_ws < end {
                // \s+(?!\S): leave the last white space to the next word.
                pos += n_ws - 1;
            } else if n_ws > 0 {
                pos += n_ws;
            } else {
                pos += 1;
            }
            pieces.add(pos);
        }
    })
}

/// Llama 3 (`digits = Some(3)`) and Qwen2 (`Some(1)`):
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
fn split_llama3(cpts: &[char], lens: &[usize], digits: Option<usize>) -> Vec<usize> {
    let max_digits = digits.unwrap_or(usize::MAX);
    split_segments(lens, |pieces, ini, end| {
        let at = |p: usize| (p < end).then(|| cpts[p]);
        let is_other = |c: char| !(is_whitespace(c) || is_letter(c) || is_number(c));
        let mut pos = ini;
        while pos < end {
            let c = cpts[pos];
            if c == '\'' && pos + 1 < end {
                let n = cpts[pos + 1].to_ascii_lowercase();
                if matches!(n, 's' | 't' | 'm' | 'd') {
                    pos += 2;
                    pieces.add(pos);
                    continue;
                }
                if pos + 2 < end
                    && matches!((n, cpts[pos + 2].to_ascii_lowercase()), ('r', 'e') | ('v', 'e') | ('l', 'l'))
                {
                    pos += 3;
                    pieces.add(pos);
                    continue;
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == '\r' || c == '\n' || is_number(c)) && (is_letter(c) || at(pos + 1).is_some_and(is_letter)) {
                pos += 1;
                while at(pos).is_some_and(is_letter) {
                    pos += 1;
                }
                pieces.add(pos);
                continue;
            }
            // \p{N}{1,max}
            if is_number(c) {
                let mut group = 0;
                while at(pos).is_some_and(is_number) {
                    pos += 1;
                    group += 1;
                    if group == max_digits {
                        pieces.add(pos);
                        group = 0;
                    }
                }
                pieces.add(pos);
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*` (a lone space at the end of a piece also lands here)
            let c2 = if c == ' ' { at(pos + 1) } else { Some(c) };
            if c2.is_none_or(is_other) {
                pos += usize::from(c == ' ');
                while at(pos).is_some_and(is_other) {
                    pos += 1;
                }
                while matches!(at(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                pieces.add(pos);
                continue;
            }
            pos = whitespace_end(cpts, pos, end);
            pieces.add(pos);
        }
    })
}

/// The end of `\s*[\r\n]+|\s+(?!\S)|\s+` matched at `pos` (Llama 3, Qwen2, tekken), or
/// `pos + 1` when nothing matches.
fn whitespace_end(cpts: &[char], pos: usize, end: usize) -> usize {
    let mut n_ws = 0;
    let mut last_rn = None;
    while pos + n_ws < end && is_whitespace(cpts[pos + n_ws]) {
        if matches!(cpts[pos + n_ws], '\r' | '\n') {
            last_rn = Some(pos + n_ws + 1);
        }
        n_ws += 1;
    }
    if let Some(p) = last_rn {
        p // \s*[\r\n]+
    } else if n_ws > 1 && pos + n_ws < end {
        pos + n_ws - 1 // \s+(?!\S)
    } else if n_ws > 0 {
        pos + n_ws
    } else {
        pos + 1
    }
}

/// Tekken (Mistral NeMo and later; tekken.json `config.pattern`):
/// `[^\r\n\p{L}\p{N}]?U*L+|[^\r\n\p{L}\p{N}]?U+L*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// with U = `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`, L = `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`, matched with
/// backtracking as tiktoken (mistral-common) and `tokenizers` do. llama.cpp runs an ASCII
/// approximation of it (`[^a-z]` / `[^A-Z]` letters for U / L, no `\p{M}`), which splits some
/// non-ASCII mixed-case words and combining marks differently; we follow the original pattern.
fn split_tekken(cpts: &[char], lens: &[usize]) -> Vec<usize> {
    split_segments(lens, |pieces, ini, end| {
        let has = |p: usize, bit: u8| p < end && flags(cpts[p]) & bit != 0;
        let upper = |p: usize| has(p, unicode::TEKKEN_UPPER);
        let lower = |p: usize| has(p, unicode::TEKKEN_LOWER);
        let other = |p: usize| p < end && !(is_whitespace(cpts[p]) || is_letter(cpts[p]) || is_number(cpts[p]));
        let run = |mut p: usize, class: &dyn Fn(usize) -> bool| {
            while class(p) {
                p += 1;
            }
            p
        };
        let mut pos = ini;
        while pos < end {
            let c = cpts[pos];
            // `[^\r\n\p{L}\p{N}]?` is greedy: with the prefix first, then without.
            let prefixed = !(c == '\r' || c == '\n' || is_letter(c) || is_number(c));
            let starts = if prefixed { [Some(pos + 1), Some(pos)] } else { [Some(pos), None] };
            // U*L+: U* gives back characters until L+ can start (L and U share Lm, Lo, M).
            let upper_lower = starts.iter().flatten().find_map(|&s| {
                let u_end = run(s, &upper);
                (s..=u_end).rev().find(|&j| lower(j)).map(|j| run(j, &lower))
            });
            // U+L*
            let upper_run = || {
                starts.iter().flatten().find_map(|&s| {
                    let u_end = run(s, &upper);
                    (u_end > s).then(|| run(u_end, &lower))
                })
            };
            if let Some(e) = upper_lower.or_else(upper_run) {
                pos = e;
            } else if is_number(c) {
                pos += 1;
            } else if other(pos) || (c == ' ' && other(pos + 1)) {
                // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
                pos = run(pos + usize::from(c == ' '), &other);
                while pos < end && matches!(cpts[pos], '\r' | '\n' | '/') {
                    pos += 1;
                }
            } else {
                pos = whitespace_end(cpts, pos, end);
            }
            pieces.add(pos);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(p: PreSplit, s: &str) -> Vec<&str> {
        p.split(s)
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words(PreSplit::Gpt2, "Hello world's  end\n\nx 123"),
            ["Hello", " world", "'s", " ", " end", "\n", "\n", "x", " 123"]
        );
        assert_eq!(words(PreSplit::Gpt2, "a   "), ["a", "   "]);
        assert_eq!(words(PreSplit::Gpt2, " ?! ok"), [" ?!", " ok"]);
    }

    #[test]
    fn smollm_isolates_digits_first() {
        assert_eq!(words(PreSplit::DigitsGpt2, "in 2024, x"), ["in", " ", "2", "0", "2", "4", ",", " x"]);
    }

    #[test]
    fn llama3_and_qwen2_digit_groups() {
        assert_eq!(
            words(PreSplit::Llama3, "12345 I'M ok\r\n\n  x"),
            ["123", "45", " I", "'M", " ok", "\r\n\n", " ", " x"]
        );
        assert_eq!(words(PreSplit::Qwen2, "123"), ["1", "2", "3"]);
    }

    #[test]
    fn tekken_case_runs() {
        assert_eq!(
            words(PreSplit::Tekken, "HelloWorld ABCdef x12 ÉcoleX\n\n  a/b// c"),
            ["Hello", "World", " ABCdef", " x", "1", "2", " École", "X", "\n\n", " ", " a", "/b", "//", " c"]
        );
        // A mark after an upper-case run joins it (\p{M} is in both classes).
        assert_eq!(words(PreSplit::Tekken, "A\u{301}b"), ["A\u{301}b"]);
        assert_eq!(words(PreSplit::Tekken, "it's"), ["it", "'s"]);
    }

    #[test]
    fn default_list() {
        assert_eq!(words(PreSplit::Default, "a+=b 12345"), ["a", "+=", "b", " ", "123", "45"]);
    }
}
