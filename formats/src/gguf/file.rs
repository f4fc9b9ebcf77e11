//! [`GgufFile`]: an opened, fully validated GGUF file backed by a memory map (or, for
//! fuzzing and tests, an owned buffer) that hands out tensor data without copying.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::error::GgufError;
use super::reader::parse;
use crate::metadata::Metadata;
use crate::{FormatError, TensorInfo, TensorSource};

/// The bytes behind a [`GgufFile`].
enum Storage {
    Mmap(Mmap),
    Owned(Vec<u8>),
    Empty,
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
            Storage::Empty => &[],
        }
    }
}

/// An opened, validated, memory-mapped GGUF file.
pub struct GgufFile {
    pub path: PathBuf,
    /// 2 or 3.
    pub version: u32,
    /// `general.alignment` or 32.
    pub alignment: u64,
    /// All key-value pairs in file order, lossless.
    pub metadata: Metadata,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
    /// Per tensor, relative to `data_start`.
    pub offsets: Vec<u64>,
    /// Absolute file offset of the tensor data section.
    pub data_start: u64,
    n_bytes: Vec<u64>,
    index: HashMap<String, usize>,
    storage: Storage,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .field("data_start", &self.data_start)
            .finish()
    }
}

impl GgufFile {
    /// Opens, maps and validates the whole structure of a GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let storage = if len == 0 {
            // mmap of an empty file fails on some platforms; parse reports it as too short.
            Storage::Empty
        } else {
            // SAFETY: the map is read-only; as with every mmap-based reader (ggml, gguf-py,
            // safetensors) the file must not be truncated or modified while it is open.
            Storage::Mmap(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        Self::from_storage(storage, path.to_path_buf())
    }

    /// Parses a GGUF file held in memory with the same checks as [`GgufFile::open`];
    /// `path` only labels errors. Used by the fuzz target and tests.
    pub fn from_vec(bytes: Vec<u8>, path: impl Into<PathBuf>) -> Result<GgufFile, GgufError> {
        Self::from_storage(Storage::Owned(bytes), path.into())
    }

    fn from_storage(storage: Storage, path: PathBuf) -> Result<GgufFile, GgufError> {
        let p = parse(storage.bytes(), &path)?;
        let index = p.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(GgufFile {
            path,
            version: p.version,
            alignment: p.alignment,
            metadata: p.metadata,
            tensors: p.tensors,
            offsets: p.offsets,
            data_start: p.data_start,
            n_bytes: p.n_bytes,
            index,
            storage,
        })
    }

    /// Index of a tensor in [`GgufFile::tensors`].
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The tensor's bytes, a zero-copy slice of the map (bounds were checked at open).
    pub fn tensor_data(&self, name: &str) -> Option<&[u8]> {
        self.tensor_index(name).map(|i| self.tensor_data_at(i))
    }

    /// The bytes of tensor `i` (file order). Panics if `i` is out of range.
    pub fn tensor_data_at(&self, i: usize) -> &[u8] {
        let start = (self.data_start + self.offsets[i]) as usize;
        &self.storage.bytes()[start..start + self.n_bytes[i] as usize]
    }

    /// Size of the file in bytes.
    pub fn file_size(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// The header this file was read from (for writing it back, possibly modified).
    pub fn header(&self) -> super::GgufHeader {
        super::GgufHeader {
            version: self.version,
            alignment: self.alignment,
            metadata: self.metadata.clone(),
            tensors: self.tensors.clone(),
        }
    }
}

impl TensorSource for GgufFile {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        self.tensor_data(name).map(Cow::Borrowed).ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))
    }

    fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index(name).map(|i| &self.tensors[i])
    }

    fn release(&self, name: &str) {
        if let (Some(i), Storage::Mmap(map)) = (self.tensor_index(name), &self.storage) {
            crate::mapped::release_range(map, (self.data_start + self.offsets[i]) as usize, self.n_bytes[i] as usize);
        }
    }
}
