//! YAML from untrusted files (merge, MoE, EVOLVE configs and build recipes) with a bound on
//! alias expansion.
//!
//! yaml_serde expands every alias (`*a`) into a copy of its anchor's node while
//! deserializing. Its own guard counts alias *jumps* (at most 100 × the document's events),
//! not the nodes a jump copies, so a document with one anchored list of k items and m
//! aliases to it builds k·m values: 15 KB of YAML (a 10,000-item list, 5,000 aliases) made
//! `MergeConfig::parse` hold 745 MB, and the growth is quadratic in the file's size
//! (tests/alloc_bounds.rs, `yaml_alias_expansion_is_bounded`). [`from_str`] first walks the
//! document as yaml_serde would expand it, counting nodes and allocating nothing, and refuses
//! one that expands to more than [`max_nodes`]; only then does it deserialize.

use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use std::cell::Cell;
use std::fmt;

/// Nodes a document may expand to beyond one per byte of its text: without aliases every
/// node takes at least one byte, so this is the room aliases get (a real config repeats a
/// few small blocks: tens to hundreds of nodes).
pub const ALIAS_ALLOWANCE: usize = 100_000;

/// The most nodes (scalars, sequences, mappings, after alias expansion) a document of
/// `len` bytes may hold.
pub fn max_nodes(len: usize) -> usize {
    len.saturating_add(ALIAS_ALLOWANCE)
}

/// `yaml_serde::from_str`, after checking that the document expands to at most
/// [`max_nodes`]`(text.len())` nodes.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, yaml_serde::Error> {
    let seen = Cell::new(0);
    Count { seen: &seen, max: max_nodes(text.len()) }.deserialize(yaml_serde::Deserializer::from_str(text))?;
    yaml_serde::from_str(text)
}

/// Counts the nodes a deserializer hands out (aliases expanded), failing past `max`.
#[derive(Clone, Copy)]
struct Count<'a> {
    seen: &'a Cell<usize>,
    max: usize,
}

impl Count<'_> {
    fn node<E: serde::de::Error>(self) -> Result<(), E> {
        let n = self.seen.get() + 1;
        self.seen.set(n);
        if n > self.max {
            return Err(E::custom(format!(
                "the document expands to more than {} nodes (its aliases repeat their anchors' contents; \
                 at most its length in bytes + {ALIAS_ALLOWANCE})",
                self.max
            )));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! scalars {
    ($($f:ident($t:ty)),*) => {
        $(fn $f<E: serde::de::Error>(self, _: $t) -> Result<(), E> { self.node() })*
    };
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    scalars!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_i128(i128),
        visit_u128(u128),
        visit_f64(f64),
        visit_str(&str),
        visit_bytes(&[u8])
    );

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.node()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.node()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.node()?;
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.node()?;
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.node()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.node()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    /// A tagged node (`!tag value`).
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        self.node()?;
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_aliases_expand_to() {
        // 4 items in the anchor, 3 aliases: 1 map + 2 keys + 2 lists + 4 + 3 × (1 list + 4).
        let text = "a: &a [1, 2, 3, 4]\nb: [*a, *a, *a]\n";
        let seen = Cell::new(0);
        Count { seen: &seen, max: usize::MAX }.deserialize(yaml_serde::Deserializer::from_str(text)).unwrap();
        assert_eq!(seen.get(), 1 + 2 + 1 + 4 + 1 + 3 * 5);
        let v: yaml_serde::Value = from_str(text).unwrap();
        assert_eq!(v["b"][2][3], yaml_serde::Value::from(4));
        let tagged: yaml_serde::Value = from_str("x: !t {a: 1}\n").unwrap();
        assert!(matches!(tagged["x"], yaml_serde::Value::Tagged(_)));
    }

    #[test]
    fn refuses_a_document_that_expands_past_the_bound() {
        let k = 1000;
        let text = format!("a: &a [{}]\nb: [{}]\n", vec!["x"; k].join(","), vec!["*a"; 200].join(","));
        assert!(text.len() + ALIAS_ALLOWANCE < 200 * k);
        let e = from_str::<yaml_serde::Value>(&text).unwrap_err().to_string();
        assert!(e.contains("the document expands to more than"), "{e}");
    }
}
