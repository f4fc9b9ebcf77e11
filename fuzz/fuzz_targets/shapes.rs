//! Structure-aware inputs for the JSON and YAML parsers: a document tree built from the
//! fuzzer's bytes (`arbitrary::Unstructured` picks each node's kind and content), with map
//! keys and most strings drawn from the words the parser knows (`vocab.rs`), so generated
//! documents get past "unknown key" and "wrong type" checks and reach the deep paths; numbers
//! are drawn from the boundary values readers check (0, 1, 2^16, 2^22, 2^31, 2^32, 2^40,
//! i64::MIN, …). The tree is written out as JSON, or as YAML in block or flow style with
//! anchors and aliases.
#![allow(dead_code)]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use std::fmt::Write;

/// A document node. `Anchor(n, node)` defines `&an`; `Alias(n)` refers to it (YAML only; in
/// JSON an anchor is its node and an alias is null).
#[derive(Debug)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>, bool),
    Map(Vec<(String, Node)>, bool),
    Anchor(u32, Box<Node>),
    Alias(u32),
}

const MAX_DEPTH: usize = 8;
const MAX_NODES: usize = 4000;

const INTS: &[i64] = &[
    0,
    1,
    2,
    -1,
    3,
    4,
    8,
    16,
    32,
    64,
    128,
    255,
    256,
    4095,
    4096,
    4097,
    65535,
    65536,
    65537,
    (1 << 22) - 1,
    1 << 22,
    i32::MAX as i64,
    i32::MIN as i64,
    u32::MAX as i64,
    1 << 32,
    1 << 40,
    1 << 53,
    i64::MAX,
    i64::MIN,
];
const FLOATS: &[f64] = &[0.0, -0.0, 0.5, 1.0, -1.0, 2.0, 1e-6, 1e-12, 1e30, -1e300, 1e308, f64::MIN_POSITIVE, 0.1];

/// Builds trees from the fuzzer's bytes.
pub struct Gen<'a> {
    u: Unstructured<'a>,
    words: &'static [&'static str],
    yaml: bool,
    anchors: u32,
    nodes: usize,
}

impl<'a> Gen<'a> {
    pub fn new(data: &'a [u8], words: &'static [&'static str], yaml: bool) -> Self {
        Gen { u: Unstructured::new(data), words, yaml, anchors: 0, nodes: 0 }
    }

    /// A word the parser knows, sometimes with a dotted or numbered variation, or any short
    /// string.
    fn string(&mut self) -> Result<String> {
        Ok(match self.u.int_in_range(0..=9u8)? {
            0 => {
                let len = self.u.int_in_range(0..=16usize)?;
                let mut s = String::new();
                for _ in 0..len {
                    s.push(self.u.arbitrary::<char>()?);
                }
                s
            }
            1 => format!("{}.{}", self.u.choose(self.words)?, self.u.int_in_range(0..=40u32)?),
            2 => format!("model.layers.{}.{}", self.u.int_in_range(0..=3u32)?, self.u.choose(self.words)?),
            _ => self.u.choose(self.words)?.to_string(),
        })
    }

    fn key(&mut self) -> Result<String> {
        if self.u.ratio(1u8, 12)? {
            self.string()
        } else {
            Ok(self.u.choose(self.words)?.to_string())
        }
    }

    /// A node at `depth`; collections only while depth and node budgets last.
    pub fn node(&mut self, depth: usize) -> Result<Node> {
        self.nodes += 1;
        let leaf_only = depth >= MAX_DEPTH || self.nodes > MAX_NODES || self.u.is_empty();
        let kind = self.u.int_in_range(0..=if leaf_only { 7u8 } else { 12 })?;
        Ok(match kind {
            0 | 1 => Node::Str(self.string()?),
            2 => Node::Int(*self.u.choose(INTS)?),
            3 => Node::Int(self.u.int_in_range(0..=64)?),
            4 => match self.u.int_in_range(0..=2u8)? {
                0 => Node::Uint(self.u.arbitrary()?),
                1 => Node::Float(*self.u.choose(FLOATS)?),
                _ => Node::Float(self.u.arbitrary()?),
            },
            5 => Node::Bool(self.u.arbitrary()?),
            6 => Node::Null,
            7 if self.yaml && self.anchors > 0 => Node::Alias(self.u.int_in_range(0..=self.anchors - 1)?),
            7 => Node::Str(self.string()?),
            8 if self.yaml => match self.node(depth + 1)? {
                // YAML puts at most one anchor on a node, and none on an alias; the anchor is
                // numbered after its node, so aliases inside it refer to earlier anchors.
                n @ (Node::Alias(_) | Node::Anchor(..)) => n,
                n => {
                    self.anchors += 1;
                    Node::Anchor(self.anchors - 1, Box::new(n))
                }
            },
            8..=10 => self.map(depth)?,
            _ => {
                let flow = self.u.ratio(1u8, 3)?;
                let len = self.u.int_in_range(0..=8usize)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.node(depth + 1)?);
                }
                Node::Seq(items, flow)
            }
        })
    }

    /// A map (the top of every config).
    pub fn map(&mut self, depth: usize) -> Result<Node> {
        let flow = self.u.ratio(1u8, 4)?;
        let len = self.u.int_in_range(0..=12usize)?;
        let mut entries = Vec::with_capacity(len);
        for _ in 0..len {
            // Unique keys: YAML refuses a repeated one, and JSON keeps only the last. (Checked
            // before the value is made: a dropped value's anchors would be missing.)
            let key = self.key()?;
            if !entries.iter().any(|(k, _)| *k == key) {
                let value = self.node(depth + 1)?;
                entries.push((key, value));
            }
        }
        Ok(Node::Map(entries, flow))
    }
}

