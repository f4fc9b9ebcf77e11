//! Writing: the header computed from the tensor descriptions first, then the data streamed
//! tensor by tensor; sharded sets named and indexed like transformers `save_pretrained`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::{SafetensorsError, StTensor, MAX_HEADER_BYTES};
use crate::FormatError;

/// File name of a one-file model (transformers `SAFE_WEIGHTS_NAME`).
pub const SINGLE_FILE_NAME: &str = "model.safetensors";
/// File name of the index of a sharded model (transformers `SAFE_WEIGHTS_INDEX_NAME`).
pub const INDEX_FILE_NAME: &str = "model.safetensors.index.json";

/// `model-00001-of-00003.safetensors` (1-based `i`), as huggingface_hub's
/// `split_torch_state_dict_into_shards` names them.
pub fn shard_file_name(i: usize, n: usize) -> String {
    format!("model-{i:05}-of-{n:05}.safetensors")
}

/// The header bytes (JSON padded with spaces to a multiple of 8, as the safetensors crate's
/// `prepare` does) and the data size. Keys: `__metadata__` first when given, then the tensors
/// in the given order with offsets from their sizes.
pub fn header_bytes(
    tensors: &[StTensor],
    metadata: Option<&IndexMap<String, String>>,
) -> Result<(Vec<u8>, u64), SafetensorsError> {
    let mut map = Map::new();
    if let Some(m) = metadata {
        let m: Map<String, Value> = m.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        map.insert("__metadata__".into(), Value::Object(m));
    }
    let mut seen = HashSet::with_capacity(tensors.len());
    let mut offset = 0u64;
    for t in tensors {
        if t.name == "__metadata__" || !seen.insert(t.name.as_str()) {
            return Err(SafetensorsError::DuplicateTensor { tensor: t.name.clone() });
        }
        let size = t.n_bytes().ok_or_else(|| SafetensorsError::UnsizedTensor {
            tensor: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })?;
        let end = offset.checked_add(size).ok_or_else(|| SafetensorsError::UnsizedTensor {
            tensor: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })?;
        map.insert(
            t.name.clone(),
            json!({ "dtype": t.dtype.to_string(), "shape": t.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut buf = serde_json::to_vec(&Value::Object(map)).expect("a JSON value serializes");
    buf.resize(buf.len().next_multiple_of(8), b' ');
    if buf.len() as u64 > MAX_HEADER_BYTES {
        return Err(SafetensorsError::HeaderTooLargeToWrite { len: buf.len() as u64, cap: MAX_HEADER_BYTES });
    }
    Ok((buf, offset))
}

/// Writes one safetensors stream: header, then the data of each tensor as returned by
/// `data(i, &tensors[i])`, checked against the size its dtype and shape give. `progress` is
/// called after each tensor with the number of data bytes just written. Returns the total
/// number of bytes written.
pub fn write_safetensors<'a, W: Write>(
    out: &mut W,
    tensors: &[StTensor],
    metadata: Option<&IndexMap<String, String>>,
    mut data: impl FnMut(usize, &StTensor) -> Result<Cow<'a, [u8]>, FormatError>,
    mut progress: impl FnMut(u64),
) -> Result<u64, FormatError> {
    let (header, data_len) = header_bytes(tensors, metadata)?;
    let io = |what: String| move |source| SafetensorsError::WriteIo { what, source };
    out.write_all(&(header.len() as u64).to_le_bytes()).map_err(io("header".into()))?;
    out.write_all(&header).map_err(io("header".into()))?;
    for (i, t) in tensors.iter().enumerate() {
        let bytes = data(i, t)?;
        let expected = t.n_bytes().expect("checked by header_bytes");
        if bytes.len() as u64 != expected {
            return Err(
                SafetensorsError::DataSize { tensor: t.name.clone(), expected, found: bytes.len() as u64 }.into()
            );
        }
        out.write_all(&bytes).map_err(io(format!("tensor '{}'", t.name)))?;
        progress(expected);
    }
    out.flush().map_err(io("data".into()))?;
    Ok(8 + header.len() as u64 + data_len)
}

/// Splits tensors, in order, into groups of at most `max` data bytes; a tensor larger than
/// `max` gets a group of its own. (huggingface_hub's splitter does the same except that it
/// emits an oversized tensor's shard before the current one; here shards keep tensor order.)
fn split(tensors: &[StTensor], max: Option<u64>) -> Result<Vec<std::ops::Range<usize>>, SafetensorsError> {
    let Some(max) = max else {
        return Ok(std::iter::once(0..tensors.len()).collect());
    };
    let mut groups = Vec::new();
    let (mut start, mut size) = (0usize, 0u64);
    for (i, t) in tensors.iter().enumerate() {
        let n = t.n_bytes().ok_or_else(|| SafetensorsError::UnsizedTensor {
            tensor: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })?;
        if i > start && size.saturating_add(n) > max {
            groups.push(start..i);
            start = i;
            size = 0;
        }
        size = size.saturating_add(n);
    }
    groups.push(start..tensors.len());
    Ok(groups)
}

/// Writes `tensors` into `dir` (normally an [`AtomicDir`](crate::atomic::AtomicDir) path):
/// `model.safetensors` when everything fits one shard, otherwise
/// `model-0000i-of-0000n.safetensors` files (each with `metadata`) and, last,
/// `model.safetensors.index.json` = `{"metadata": {"total_size": N}, "weight_map": {...}}`
/// written as transformers does (`json.dumps(index, indent=2, sort_keys=True) + "\n"`).
/// Each file is fsynced. Returns the paths written, index last.
pub fn write_sharded<'a>(
    dir: &Path,
    tensors: &[StTensor],
    metadata: Option<&IndexMap<String, String>>,
    max_shard_bytes: Option<u64>,
    mut data: impl FnMut(usize, &StTensor) -> Result<Cow<'a, [u8]>, FormatError>,
    mut progress: impl FnMut(u64),
) -> Result<Vec<PathBuf>, FormatError> {
    // Validate all names and sizes before creating any file.
    let (_, total_size) = header_bytes(tensors, None)?;
    let groups = split(tensors, max_shard_bytes)?;
    let n = groups.len();
    let mut written = Vec::with_capacity(n + 1);
    let mut weight_map = Map::new();
    for (gi, range) in groups.into_iter().enumerate() {
        let name = if n == 1 { SINGLE_FILE_NAME.to_string() } else { shard_file_name(gi + 1, n) };
        let path = dir.join(&name);
        let file = create_new(&path)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let start = range.start;
        write_safetensors(&mut w, &tensors[range.clone()], metadata, |i, t| data(start + i, t), &mut progress)
            .map_err(|e| name_file(e, &path))?;
        let file = w.into_inner().map_err(|e| io_err(&path, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(&path, e))?;
        for t in &tensors[range] {
            weight_map.insert(t.name.clone(), Value::String(name.clone()));
        }
        written.push(path);
    }
    if n > 1 {
        let index = json!({ "metadata": { "total_size": total_size }, "weight_map": weight_map });
        let path = dir.join(INDEX_FILE_NAME);
        let mut file = create_new(&path)?;
        let text = crate::hf::to_python_json(&index, true, true) + "\n";
        file.write_all(text.as_bytes()).map_err(|e| io_err(&path, e))?;
        file.sync_all().map_err(|e| io_err(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

fn create_new(path: &Path) -> Result<std::fs::File, FormatError> {
    OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| io_err(path, e))
}

fn io_err(path: &Path, source: std::io::Error) -> FormatError {
    FormatError::Io { path: path.to_path_buf(), source }
}

/// Write errors of a stream carry no path; give them the shard's.
fn name_file(e: FormatError, path: &Path) -> FormatError {
    match e {
        FormatError::Safetensors(SafetensorsError::WriteIo { source, .. }) => io_err(path, source),
        other => other,
    }
}
