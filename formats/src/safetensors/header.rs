//! Parsing and validating the header of one safetensors file held in memory.
//!
//! The header is parsed here rather than by `safetensors::SafeTensors::deserialize` so that
//! every defect gets a typed error naming the file, tensor and offsets, duplicate keys are
//! caught (a JSON object parsed into a map silently keeps the last one), and tensors keep a
//! stable order. The checks are those of safetensors `Metadata::validate` (tensor.rs):
//! header length capped at 100 MB, offsets contiguous from 0 without gaps or overlaps, each
//! tensor's byte size = product(shape) × dtype size, the buffer ending exactly at the last
//! tensor.

use std::fmt;
use std::path::Path;

use indexmap::IndexMap;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{n_bytes, Dtype, SafetensorsError, StTensor};

/// Cap on the JSON header, as in the safetensors crate (`MAX_HEADER_SIZE`, 100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A parsed, validated header.
pub(super) struct Parsed {
    pub(super) data_start: usize,
    pub(super) metadata: Option<IndexMap<String, String>>,
    /// (tensor, begin, end) relative to the data buffer, sorted by begin.
    pub(super) tensors: Vec<(StTensor, u64, u64)>,
}

/// Top-level JSON object entries in order, duplicates kept (so they can be reported), and
/// for each entry whose value is an object repeating a key, (entry, first repeated key):
/// upstream reads a tensor entry into a struct, which refuses "duplicate field `shape`",
/// while a `Value` would silently keep the last one (fuzz/artifacts/safetensors_reader/
/// crash-1b5ef704…: the two readers disagreed on such a file).
pub(super) struct Entries(pub(super) Vec<(String, Value)>, pub(super) Vec<(String, String)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let (mut v, mut dups) = (Vec::new(), Vec::new());
                while let Some((k, Checked(val, dup))) = map.next_entry::<String, Checked>()? {
                    if let Some(field) = dup {
                        dups.push((k.clone(), field));
                    }
                    v.push((k, val));
                }
                Ok(Entries(v, dups))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON value, and the first key it repeats if it is an object (one level deep).
struct Checked(Value, Option<String>);

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                let (mut obj, mut dup) = (serde_json::Map::new(), None);
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    if obj.contains_key(&k) && dup.is_none() {
                        dup = Some(k.clone());
                    }
                    obj.insert(k, v);
                }
                Ok(Checked(Value::Object(obj), dup))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    items.push(v);
                }
                Ok(Checked(Value::Array(items), None))
            }
            fn visit_bool<E>(self, b: bool) -> Result<Checked, E> {
                Ok(Checked(Value::Bool(b), None))
            }
            fn visit_i64<E>(self, x: i64) -> Result<Checked, E> {
                Ok(Checked(Value::from(x), None))
            }
            fn visit_u64<E>(self, x: u64) -> Result<Checked, E> {
                Ok(Checked(Value::from(x), None))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Checked, E> {
                Ok(Checked(Value::from(x), None))
            }
            fn visit_str<E>(self, s: &str) -> Result<Checked, E> {
                Ok(Checked(Value::String(s.to_string()), None))
            }
            fn visit_string<E>(self, s: String) -> Result<Checked, E> {
                Ok(Checked(Value::String(s), None))
            }
            fn visit_unit<E>(self) -> Result<Checked, E> {
                Ok(Checked(Value::Null, None))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) fn first_duplicate(entries: &[(String, Value)]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    entries.iter().find(|(k, _)| !seen.insert(k.as_str())).map(|(k, _)| k.as_str())
}

pub(super) fn json_error(e: &serde_json::Error) -> (usize, usize, String) {
    (e.line(), e.column(), e.to_string())
}

/// Parses and validates the header of a whole file held in `bytes`.
pub(super) fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed, SafetensorsError> {
    let f = || file.to_path_buf();
    let file_len = bytes.len() as u64;
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(SafetensorsError::TooSmall { file: f(), len: file_len });
    };
    let header_len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    if header_len > MAX_HEADER_BYTES {
        return Err(SafetensorsError::HeaderTooLarge { file: f(), header_len, cap: MAX_HEADER_BYTES });
    }
    if header_len > file_len - 8 {
        return Err(SafetensorsError::HeaderPastEnd { file: f(), header_len, file_len });
    }
    let data_start = 8 + header_len as usize;
    let header = std::str::from_utf8(&bytes[8..data_start])
        .map_err(|e| SafetensorsError::HeaderNotUtf8 { file: f(), offset: e.valid_up_to() })?;

    let (entries, repeated) = match serde_json::from_str::<Entries>(header) {
        Ok(Entries(e, r)) => (e, r),
        Err(e) => {
            // Distinguish "valid JSON, but not an object" from "not JSON".
            if serde_json::from_str::<Value>(header).is_ok() {
                return Err(SafetensorsError::HeaderNotObject { file: f() });
            }
            let (line, column, message) = json_error(&e);
            return Err(SafetensorsError::HeaderJson { file: f(), line, column, message });
        }
    };
    if let Some(k) = first_duplicate(&entries) {
        return Err(SafetensorsError::DuplicateKey { file: f(), key: k.to_string() });
    }
    // A tensor entry repeating a field (`__metadata__` is a plain map upstream: a repeated
    // key there keeps the last value, as serde_json does).
    if let Some((tensor, field)) = repeated.into_iter().find(|(t, _)| t != "__metadata__") {
        return Err(SafetensorsError::BadTensorEntry {
            file: f(),
            tensor,
            reason: format!("duplicate field '{field}'"),
        });
    }

    let mut metadata = None;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, val) in entries {
        if name == "__metadata__" {
            metadata = Some(parse_metadata(file, val)?);
            continue;
        }
        let (t, begin, end) = parse_entry(file, name, &val)?;
        tensors.push((t, begin, end));
    }

    // Offsets must tile the buffer [0, buffer_len) exactly, in some order.
    tensors.sort_by_key(|(_, b, e)| (*b, *e));
    let buffer_len = file_len - data_start as u64;
    let mut expected = 0u64;
    for (t, begin, end) in &tensors {
        if *begin > expected {
            return Err(SafetensorsError::Gap { file: f(), tensor: t.name.clone(), expected, begin: *begin });
        }
        if *begin < expected {
            return Err(SafetensorsError::Overlap { file: f(), tensor: t.name.clone(), expected, begin: *begin });
        }
        expected = *end;
    }
    if expected > buffer_len {
        return Err(SafetensorsError::DataPastEnd { file: f(), data_end: expected, buffer_len });
    }
    if expected < buffer_len {
        return Err(SafetensorsError::TrailingBytes {
            file: f(),
            data_end: expected,
            buffer_len,
            trailing: buffer_len - expected,
        });
    }
    Ok(Parsed { data_start, metadata, tensors })
}