/// The tree as JSON (anchors are their node, aliases null, non-finite floats null).
pub fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value;
    match n {
        Node::Null | Node::Alias(_) => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::from(*i),
        Node::Uint(u) => Value::from(*u),
        Node::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items, _) => Value::Array(items.iter().map(to_json).collect()),
        Node::Map(entries, _) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Node::Anchor(_, inner) => to_json(inner),
    }
}

/// A scalar as YAML: plain when it is a simple word that YAML reads as a string, else
/// double-quoted.
fn yaml_str(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        return s.to_string();
    }
    // Double-quoted, escaping what YAML does not allow as is (its printable set: tab, line
    // breaks, U+0020–U+007E, U+0085, U+00A0–U+D7FF, U+E000–U+FFFD, U+10000 and up).
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'.. => out.push(c),
            c => write!(out, "\\u{:04x}", c as u32).unwrap(),
        }
    }
    out.push('"');
    out
}

fn is_block(n: &Node) -> bool {
    match n {
        Node::Seq(items, flow) => !flow && !items.is_empty(),
        Node::Map(entries, flow) => !flow && !entries.is_empty(),
        _ => false,
    }
}

/// A node written on one line (scalars, aliases, flow collections).
fn yaml_inline(n: &Node, out: &mut String) {
    match n {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Int(i) => write!(out, "{i}").unwrap(),
        Node::Uint(u) => write!(out, "{u}").unwrap(),
        Node::Float(f) if f.is_nan() => out.push_str(".nan"),
        Node::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { ".inf" } else { "-.inf" }),
        Node::Float(f) => write!(out, "{f:?}").unwrap(),
        Node::Str(s) => out.push_str(&yaml_str(s)),
        Node::Alias(a) => write!(out, "*a{a}").unwrap(),
        Node::Anchor(a, inner) => {
            write!(out, "&a{a} ").unwrap();
            yaml_inline(inner, out);
        }
        Node::Seq(items, _) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_inline(it, out);
            }
            out.push(']');
        }
        Node::Map(entries, _) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write!(out, "{}: ", yaml_str(k)).unwrap();
                yaml_inline(v, out);
            }
            out.push('}');
        }
    }
}

/// What follows `key:` or `-`: the value inline, or its anchor and the block on the next lines.
fn yaml_value(n: &Node, indent: usize, out: &mut String) {
    let (anchor, inner) = match n {
        Node::Anchor(a, inner) if is_block(inner) => (Some(*a), &**inner),
        _ => (None, n),
    };
    if is_block(inner) {
        if let Some(a) = anchor {
            write!(out, " &a{a}").unwrap();
        }
        out.push('\n');
        yaml_block(inner, indent + 2, out);
    } else {
        out.push(' ');
        yaml_inline(n, out);
        out.push('\n');
    }
}

/// A block collection at `indent`.
fn yaml_block(n: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match n {
        Node::Map(entries, _) => {
            for (k, v) in entries {
                write!(out, "{pad}{}:", yaml_str(k)).unwrap();
                yaml_value(v, indent, out);
            }
        }
        Node::Seq(items, _) => {
            for it in items {
                write!(out, "{pad}-").unwrap();
                yaml_value(it, indent, out);
            }
        }
        _ => {
            out.push_str(&pad);
            yaml_inline(n, out);
            out.push('\n');
        }
    }
}

/// The tree as a YAML document.
pub fn to_yaml(n: &Node) -> String {
    let mut out = String::new();
    if is_block(n) {
        yaml_block(n, 0, &mut out);
    } else {
        yaml_inline(n, &mut out);
        out.push('\n');
    }
    out
}
