//! Serializes GGUF header fields exactly as the reader parses them (see `reader.rs` for the
//! layout), checking on the way what the reader would reject: empty keys, strings over the
//! cap, arrays over the length cap or nested too deep.
//!
//! Encoding follows gguf-py `GGUFWriter._pack_val` and ggml `gguf_writer_base`: bools as one
//! byte 0/1, strings as u64 length + bytes, arrays as u32 element type + u64 count + elements,
//! a nested array element as u32 element type + u64 count + elements.

use std::path::PathBuf;

use super::error::GgufError;
use super::limits::{MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_STRING_LEN};
use crate::metadata::{MetaArray, MetaValue};
use crate::TensorInfo;

/// Label used as the "path" of errors found while encoding a header to write.
pub(crate) const NEW_HEADER: &str = "<new GGUF header>";

pub(crate) fn header_path() -> PathBuf {
    PathBuf::from(NEW_HEADER)
}

pub(crate) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_string(buf: &mut Vec<u8>, s: &str, what: &dyn Fn() -> String) -> Result<(), GgufError> {
    if s.len() as u64 > MAX_STRING_LEN {
        return Err(GgufError::StringTooLong {
            path: header_path(),
            offset: buf.len() as u64,
            what: what(),
            len: s.len() as u64,
            cap: MAX_STRING_LEN,
        });
    }
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

/// `string key | u32 type | value`.
pub(crate) fn put_kv(buf: &mut Vec<u8>, index: usize, key: &str, value: &MetaValue) -> Result<(), GgufError> {
    if key.is_empty() {
        return Err(GgufError::EmptyKey { path: header_path(), offset: buf.len() as u64, index: index as u64 });
    }
    put_string(buf, key, &|| format!("key #{index}"))?;
    put_u32(buf, value.value_type().id());
    let what = || format!("key '{key}'");
    match value {
        MetaValue::U8(v) => buf.push(*v),
        MetaValue::I8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Bool(v) => buf.push(u8::from(*v)),
        MetaValue::String(s) => put_string(buf, s, &what)?,
        MetaValue::Array(a) => put_array(buf, a, 1, &what)?,
        MetaValue::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
    }
    Ok(())
}

/// `u32 element_type | u64 count | elements`; `depth` is 1 for a top-level array.
fn put_array(buf: &mut Vec<u8>, a: &MetaArray, depth: usize, what: &dyn Fn() -> String) -> Result<(), GgufError> {
    if a.len() as u64 > MAX_ARRAY_LEN {
        return Err(GgufError::CountTooLarge {
            path: header_path(),
            offset: buf.len() as u64 + 4,
            what: "array element",
            found: a.len() as u64,
            limit: MAX_ARRAY_LEN,
            cap: MAX_ARRAY_LEN,
            remaining: 0,
        });
    }
    put_u32(buf, a.element_type().id());
    put_u64(buf, a.len() as u64);
    macro_rules! nums {
        ($v:expr) => {
            for x in $v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        MetaArray::U8(v) => buf.extend_from_slice(v),
        MetaArray::I8(v) => nums!(v),
        MetaArray::U16(v) => nums!(v),
        MetaArray::I16(v) => nums!(v),
        MetaArray::U32(v) => nums!(v),
        MetaArray::I32(v) => nums!(v),
        MetaArray::F32(v) => nums!(v),
        MetaArray::U64(v) => nums!(v),
        MetaArray::I64(v) => nums!(v),
        MetaArray::F64(v) => nums!(v),
        MetaArray::Bool(v) => buf.extend(v.iter().map(|&b| u8::from(b))),
        MetaArray::String(v) => {
            for (i, s) in v.iter().enumerate() {
                put_string(buf, s, &|| format!("element {i} of {}", what()))?;
            }
        }
        MetaArray::Array(v) => {
            if depth + 1 > MAX_ARRAY_DEPTH {
                return Err(GgufError::ArrayTooDeep {
                    path: header_path(),
                    offset: buf.len() as u64,
                    what: what(),
                    depth: depth + 1,
                    max: MAX_ARRAY_DEPTH,
                });
            }
            for (i, inner) in v.iter().enumerate() {
                put_array(buf, inner, depth + 1, &|| format!("element {i} of {}", what()))?;
            }
        }
    }
    Ok(())
}

/// `string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset`. `ne` is written as
/// given (gguf-py writes `len(shape)` dims; ggml drops trailing 1s), so a file read and
/// written back keeps its dims.
pub(crate) fn put_tensor_info(buf: &mut Vec<u8>, t: &TensorInfo, offset: u64) -> Result<(), GgufError> {
    put_string(buf, &t.name, &|| format!("name of tensor '{}'", t.name))?;
    put_u32(buf, t.ne.len() as u32);
    for &d in &t.ne {
        put_u64(buf, d);
    }
    put_u32(buf, t.ty.id());
    put_u64(buf, offset);
    Ok(())
}