fn parse_metadata(file: &Path, val: Value) -> Result<IndexMap<String, String>, SafetensorsError> {
    let bad = |reason: String| SafetensorsError::BadMetadata { file: file.to_path_buf(), reason };
    match val {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                other => Err(bad(format!("key '{k}' has non-string value {other}"))),
            })
            .collect(),
        Value::Null => Ok(IndexMap::new()),
        other => Err(bad(format!("found {}", kind(&other)))),
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_entry(file: &Path, name: String, val: &Value) -> Result<(StTensor, u64, u64), SafetensorsError> {
    let bad = |name: &str, reason: String| SafetensorsError::BadTensorEntry {
        file: file.to_path_buf(),
        tensor: name.to_string(),
        reason,
    };
    let Value::Object(obj) = val else {
        return Err(bad(&name, format!("entry is {}, expected an object", kind(val))));
    };
    let dtype_str = match obj.get("dtype") {
        Some(Value::String(s)) => s,
        Some(other) => return Err(bad(&name, format!("dtype is {}, expected a string", kind(other)))),
        None => return Err(bad(&name, "missing 'dtype'".into())),
    };
    let dtype: Dtype = serde_json::from_value(Value::String(dtype_str.clone())).map_err(|_| {
        SafetensorsError::UnknownDtype { file: file.to_path_buf(), tensor: name.clone(), dtype: dtype_str.clone() }
    })?;
    let shape: Vec<u64> = match obj.get("shape") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|d| d.as_u64().ok_or_else(|| bad(&name, format!("shape entry {d} is not a non-negative integer"))))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(&name, format!("shape is {}, expected an array", kind(other)))),
        None => return Err(bad(&name, "missing 'shape'".into())),
    };
    let (begin, end) = match obj.get("data_offsets") {
        Some(Value::Array(a)) if a.len() == 2 => match (a[0].as_u64(), a[1].as_u64()) {
            (Some(b), Some(e)) => (b, e),
            _ => return Err(bad(&name, "data_offsets must be two non-negative integers".into())),
        },
        Some(_) => return Err(bad(&name, "data_offsets must be an array [begin, end]".into())),
        None => return Err(bad(&name, "missing 'data_offsets'".into())),
    };
    if begin > end {
        return Err(SafetensorsError::BeginAfterEnd { file: file.to_path_buf(), tensor: name, begin, end });
    }
    let elements = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let bits = elements.and_then(|n| n.checked_mul(dtype.bitsize() as u64));
    let Some(bits) = bits else {
        return Err(SafetensorsError::ShapeOverflow { file: file.to_path_buf(), tensor: name, dtype, shape });
    };
    if bits % 8 != 0 {
        return Err(bad(&name, format!("{dtype} {shape:?} is {bits} bits, not a whole number of bytes")));
    }
    debug_assert_eq!(Some(bits / 8), n_bytes(dtype, &shape));
    if end - begin != bits / 8 {
        return Err(SafetensorsError::SizeMismatch {
            file: file.to_path_buf(),
            tensor: name,
            dtype,
            shape,
            expected: bits / 8,
            found: end - begin,
        });
    }
    Ok((StTensor { name, dtype, shape }, begin, end))
}
