//! Parses and validates a whole GGUF v2/v3 file held in memory (a memory map or a buffer).
//!
//! Layout (little-endian, ggml `docs/gguf.md`, `src/gguf.cpp`, gguf-py `gguf_reader.py`):
//!
//! ```text
//! "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//! n_kv ×      { string key | u32 value_type | value }
//! n_tensors × { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//! zero padding to `alignment` | tensor data, each tensor padded to `alignment`
//! ```
//!
//! A string is `u64 length` + UTF-8 bytes (no terminator). An array value is
//! `u32 element_type | u64 count | elements`; an element of an array of arrays is again
//! `u32 element_type | u64 count | elements` (gguf-py writes such nested arrays; ggml
//! rejects them, we keep them). `alignment` is the u32 `general.alignment` or 32.
//!
//! Rules taken from gguf.cpp: version 1 and versions > 3 are rejected, a version whose low
//! 16 bits are zero is a big-endian file; keys are non-empty and unique; tensor names are
//! unique and under 64 bytes; the data section starts at the end of the tensor infos padded
//! to the alignment; tensor offsets are exactly contiguous (`offset[i]` = sum of the padded
//! sizes of the tensors before it). Stricter than gguf.cpp, so that what we read can be
//! written back byte for byte: strings must be UTF-8 and bools must be 0 or 1 (gguf.cpp
//! takes any non-zero byte as true). Like llama.cpp's mmap loader we require each tensor's
//! data to be inside the file, but not the padding after the last tensor.

use std::collections::HashMap;
use std::path::Path;

use indexmap::IndexMap;

use super::error::GgufError;
use super::limits::*;
use super::tensor_check::{check_name, check_shape, type_from_id};
use super::DEFAULT_ALIGNMENT;
use crate::metadata::{MetaArray, MetaValue, Metadata, ValueType};
use crate::TensorInfo;

/// Everything `parse` learns from a file.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub offsets: Vec<u64>,
    pub n_bytes: Vec<u64>,
    pub data_start: u64,
}

