//! Typed errors of the GGUF reader and writer.
//!
//! Each reader error names the file, the absolute byte offset of the field that is wrong
//! (or the key / tensor it belongs to) and what was expected versus what was found. Errors
//! found while laying out a header to write use the pseudo path `<new GGUF header>` and the
//! offset the field would have in the output file.

use std::path::PathBuf;

use crate::metadata::ValueType;
use crate::GgmlType;

/// Errors reading or writing GGUF.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: cannot read GGUF file: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{}: file is {size} bytes, a GGUF file needs at least {needed}", path.display())]
    TooShort { path: PathBuf, size: u64, needed: u64 },

    #[error("{}: offset 0: bad magic: expected \"GGUF\" (47 47 55 46), found {found:02x?}", path.display())]
    BadMagic { path: PathBuf, found: [u8; 4] },

    #[error(
        "{}: offset 4: version field reads {found:#010x} (byte-swapped: {swapped}); this is a \
         big-endian GGUF file, which is not supported (little-endian only)",
        path.display()
    )]
    BigEndian { path: PathBuf, found: u32, swapped: u32 },

    #[error("{}: offset 4: unsupported GGUF version {found}, expected 2 or 3", path.display())]
    UnsupportedVersion { path: PathBuf, found: u32 },

    #[error(
        "{}: offset {offset}: {what} count {found} is too large: at most {limit} fit \
         (cap {cap}, {remaining} bytes remain in the file)",
        path.display()
    )]
    CountTooLarge { path: PathBuf, offset: u64, what: &'static str, found: u64, limit: u64, cap: u64, remaining: u64 },

    #[error(
        "{}: offset {offset}: unexpected end of file reading {what}: needs {needed} bytes, \
         {remaining} remain",
        path.display()
    )]
    UnexpectedEof { path: PathBuf, offset: u64, what: String, needed: u64, remaining: u64 },

    #[error(
        "{}: offset {offset}: {what} has length {len}, more than the cap of {cap} bytes",
        path.display()
    )]
    StringTooLong { path: PathBuf, offset: u64, what: String, len: u64, cap: u64 },

    #[error(
        "{}: offset {offset}: {what} is not valid UTF-8 (valid up to byte {valid_up_to})",
        path.display()
    )]
    InvalidUtf8 { path: PathBuf, offset: u64, what: String, valid_up_to: usize },

    #[error("{}: offset {offset}: key #{index} is empty", path.display())]
    EmptyKey { path: PathBuf, offset: u64, index: u64 },

    #[error("{}: offset {offset}: duplicate key '{key}' (key #{index}, first seen as #{first})", path.display())]
    DuplicateKey { path: PathBuf, offset: u64, key: String, index: u64, first: usize },

    #[error(
        "{}: offset {offset}: {what}: unknown value type id {found}, expected 0..=12",
        path.display()
    )]
    UnknownValueType { path: PathBuf, offset: u64, what: String, found: u32 },

    #[error(
        "{}: offset {offset}: {what}: arrays nested {depth} deep, at most {max} allowed",
        path.display()
    )]
    ArrayTooDeep { path: PathBuf, offset: u64, what: String, depth: usize, max: usize },

    #[error("{}: offset {offset}: {what}: invalid bool byte {found:#04x}, expected 0 or 1", path.display())]
    InvalidBool { path: PathBuf, offset: u64, what: String, found: u8 },

    #[error(
        "{}: offset {offset}: key 'general.alignment' must be of type u32, found {found}",
        path.display()
    )]
    AlignmentType { path: PathBuf, offset: u64, found: String },

    #[error(
        "{}: offset {offset}: alignment {found} is not a non-zero power of two of at most 2^20",
        path.display()
    )]
    BadAlignment { path: PathBuf, offset: u64, found: u64 },

    #[error("{}: offset {offset}: duplicate tensor name '{name}' (tensor #{index}, first seen as #{first})", path.display())]
    DuplicateTensor { path: PathBuf, offset: u64, name: String, index: u64, first: usize },

    #[error("{}: offset {offset}: tensor '{name}': {problem}", path.display())]
    Tensor { path: PathBuf, offset: u64, name: String, problem: TensorProblem },

    #[error(
        "{}: offset {offset}: tensor '{name}' has data offset {found}, not a multiple of the \
         alignment {alignment}",
        path.display()
    )]
    MisalignedOffset { path: PathBuf, offset: u64, name: String, found: u64, alignment: u64 },

    #[error(
        "{}: offset {offset}: tensor '{name}' has data offset {found}, expected {expected}: \
         tensor data must be contiguous in file order (each tensor padded to the alignment); \
         this one {}",
        path.display(),
        if found < expected { "overlaps the previous tensor" } else { "leaves a gap after the previous tensor" }
    )]
    OffsetNotContiguous { path: PathBuf, offset: u64, name: String, found: u64, expected: u64 },

    #[error(
        "{}: data section starts at offset {data_start} (tensor infos end at {header_end}, \
         padded to {alignment}) but the file is only {file_size} bytes",
        path.display()
    )]
    DataStartPastEof { path: PathBuf, header_end: u64, data_start: u64, alignment: u64, file_size: u64 },

    #[error(
        "{}: tensor '{name}' data spans bytes {start}..{end} but the file is only {file_size} \
         bytes (truncated file?)",
        path.display()
    )]
    TensorDataPastEof { path: PathBuf, name: String, start: u64, end: u64, file_size: u64 },

    #[error("{}: GGUF header: {what}", path.display())]
    InvalidHeader { path: PathBuf, what: String },

    #[error("writing GGUF: tensor #{index} '{name}': data source gave {found} bytes, expected {expected}")]
    DataSizeMismatch { index: usize, name: String, expected: u64, found: u64 },

    #[error("writing GGUF at byte {offset}: {source}")]
    Write { offset: u64, source: std::io::Error },
}

/// What is wrong with one tensor's description (name, shape or type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorProblem {
    #[error("name is {len} bytes, at most {max} allowed (ggml GGML_MAX_NAME)")]
    NameTooLong { len: usize, max: usize },

    #[error("{found} dimensions, at most {max} allowed (ggml GGML_MAX_DIMS)")]
    TooManyDims { found: u64, max: usize },

    #[error("dimension {index} is {found}, above the maximum {max} (ggml stores i64)")]
    DimTooLarge { index: usize, found: u64, max: u64 },

    #[error("shape {ne:?} has an element count that overflows i64")]
    ElementCountOverflow { ne: Vec<u64> },

    #[error("unknown tensor type id {id}{}", removed_note(*removed))]
    UnknownType { id: u32, removed: Option<&'static str> },

    #[error("row length ne[0] = {ne0} is not a multiple of {ty}'s block size {block}")]
    RowNotBlockMultiple { ty: GgmlType, ne0: u64, block: u64 },

    #[error("shape {ne:?} of type {ty} has a byte size that overflows")]
    SizeOverflow { ty: GgmlType, ne: Vec<u64> },
}

fn removed_note(removed: Option<&'static str>) -> String {
    match removed {
        Some(name) => format!(" ({name}, removed from ggml)"),
        None => " (not a ggml type)".to_string(),
    }
}

impl GgufError {
    /// The value type name used in messages (`u32`, `array of string`, ...).
    pub(crate) fn type_label(ty: ValueType, elem: Option<ValueType>) -> String {
        match elem {
            Some(e) => format!("{} of {}", ty.name(), e.name()),
            None => ty.name().to_string(),
        }
    }
}
