//! A header to write ([`GgufHeader`]) and where everything will land ([`GgufLayout`]).
//!
//! Padding follows both ggml (`gguf_write_out`: `pad(alignment)` after the tensor infos and
//! after every tensor's data) and gguf-py (`write_padding` after the infos and after each
//! tensor, the last one included): the data section starts at the header size rounded up
//! to the alignment, tensor `i` at the sum of the padded sizes of tensors `0..i`, and the
//! file ends at the padded end of the last tensor.

use std::collections::HashMap;

use super::encode::{header_path, put_kv, put_tensor_info, put_u32, put_u64};
use super::error::GgufError;
use super::limits::*;
use super::tensor_check::{check_name, check_shape};
use super::DEFAULT_ALIGNMENT;
use crate::metadata::{MetaValue, Metadata};
use crate::TensorInfo;

/// Everything written before the tensor data.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    /// 2 or 3 (the layout is the same for little-endian files).
    pub version: u32,
    /// Must agree with `general.alignment` in `metadata` (32 when the key is absent).
    pub alignment: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
}

/// Byte positions of a header's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufLayout {
    /// Size of magic, counts, key-value pairs and tensor infos, before padding.
    pub header_bytes: u64,
    /// Absolute offset of the tensor data: `header_bytes` padded to the alignment.
    pub data_start: u64,
    /// Per tensor, relative to `data_start`.
    pub offsets: Vec<u64>,
    /// Per tensor, the exact data size in bytes.
    pub n_bytes: Vec<u64>,
    /// Total size of the file `write_gguf` produces.
    pub file_size: u64,
}

impl GgufHeader {
    /// Version 3, alignment from metadata `general.alignment` (a u32 power of two) if
    /// present, else 32.
    pub fn new(metadata: Metadata, tensors: Vec<TensorInfo>) -> Result<Self, GgufError> {
        let alignment = match metadata.get(ALIGNMENT_KEY) {
            None => DEFAULT_ALIGNMENT,
            Some(MetaValue::U32(a)) if a.is_power_of_two() && u64::from(*a) <= super::limits::MAX_ALIGNMENT => {
                u64::from(*a)
            }
            Some(MetaValue::U32(a)) => {
                return Err(GgufError::BadAlignment { path: header_path(), offset: 0, found: u64::from(*a) })
            }
            Some(other) => {
                let elem = other.as_array().map(|a| a.element_type());
                return Err(GgufError::AlignmentType {
                    path: header_path(),
                    offset: 0,
                    found: GgufError::type_label(other.value_type(), elem),
                });
            }
        };
        Ok(GgufHeader { version: MAX_VERSION, alignment, metadata, tensors })
    }

    /// Offsets (relative to the data start) the writer will use and the total file size;
    /// validates everything the reader checks (unique names under 64 bytes, at most 4 dims,
    /// shapes that fit the types, sizes that do not overflow, alignment, version).
    pub fn layout(&self) -> Result<GgufLayout, GgufError> {
        self.encode().map(|(layout, _)| layout)
    }

    /// The layout and the header bytes (magic through the last tensor info, unpadded).
    pub(crate) fn encode(&self) -> Result<(GgufLayout, Vec<u8>), GgufError> {
        let invalid = |what: String| GgufError::InvalidHeader { path: header_path(), what };
        if !(MIN_VERSION..=MAX_VERSION).contains(&self.version) {
            return Err(invalid(format!("version {} cannot be written, expected 2 or 3", self.version)));
        }
        if !self.alignment.is_power_of_two() || self.alignment > super::limits::MAX_ALIGNMENT {
            return Err(GgufError::BadAlignment { path: header_path(), offset: 0, found: self.alignment });
        }
        // The reader takes the alignment from the metadata, so both must agree.
        let meta_alignment = match self.metadata.get(ALIGNMENT_KEY) {
            None => Some(DEFAULT_ALIGNMENT),
            Some(MetaValue::U32(a)) => Some(u64::from(*a)),
            Some(_) => None,
        };
        if meta_alignment != Some(self.alignment) {
            return Err(invalid(format!(
                "alignment {} disagrees with metadata '{ALIGNMENT_KEY}' = {:?} (absent means {DEFAULT_ALIGNMENT})",
                self.alignment,
                self.metadata.get(ALIGNMENT_KEY)
            )));
        }
        for (what, n, cap) in
            [("tensor", self.tensors.len() as u64, MAX_TENSORS), ("key-value", self.metadata.len() as u64, MAX_KV)]
        {
            if n > cap {
                return Err(GgufError::CountTooLarge {
                    path: header_path(),
                    offset: if what == "tensor" { 8 } else { 16 },
                    what,
                    found: n,
                    limit: cap,
                    cap,
                    remaining: 0,
                });
            }
        }

        let mut buf = Vec::new();
        buf.extend_from_slice(&GGUF_MAGIC);
        put_u32(&mut buf, self.version);
        put_u64(&mut buf, self.tensors.len() as u64);
        put_u64(&mut buf, self.metadata.len() as u64);
        for (i, (key, value)) in self.metadata.iter().enumerate() {
            put_kv(&mut buf, i, key, value)?;
        }

        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut n_bytes = Vec::with_capacity(self.tensors.len());
        let mut names: HashMap<&str, usize> = HashMap::with_capacity(self.tensors.len());
        let mut next = 0u64;
        for (i, t) in self.tensors.iter().enumerate() {
            let offset = buf.len() as u64;
            let tensor_err = |problem| GgufError::Tensor { path: header_path(), offset, name: t.name.clone(), problem };
            check_name(&t.name).map_err(tensor_err)?;
            if let Some(&first) = names.get(t.name.as_str()) {
                return Err(GgufError::DuplicateTensor {
                    path: header_path(),
                    offset,
                    name: t.name.clone(),
                    index: i as u64,
                    first,
                });
            }
            names.insert(&t.name, i);
            let size = check_shape(t.ty, &t.ne).map_err(tensor_err)?;
            put_tensor_info(&mut buf, t, next)?;
            offsets.push(next);
            n_bytes.push(size);
            next = pad_to(size, self.alignment)
                .and_then(|p| next.checked_add(p))
                .ok_or_else(|| invalid(format!("tensor data size overflows at tensor '{}'", t.name)))?;
        }

        let header_bytes = buf.len() as u64;
        let data_start = pad_to(header_bytes, self.alignment).ok_or_else(|| invalid("header size overflows".into()))?;
        let file_size = data_start.checked_add(next).ok_or_else(|| invalid("file size overflows u64".into()))?;
        Ok((GgufLayout { header_bytes, data_start, offsets, n_bytes, file_size }, buf))
    }
}
