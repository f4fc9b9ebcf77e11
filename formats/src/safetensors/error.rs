use std::path::PathBuf;

/// Errors reading or writing safetensors. `file` is the path read (or `<memory>` for bytes).
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("{file}: {source}")]
    Io { file: PathBuf, source: std::io::Error },
    #[error("{file}: {}", super::PICKLE_ADVICE)]
    PickleCheckpoint { file: PathBuf },
    #[error("{file}: file is {len} bytes, too small for the 8-byte header length")]
    TooSmall { file: PathBuf, len: u64 },
    #[error("{file}: header length {header_len} exceeds the cap of {cap} bytes")]
    HeaderTooLarge { file: PathBuf, header_len: u64, cap: u64 },
    #[error("{file}: header length {header_len} runs past the end of the file ({file_len} bytes)")]
    HeaderPastEnd { file: PathBuf, header_len: u64, file_len: u64 },
    #[error("{file}: header is not UTF-8 (at byte {offset} of the header)")]
    HeaderNotUtf8 { file: PathBuf, offset: usize },
    #[error("{file}: header is not valid JSON: {message} (line {line}, column {column})")]
    HeaderJson { file: PathBuf, line: usize, column: usize, message: String },
    #[error("{file}: header JSON is not an object")]
    HeaderNotObject { file: PathBuf },
    #[error("{file}: header has key '{key}' twice")]
    DuplicateKey { file: PathBuf, key: String },
    #[error("{file}: __metadata__ must be an object of string values: {reason}")]
    BadMetadata { file: PathBuf, reason: String },
    #[error("{file}: tensor '{tensor}': {reason}")]
    BadTensorEntry { file: PathBuf, tensor: String, reason: String },
    #[error("{file}: tensor '{tensor}': unknown dtype '{dtype}'")]
    UnknownDtype { file: PathBuf, tensor: String, dtype: String },
    #[error("{file}: tensor '{tensor}': data_offsets begin {begin} > end {end}")]
    BeginAfterEnd { file: PathBuf, tensor: String, begin: u64, end: u64 },
    #[error("{file}: tensor '{tensor}': shape {shape:?} × {dtype} overflows")]
    ShapeOverflow { file: PathBuf, tensor: String, dtype: super::Dtype, shape: Vec<u64> },
    #[error("{file}: tensor '{tensor}': {dtype} {shape:?} needs {expected} bytes, data_offsets give {found}")]
    SizeMismatch { file: PathBuf, tensor: String, dtype: super::Dtype, shape: Vec<u64>, expected: u64, found: u64 },
    #[error("{file}: tensor '{tensor}': gap in the data buffer, expected begin {expected}, found {begin}")]
    Gap { file: PathBuf, tensor: String, expected: u64, begin: u64 },
    #[error("{file}: tensor '{tensor}': overlaps the previous tensor (begin {begin} < previous end {expected})")]
    Overlap { file: PathBuf, tensor: String, expected: u64, begin: u64 },
    #[error("{file}: data buffer is {buffer_len} bytes but tensors end at {data_end}")]
    DataPastEnd { file: PathBuf, data_end: u64, buffer_len: u64 },
    #[error("{file}: {trailing} trailing bytes after the last tensor (tensors end at {data_end} of a {buffer_len}-byte buffer)")]
    TrailingBytes { file: PathBuf, data_end: u64, buffer_len: u64, trailing: u64 },

    // index.json (sharded sets)
    #[error("{file}: index is not valid JSON: {message} (line {line}, column {column})")]
    IndexJson { file: PathBuf, line: usize, column: usize, message: String },
    #[error("{file}: invalid index: {reason}")]
    IndexFormat { file: PathBuf, reason: String },
    #[error("{file}: shard path '{shard}' must be a plain file name beside the index (no '..', no absolute path, no directory)")]
    UnsafeShardPath { file: PathBuf, shard: String },
    #[error("{file}: shard '{shard}' does not exist")]
    MissingShard { file: PathBuf, shard: PathBuf },
    #[error("{file}: tensor '{tensor}' is in shard {first} and again in shard {second}")]
    TensorInTwoShards { file: PathBuf, tensor: String, first: PathBuf, second: PathBuf },
    #[error("{file}: index maps tensor '{tensor}' to shard {shard}, which does not hold it")]
    TensorMissingFromShard { file: PathBuf, tensor: String, shard: PathBuf },
    #[error(
        "{file}: shard {shard} holds tensor '{tensor}', which the index does not list (or lists in another shard)"
    )]
    TensorNotInIndex { file: PathBuf, tensor: String, shard: PathBuf },

    // writing
    #[error("tensor '{tensor}': duplicate name in the tensors to write")]
    DuplicateTensor { tensor: String },
    #[error("tensor '{tensor}': {dtype} {shape:?} has no whole byte size (overflow or sub-byte remainder)")]
    UnsizedTensor { tensor: String, dtype: super::Dtype, shape: Vec<u64> },
    #[error("tensor '{tensor}': data is {found} bytes, expected {expected}")]
    DataSize { tensor: String, expected: u64, found: u64 },
    #[error("header JSON would be {len} bytes, over the cap of {cap}")]
    HeaderTooLargeToWrite { len: u64, cap: u64 },
    #[error("writing {what}: {source}")]
    WriteIo { what: String, source: std::io::Error },
    #[error("invalid size '{input}': {reason} (expected e.g. 5GB, 500MB, 2GiB or a byte count)")]
    BadSize { input: String, reason: String },
}
