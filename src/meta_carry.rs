//! GGUF metadata carried through HF directories.
//!
//! An HF dir has no place for GGUF keys such as `general.license` or
//! `general.quantization_version`, so GGUF → HF → GGUF would lose them. On GGUF → HF we store
//! the metadata (types, values, order) as JSON under the safetensors `__metadata__` key
//! [`CARRY_KEY`]; on HF → GGUF the metadata derived from config.json and the tokenizer
//! files is merged with it:
//! - order: the carried order, then derived keys it did not know;
//! - values: derived keys win (config.json and tokenizer.json are what the user may have
//!   edited), except descriptive `general.*` keys, which HF files do not hold;
//! - the big tokenizer arrays are not carried (tokenizer.json holds them); only their place.
//!
//! The carried metadata also records a fingerprint of the HF JSON files written beside it.
//! When those files are unchanged, the carried keys are taken as they are (same key set, same
//! types), so GGUF → HF → GGUF gives back the original metadata exactly, and keys the
//! converter would add by default (e.g. `attention.key_length`) are not introduced.

use llmtool_formats::{MetaArray, MetaValue, Metadata, ValueType};
use serde_json::{json, Value};

/// The safetensors `__metadata__` key holding the carried metadata.
pub const CARRY_KEY: &str = "llmtool.gguf_metadata";

/// Keys whose values are always taken from the HF files (placeholders when carried).
const DERIVED_ONLY: &[&str] =
    &["tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.scores"];

/// `general.*` keys that are facts about the tensors or the architecture, not descriptions.
const GENERAL_DERIVED: &[&str] = &["general.architecture", "general.file_type", "general.alignment"];

#[derive(Debug, thiserror::Error)]
#[error("carried GGUF metadata ({CARRY_KEY}) is malformed at key '{key}': {why}")]
pub struct CarryError {
    pub key: String,
    pub why: String,
}

