//! Code point classes and the GPT-2 byte ⇄ char mapping used by the tokenizer.
//!
//! llama.cpp (`unicode.cpp`, `unicode_cpt_flags`) classifies code points by Unicode general
//! category (`\p{L}`, `\p{N}`, `\p{P}`, `\p{M}`, `\p{S}`) and the `White_Space` property. We
//! take the category ranges from `regex-syntax`'s Unicode tables (the ones the `regex` crate
//! uses) and `White_Space` from `char::is_whitespace`; both follow the Unicode standard, so they
//! agree with llama.cpp's generated tables except for code points assigned in a Unicode
//! version one side lacks.

use std::sync::OnceLock;

pub(crate) const LETTER: u8 = 1;
pub(crate) const NUMBER: u8 = 2;
pub(crate) const PUNCT: u8 = 4;
pub(crate) const MARK: u8 = 8;
pub(crate) const SYMBOL: u8 = 16;
pub(crate) const WHITESPACE: u8 = 32;
/// Tekken's "upper-case run" class `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
pub(crate) const TEKKEN_UPPER: u8 = 64;
/// Tekken's "lower-case run" class `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
pub(crate) const TEKKEN_LOWER: u8 = 128;

/// Number of Unicode code points (U+0000..=U+10FFFF).
const N_CPTS: usize = 0x11_0000;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![0u8; N_CPTS];
        for (class, bit) in [
            (r"\p{L}", LETTER),
            (r"\p{N}", NUMBER),
            (r"\p{P}", PUNCT),
            (r"\p{M}", MARK),
            (r"\p{S}", SYMBOL),
            (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", TEKKEN_UPPER),
            (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", TEKKEN_LOWER),
        ] {
            for (lo, hi) in class_ranges(class) {
                for f in &mut t[lo as usize..=hi as usize] {
                    *f |= bit;
                }
            }
        }
        for (cp, f) in t.iter_mut().enumerate() {
            if char::from_u32(cp as u32).is_some_and(char::is_whitespace) {
                *f |= WHITESPACE;
            }
        }
        t
    })
}

/// The code point ranges of a Unicode class expression, from regex-syntax's tables.
fn class_ranges(class: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    // The expressions are fixed literals above; regex-syntax always parses them.
    let hir = regex_syntax::Parser::new().parse(class).expect("fixed Unicode class expression");
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect(),
        _ => Vec::new(),
    }
}

/// The class bits of a code point (0 for unassigned code points and those of category C/Z
/// that are not white space).
#[inline]
pub(crate) fn flags(c: char) -> u8 {
    table()[c as usize]
}

#[inline]
pub(crate) fn is_letter(c: char) -> bool {
    flags(c) & LETTER != 0
}

#[inline]
pub(crate) fn is_number(c: char) -> bool {
    flags(c) & NUMBER != 0
}

#[inline]
pub(crate) fn is_whitespace(c: char) -> bool {
    flags(c) & WHITESPACE != 0
}

/// GPT-2's byte → char table (`bytes_to_unicode` in GPT-2's encoder.py; llama.cpp
/// `unicode_byte_to_utf8_map`): printable Latin-1 bytes map to themselves, the other 68 bytes
/// to U+0100.. in byte order.
pub(crate) fn byte_to_char_table() -> &'static [char; 256] {
    static T: OnceLock<[char; 256]> = OnceLock::new();
    T.get_or_init(|| {
        let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let mut t = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..256u32 {
            let cp = if printable(b) {
                b
            } else {
                n += 1;
                255 + n
            };
            t[b as usize] = char::from_u32(cp).unwrap_or('\0');
        }
        t
    })
}

/// The inverse of [`byte_to_char_table`]: `None` for chars outside the mapping.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    static T: OnceLock<Vec<i16>> = OnceLock::new();
    let t = T.get_or_init(|| {
        let mut t = vec![-1i16; 0x144];
        for (b, &c) in byte_to_char_table().iter().enumerate() {
            t[c as usize] = b as i16;
        }
        t
    });
    t.get(c as usize).and_then(|&b| u8::try_from(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_unicode_categories() {
        assert!(is_letter('a') && is_letter('é') && is_letter('中') && !is_letter('1'));
        assert!(is_number('7') && is_number('½') && is_number('٣') && !is_number('x'));
        assert!(flags('!') & PUNCT != 0 && flags('$') & SYMBOL != 0 && flags('\u{301}') & MARK != 0);
        assert!(is_whitespace(' ') && is_whitespace('\n') && is_whitespace('\u{3000}') && !is_whitespace('x'));
        assert_eq!(flags('\u{378}'), 0); // unassigned
    }

    #[test]
    fn byte_map_is_a_bijection() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(t[b as usize]), Some(b));
        }
        assert_eq!(char_to_byte('中'), None);
    }
}