/// A bounds-checked little-endian reader over the file bytes that knows its offset.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::UnexpectedEof {
                path: self.path.to_path_buf(),
                offset: self.offset(),
                what: what(),
                needed: n,
                remaining: self.remaining(),
            });
        }
        let n = n as usize; // n <= remaining, which fits usize
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len_offset = self.offset();
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > MAX_STRING_LEN {
            return Err(GgufError::StringTooLong {
                path: self.path.to_path_buf(),
                offset: len_offset,
                what: what(),
                len,
                cap: MAX_STRING_LEN,
            });
        }
        let start = self.offset();
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(GgufError::InvalidUtf8 {
                path: self.path.to_path_buf(),
                offset: start,
                what: what(),
                valid_up_to: e.valid_up_to(),
            }),
        }
    }

    /// Checks a count read at `offset` against a cap and against the bytes left, given the
    /// smallest encoding of one item; returns it as usize.
    fn check_count(
        &self,
        offset: u64,
        what: &'static str,
        found: u64,
        cap: u64,
        min_item_bytes: u64,
    ) -> Result<usize, GgufError> {
        let limit = cap.min(self.remaining() / min_item_bytes);
        if found > limit {
            return Err(GgufError::CountTooLarge {
                path: self.path.to_path_buf(),
                offset,
                what,
                found,
                limit,
                cap,
                remaining: self.remaining(),
            });
        }
        Ok(found as usize)
    }

    fn value_type(&mut self, what: &dyn Fn() -> String) -> Result<ValueType, GgufError> {
        let offset = self.offset();
        let id = self.u32(&|| format!("value type of {}", what()))?;
        ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
            path: self.path.to_path_buf(),
            offset,
            what: what(),
            found: id,
        })
    }

    fn bool(&mut self, what: &dyn Fn() -> String) -> Result<bool, GgufError> {
        let offset = self.offset();
        let [b] = self.array::<1>(what)?;
        match b {
            0 => Ok(false),
            1 => Ok(true),
            found => Err(GgufError::InvalidBool { path: self.path.to_path_buf(), offset, what: what(), found }),
        }
    }

    fn value(&mut self, ty: ValueType, what: &dyn Fn() -> String) -> Result<MetaValue, GgufError> {
        macro_rules! num {
            ($t:ty, $v:ident) => {
                MetaValue::$v(<$t>::from_le_bytes(self.array(what)?))
            };
        }
        Ok(match ty {
            ValueType::U8 => num!(u8, U8),
            ValueType::I8 => num!(i8, I8),
            ValueType::U16 => num!(u16, U16),
            ValueType::I16 => num!(i16, I16),
            ValueType::U32 => num!(u32, U32),
            ValueType::I32 => num!(i32, I32),
            // from_le_bytes keeps NaN payloads bit for bit.
            ValueType::F32 => num!(f32, F32),
            ValueType::U64 => num!(u64, U64),
            ValueType::I64 => num!(i64, I64),
            ValueType::F64 => num!(f64, F64),
            ValueType::Bool => MetaValue::Bool(self.bool(what)?),
            ValueType::String => MetaValue::String(self.string(what)?),
            ValueType::Array => MetaValue::Array(self.meta_array(1, what)?),
        })
    }

    /// Reads `u32 element_type | u64 count | elements`; `depth` is 1 for a top-level array.
    fn meta_array(&mut self, depth: usize, what: &dyn Fn() -> String) -> Result<MetaArray, GgufError> {
        let elem = self.value_type(&|| format!("elements of {}", what()))?;
        let count_offset = self.offset();
        let count = self.u64(&|| format!("element count of {}", what()))?;
        let n = self.check_count(count_offset, "array element", count, MAX_ARRAY_LEN, min_value_bytes(elem))?;
        let elem_what = |i: usize| format!("element {i} of {}", what());

        macro_rules! nums {
            ($t:ty, $v:ident) => {{
                const SZ: usize = std::mem::size_of::<$t>();
                let bytes = self.take((n * SZ) as u64, &|| format!("elements of {}", what()))?;
                MetaArray::$v(
                    bytes
                        .chunks_exact(SZ)
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of SZ bytes")))
                        .collect(),
                )
            }};
        }
        // Capacity for non-numeric elements is also bounded by the bytes left, measured in
        // the in-memory size of one element.
        let cap_for = |size: usize| n.min(self.remaining() as usize / size.max(1));
        Ok(match elem {
            ValueType::U8 => nums!(u8, U8),
            ValueType::I8 => nums!(i8, I8),
            ValueType::U16 => nums!(u16, U16),
            ValueType::I16 => nums!(i16, I16),
            ValueType::U32 => nums!(u32, U32),
            ValueType::I32 => nums!(i32, I32),
            ValueType::F32 => nums!(f32, F32),
            ValueType::U64 => nums!(u64, U64),
            ValueType::I64 => nums!(i64, I64),
            ValueType::F64 => nums!(f64, F64),
            ValueType::Bool => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.bool(&|| elem_what(i))?);
                }
                MetaArray::Bool(v)
            }
            ValueType::String => {
                let mut v = Vec::with_capacity(cap_for(std::mem::size_of::<String>()));
                for i in 0..n {
                    v.push(self.string(&|| elem_what(i))?);
                }
                MetaArray::String(v)
            }
            ValueType::Array => {
                if depth + 1 > MAX_ARRAY_DEPTH {
                    return Err(GgufError::ArrayTooDeep {
                        path: self.path.to_path_buf(),
                        offset: count_offset,
                        what: what(),
                        depth: depth + 1,
                        max: MAX_ARRAY_DEPTH,
                    });
                }
                let mut v = Vec::with_capacity(cap_for(std::mem::size_of::<MetaArray>()));
                for i in 0..n {
                    v.push(self.meta_array(depth + 1, &|| elem_what(i))?);
                }
                MetaArray::Array(v)
            }
        })
    }
}