/// A fingerprint of HF JSON files: SHA-256 over their canonical form (keys sorted), so that
/// formatting and key order on disk do not matter.
pub fn fingerprint(files: &[Option<&Value>]) -> String {
    use sha2::{Digest, Sha256};
    fn feed(h: &mut Sha256, v: &Value) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                h.update(b"{");
                for k in keys {
                    h.update(serde_json::to_string(k).expect("string").as_bytes());
                    h.update(b":");
                    feed(h, &m[k]);
                    h.update(b",");
                }
                h.update(b"}");
            }
            Value::Array(a) => {
                h.update(b"[");
                for x in a {
                    feed(h, x);
                    h.update(b",");
                }
                h.update(b"]");
            }
            other => h.update(other.to_string().as_bytes()),
        }
    }
    let mut h = Sha256::new();
    for f in files {
        match f {
            Some(v) => feed(&mut h, v),
            None => h.update(b"-"),
        }
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Encodes metadata for [`CARRY_KEY`], with the fingerprint of the HF files written beside it.
pub fn encode(md: &Metadata, files_fingerprint: &str) -> String {
    let entries: Vec<Value> = md
        .iter()
        .map(|(k, v)| if DERIVED_ONLY.contains(&k) { json!([k, null]) } else { json!([k, value_json(v)]) })
        .collect();
    json!({"fingerprint": files_fingerprint, "entries": entries}).to_string()
}

/// Merges metadata derived from HF files with carried metadata (see module docs);
/// `files_fingerprint` is the [`fingerprint`] of the HF files as they are now.
pub fn merge(derived: Metadata, carried: &str, files_fingerprint: &str) -> Result<Metadata, CarryError> {
    let bad = |key: &str, why: &str| CarryError { key: key.to_string(), why: why.to_string() };
    let blob: Value = serde_json::from_str(carried).map_err(|e| bad("", &e.to_string()))?;
    let (Some(Value::String(fp)), Some(Value::Array(entries))) = (blob.get("fingerprint"), blob.get("entries")) else {
        return Err(bad("", "expected {\"fingerprint\": ..., \"entries\": [...]}"));
    };
    let unchanged = fp == files_fingerprint;
    let mut out = Metadata::new();
    for entry in entries {
        let (key, payload) = match entry.as_array().map(|a| a.as_slice()) {
            Some([Value::String(k), p]) => (k.as_str(), p),
            _ => return Err(bad("", "expected [key, value] pairs")),
        };
        let carried_wins = unchanged || (key.starts_with("general.") && !GENERAL_DERIVED.contains(&key));
        let value = match (derived.get(key), payload) {
            (Some(d), _) if !carried_wins => Some(d.clone()),
            (_, Value::Null) => derived.get(key).cloned(),
            (_, p) => Some(value_from_json(p).map_err(|why| bad(key, &why))?),
        };
        if let Some(v) = value {
            out.insert(key, v);
        }
    }
    if !unchanged {
        for (k, v) in derived.iter() {
            if !out.contains_key(k) {
                out.insert(k, v.clone());
            }
        }
    }
    Ok(out)
}

/// `[type, payload]`; arrays carry their element type at every nesting level, so empty
/// and nested arrays keep their types.
fn value_json(v: &MetaValue) -> Value {
    match v {
        MetaValue::Array(a) => json!([ValueType::Array.name(), array_json(a)]),
        _ => json!([v.value_type().name(), v.to_json()]),
    }
}

fn array_json(a: &MetaArray) -> Value {
    let items = match a {
        MetaArray::Array(v) => Value::Array(v.iter().map(array_json).collect()),
        _ => a.to_json(),
    };
    json!([a.element_type().name(), items])
}

fn type_named(name: &str) -> Result<ValueType, String> {
    (0..13).filter_map(ValueType::from_id).find(|t| t.name() == name).ok_or_else(|| format!("unknown type '{name}'"))
}

fn value_from_json(v: &Value) -> Result<MetaValue, String> {
    let (t, p) = match v.as_array().map(|a| a.as_slice()) {
        Some([Value::String(t), p]) => (type_named(t)?, p),
        _ => return Err("expected [type, value]".into()),
    };
    Ok(match t {
        ValueType::Array => MetaValue::Array(array_from_json(p)?),
        _ => scalar_from_json(t, p)?,
    })
}

fn float_from_json(p: &Value) -> Result<f64, String> {
    match p {
        Value::Number(n) => n.as_f64().ok_or_else(|| "bad float".to_string()),
        Value::String(s) => s.parse::<f64>().map_err(|e| e.to_string()),
        _ => Err("expected a float".into()),
    }
}

fn int<T: TryFrom<i128>>(p: &Value) -> Result<T, String> {
    let n = p.as_i64().map(i128::from).or_else(|| p.as_u64().map(i128::from)).ok_or("expected an integer")?;
    T::try_from(n).map_err(|_| format!("{n} out of range"))
}

fn scalar_from_json(t: ValueType, p: &Value) -> Result<MetaValue, String> {
    Ok(match t {
        ValueType::U8 => MetaValue::U8(int(p)?),
        ValueType::I8 => MetaValue::I8(int(p)?),
        ValueType::U16 => MetaValue::U16(int(p)?),
        ValueType::I16 => MetaValue::I16(int(p)?),
        ValueType::U32 => MetaValue::U32(int(p)?),
        ValueType::I32 => MetaValue::I32(int(p)?),
        ValueType::U64 => MetaValue::U64(int(p)?),
        ValueType::I64 => MetaValue::I64(int(p)?),
        ValueType::F32 => MetaValue::F32(float_from_json(p)? as f32),
        ValueType::F64 => MetaValue::F64(float_from_json(p)?),
        ValueType::Bool => MetaValue::Bool(p.as_bool().ok_or("expected a bool")?),
        ValueType::String => MetaValue::String(p.as_str().ok_or("expected a string")?.to_string()),
        ValueType::Array => return Err("nested array in scalar position".into()),
    })
}

fn array_from_json(p: &Value) -> Result<MetaArray, String> {
    let (t, items) = match p.as_array().map(|a| a.as_slice()) {
        Some([Value::String(t), Value::Array(items)]) => (type_named(t)?, items),
        _ => return Err("expected [element type, items]".into()),
    };
    macro_rules! collect {
        ($variant:ident) => {
            MetaArray::$variant(
                items
                    .iter()
                    .map(|x| match scalar_from_json(t, x)? {
                        MetaValue::$variant(v) => Ok(v),
                        _ => unreachable!("scalar_from_json returns the asked type"),
                    })
                    .collect::<Result<_, String>>()?,
            )
        };
    }
    Ok(match t {
        ValueType::U8 => collect!(U8),
        ValueType::I8 => collect!(I8),
        ValueType::U16 => collect!(U16),
        ValueType::I16 => collect!(I16),
        ValueType::U32 => collect!(U32),
        ValueType::I32 => collect!(I32),
        ValueType::F32 => collect!(F32),
        ValueType::Bool => collect!(Bool),
        ValueType::String => collect!(String),
        ValueType::U64 => collect!(U64),
        ValueType::I64 => collect!(I64),
        ValueType::F64 => collect!(F64),
        ValueType::Array => MetaArray::Array(items.iter().map(array_from_json).collect::<Result<_, _>>()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        let mut md = Metadata::new();
        md.insert("general.architecture", MetaValue::String("llama".into()));
        md.insert("general.license", MetaValue::String("apache-2.0".into()));
        md.insert("llama.block_count", MetaValue::U32(30));
        md.insert("llama.rope.freq_base", MetaValue::F32(1e5));
        md.insert("x.eps", MetaValue::F32(1e-5));
        md.insert("x.nan", MetaValue::F64(f64::NEG_INFINITY));
        md.insert("x.i8", MetaValue::I8(-3));
        md.insert(
            "x.nested",
            MetaValue::Array(MetaArray::Array(vec![MetaArray::U16(vec![1, 2]), MetaArray::String(vec!["é".into()])])),
        );
        md.insert("x.empty", MetaValue::Array(MetaArray::F64(vec![])));
        md.insert("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::String(vec!["a".into()])));
        md
    }

    #[test]
    fn carried_metadata_round_trips_types_values_and_order() {
        let md = sample();
        let mut derived = Metadata::new();
        derived.insert("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::String(vec!["a".into()])));
        assert_eq!(merge(derived.clone(), &encode(&md, "fp"), "fp").unwrap(), md);
        // Unchanged files: derived extras are not introduced, carried values kept.
        derived.insert("llama.block_count", MetaValue::U32(2));
        derived.insert("llama.extra", MetaValue::U32(2));
        assert_eq!(merge(derived, &encode(&md, "fp"), "fp").unwrap(), md);
    }

    #[test]
    fn fingerprint_ignores_key_order_but_not_values() {
        let a: Value = serde_json::from_str(r#"{"a": 1, "b": [1.5, "x"]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b": [1.5, "x"], "a": 1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"b": [1.5, "y"], "a": 1}"#).unwrap();
        assert_eq!(fingerprint(&[Some(&a), None]), fingerprint(&[Some(&b), None]));
        assert_ne!(fingerprint(&[Some(&a), None]), fingerprint(&[Some(&c), None]));
        assert_ne!(fingerprint(&[Some(&a), None]), fingerprint(&[None, Some(&a)]));
    }

    #[test]
    fn derived_values_win_except_descriptive_general_keys() {
        let md = sample();
        let mut derived = Metadata::new();
        derived.insert("llama.block_count", MetaValue::U32(2));
        derived.insert("general.license", MetaValue::String("mit".into()));
        derived.insert("llama.new_key", MetaValue::Bool(true));
        let merged = merge(derived, &encode(&md, "old"), "new").unwrap();
        assert_eq!(merged.get_u64("llama.block_count"), Some(2));
        assert_eq!(merged.get_str("general.license"), Some("apache-2.0"));
        assert_eq!(merged.keys().last(), Some("llama.new_key"));
        // A placeholder without a derived value is dropped.
        assert!(!merged.contains_key("tokenizer.ggml.tokens"));
    }

    #[test]
    fn malformed_carried_metadata_is_an_error_naming_the_key() {
        let blob = |entries: &str| format!(r#"{{"fingerprint": "f", "entries": {entries}}}"#);
        let err = merge(Metadata::new(), &blob(r#"[["k", ["u8", 300]]]"#), "f").unwrap_err();
        assert_eq!(err.key, "k");
        assert!(merge(Metadata::new(), "{", "f").is_err());
        assert!(merge(Metadata::new(), r#"[["k", ["u8", 1]]]"#, "f").is_err());
        assert!(merge(Metadata::new(), &blob(r#"[["k", ["nope", 1]]]"#), "f").is_err());
    }
}