/// Smallest encoding of one value of a type (a string is at least its length, an array
/// at least its element type and count).
fn min_value_bytes(ty: ValueType) -> u64 {
    match ty {
        ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
        ValueType::U16 | ValueType::I16 => 2,
        ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
        ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
        ValueType::Array => 12,
    }
}

/// Parses and validates a whole GGUF file. `path` only labels errors.
pub(crate) fn parse(buf: &[u8], path: &Path) -> Result<Parsed, GgufError> {
    let file_size = buf.len() as u64;
    let too_short = || GgufError::TooShort { path: path.to_path_buf(), size: file_size, needed: FIXED_HEADER_BYTES };
    if buf.len() < GGUF_MAGIC.len() {
        return Err(too_short());
    }
    let mut c = Cursor { buf, pos: 0, path };
    let magic: [u8; 4] = c.array(&|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic { path: path.to_path_buf(), found: magic });
    }
    if file_size < FIXED_HEADER_BYTES {
        return Err(too_short());
    }
    let version = c.u32(&|| "version".into())?;
    // gguf.cpp: 0 is invalid; a version with zero low 16 bits is a byte-swapped (big-endian)
    // file, e.g. 3 reads as 0x03000000.
    if version != 0 && version & 0xFFFF == 0 {
        return Err(GgufError::BigEndian { path: path.to_path_buf(), found: version, swapped: version.swap_bytes() });
    }
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(GgufError::UnsupportedVersion { path: path.to_path_buf(), found: version });
    }
    let n_tensors_offset = c.offset();
    let n_tensors = c.u64(&|| "tensor count".into())?;
    let n_kv_offset = c.offset();
    let n_kv = c.u64(&|| "key-value count".into())?;
    // Cheap early bound; re-checked precisely once the key-value pairs are read.
    c.check_count(n_tensors_offset, "tensor", n_tensors, MAX_TENSORS, MIN_TENSOR_INFO_BYTES)?;
    let n_kv = c.check_count(n_kv_offset, "key-value", n_kv, MAX_KV, MIN_KV_BYTES)?;

    // Key-value pairs, in file order.
    let mut kv: IndexMap<String, MetaValue> = IndexMap::with_capacity(n_kv);
    let mut value_offsets = Vec::with_capacity(n_kv);
    for i in 0..n_kv {
        let key_offset = c.offset();
        let key = c.string(&|| format!("key #{i}"))?;
        if key.is_empty() {
            return Err(GgufError::EmptyKey { path: path.to_path_buf(), offset: key_offset, index: i as u64 });
        }
        if let Some(first) = kv.get_index_of(&key) {
            return Err(GgufError::DuplicateKey {
                path: path.to_path_buf(),
                offset: key_offset,
                key,
                index: i as u64,
                first,
            });
        }
        let what = || format!("key '{key}'");
        let value_offset = c.offset();
        let ty = c.value_type(&what)?;
        let value = c.value(ty, &what)?;
        value_offsets.push(value_offset);
        kv.insert(key, value);
    }

    // gguf.cpp: general.alignment must be a u32 and a non-zero power of two (and here at
    // most MAX_ALIGNMENT).
    let alignment = match kv.get_full(ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some((idx, _, value)) => {
            let offset = value_offsets[idx];
            match value {
                MetaValue::U32(a) if a.is_power_of_two() && u64::from(*a) <= MAX_ALIGNMENT => u64::from(*a),
                MetaValue::U32(a) => {
                    return Err(GgufError::BadAlignment { path: path.to_path_buf(), offset, found: u64::from(*a) })
                }
                other => {
                    let elem = other.as_array().map(|a| a.element_type());
                    return Err(GgufError::AlignmentType {
                        path: path.to_path_buf(),
                        offset,
                        found: GgufError::type_label(other.value_type(), elem),
                    });
                }
            }
        }
    };
    let metadata: Metadata = kv.into_iter().collect();

    // Tensor infos.
    let n_tensors = c.check_count(n_tensors_offset, "tensor", n_tensors, MAX_TENSORS, MIN_TENSOR_INFO_BYTES)?;
    let mut tensors = Vec::with_capacity(n_tensors);
    let mut offsets = Vec::with_capacity(n_tensors);
    let mut offset_fields = Vec::with_capacity(n_tensors);
    let mut n_bytes = Vec::with_capacity(n_tensors);
    let mut names: HashMap<String, usize> = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let info_offset = c.offset();
        let name = c.string(&|| format!("name of tensor #{i}"))?;
        let tensor_err = |offset: u64, name: &str, problem| GgufError::Tensor {
            path: path.to_path_buf(),
            offset,
            name: name.to_string(),
            problem,
        };
        check_name(&name).map_err(|p| tensor_err(info_offset, &name, p))?;
        if let Some(&first) = names.get(&name) {
            return Err(GgufError::DuplicateTensor {
                path: path.to_path_buf(),
                offset: info_offset,
                name,
                index: i as u64,
                first,
            });
        }
        let what = || format!("tensor '{name}'");
        let dims_offset = c.offset();
        let n_dims = c.u32(&|| format!("n_dims of {}", what()))?;
        if n_dims as usize > MAX_DIMS {
            return Err(tensor_err(
                dims_offset,
                &name,
                super::error::TensorProblem::TooManyDims { found: u64::from(n_dims), max: MAX_DIMS },
            ));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for j in 0..n_dims {
            ne.push(c.u64(&|| format!("ne[{j}] of {}", what()))?);
        }
        let type_offset = c.offset();
        let type_id = c.u32(&|| format!("type of {}", what()))?;
        let ty = type_from_id(type_id).map_err(|p| tensor_err(type_offset, &name, p))?;
        let size = check_shape(ty, &ne).map_err(|p| tensor_err(dims_offset, &name, p))?;
        offset_fields.push(c.offset());
        offsets.push(c.u64(&|| format!("data offset of {}", what()))?);
        n_bytes.push(size);
        names.insert(name.clone(), i);
        tensors.push(TensorInfo { name, ty, ne });
    }

    // Data section: starts at the end of the infos padded to the alignment (gguf.cpp seeks
    // there only when there are tensors; writers always pad).
    let header_end = c.offset();
    let data_start = pad_to(header_end, alignment).expect("file offsets fit u64 after padding");
    if n_tensors > 0 && data_start > file_size {
        return Err(GgufError::DataStartPastEof {
            path: path.to_path_buf(),
            header_end,
            data_start,
            alignment,
            file_size,
        });
    }
    let mut expected = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        let (found, field) = (offsets[i], offset_fields[i]);
        if found % alignment != 0 {
            return Err(GgufError::MisalignedOffset {
                path: path.to_path_buf(),
                offset: field,
                name: t.name.clone(),
                found,
                alignment,
            });
        }
        if found != expected {
            return Err(GgufError::OffsetNotContiguous {
                path: path.to_path_buf(),
                offset: field,
                name: t.name.clone(),
                found,
                expected,
            });
        }
        let start = data_start.checked_add(found);
        let end = start.and_then(|s| s.checked_add(n_bytes[i]));
        match (start, end) {
            (Some(_), Some(end)) if end <= file_size => {}
            _ => {
                return Err(GgufError::TensorDataPastEof {
                    path: path.to_path_buf(),
                    name: t.name.clone(),
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    file_size,
                })
            }
        }
        // In bounds, so the padded size cannot overflow.
        expected = found + pad_to(n_bytes[i], alignment).expect("size within file bounds");
    }

    Ok(Parsed { version, alignment, metadata, tensors, offsets, n_bytes, data_start })
}
