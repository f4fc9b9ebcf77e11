//! Reading: one file or a sharded set, memory-mapped and validated at open (the header
//! checks live in `header.rs`, shared with the in-memory entry point the fuzz target uses).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value;

use super::header::{first_duplicate, json_error, kind, parse, Entries, Parsed};
use super::{is_pickle_path, SafetensorsError, StTensor};

const MEMORY: &str = "<memory>";

enum Backing {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// One file of a set.
pub struct Shard {
    path: PathBuf,
    backing: Backing,
    /// Offset of the data buffer in the file: 8 + header length.
    data_start: usize,
    metadata: IndexMap<String, String>,
    has_metadata: bool,
}

impl Shard {
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Offset of the data buffer in the file (8 + header length).
    pub fn data_start(&self) -> u64 {
        self.data_start as u64
    }
    pub fn metadata(&self) -> &IndexMap<String, String> {
        &self.metadata
    }
    /// Whether the header had a `__metadata__` entry at all.
    pub fn has_metadata(&self) -> bool {
        self.has_metadata
    }
    pub fn len(&self) -> u64 {
        self.backing.bytes().len() as u64
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("path", &self.path)
            .field("len", &self.len())
            .field("data_start", &self.data_start)
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    shard: usize,
    /// Absolute byte range in the shard file.
    start: usize,
    end: usize,
}

/// One safetensors file or a sharded set, validated at open; tensor data handed out as
/// borrowed slices of the memory maps.
///
/// Tensor order: within a file, by data offset (the order of the bytes on disk, which is also
/// the header order for files written by the safetensors libraries); across a set, shards in
/// file-name order (`model-00001-of-…` first).
#[derive(Debug)]
pub struct SafetensorsSet {
    shards: Vec<Shard>,
    tensors: Vec<StTensor>,
    locs: Vec<Loc>,
    by_name: HashMap<String, usize>,
    index_path: Option<PathBuf>,
    index_metadata: Option<Value>,
    empty: IndexMap<String, String>,
}

/// Leading bytes of PyTorch checkpoints: a zip archive (torch.save since 1.6) or a raw
/// pickle stream (protocol 2–5 opcode PROTO).
fn looks_like_pickle(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || matches!(bytes, [0x80, 2..=5, ..])
}

fn open_shard(path: &Path) -> Result<(Shard, Parsed), SafetensorsError> {
    if is_pickle_path(path) {
        return Err(SafetensorsError::PickleCheckpoint { file: path.to_path_buf() });
    }
    let io = |source| SafetensorsError::Io { file: path.to_path_buf(), source };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(io(std::io::Error::new(std::io::ErrorKind::InvalidInput, "is a directory")));
    }
    // SAFETY: the map is read-only; as with every mmap reader, a file truncated by another
    // process while mapped may fault. llmtool never writes to a file it has mapped (outputs
    // go through atomic temps and refuse to be an input).
    let backing = if meta.len() == 0 {
        Backing::Owned(Vec::new())
    } else {
        Backing::Mmap(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
    };
    let parsed = match parse(path, backing.bytes()) {
        Ok(p) => p,
        Err(e) if looks_like_pickle(backing.bytes()) => {
            let _ = e;
            return Err(SafetensorsError::PickleCheckpoint { file: path.to_path_buf() });
        }
        Err(e) => return Err(e),
    };
    Ok((shard_from(path.to_path_buf(), backing, &parsed), parsed))
}

fn shard_from(path: PathBuf, backing: Backing, parsed: &Parsed) -> Shard {
    Shard {
        path,
        backing,
        data_start: parsed.data_start,
        has_metadata: parsed.metadata.is_some(),
        metadata: parsed.metadata.clone().unwrap_or_default(),
    }
}

impl SafetensorsSet {
    /// One `.safetensors` file. Pickle checkpoints (`.bin`, `.pt`, `.pth`, …) are refused.
    pub fn open_file(path: &Path) -> Result<Self, SafetensorsError> {
        let (shard, parsed) = open_shard(path)?;
        Ok(Self::single(shard, parsed))
    }

    /// A whole file already in memory (the fuzz target's entry; shares all checks with
    /// [`open_file`](Self::open_file)).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SafetensorsError> {
        let parsed = parse(Path::new(MEMORY), &bytes)?;
        let shard = shard_from(PathBuf::from(MEMORY), Backing::Owned(bytes), &parsed);
        Ok(Self::single(shard, parsed))
    }

    fn single(shard: Shard, parsed: Parsed) -> Self {
        let mut set = SafetensorsSet {
            shards: Vec::new(),
            tensors: Vec::new(),
            locs: Vec::new(),
            by_name: HashMap::new(),
            index_path: None,
            index_metadata: None,
            empty: IndexMap::new(),
        };
        set.push_shard(shard, parsed).expect("a single file has no duplicate tensors");
        set
    }

    /// Adds a shard's tensors; `Err((name, previous shard))` on a tensor already present.
    fn push_shard(&mut self, shard: Shard, parsed: Parsed) -> Result<(), (String, usize)> {
        let si = self.shards.len();
        let ds = shard.data_start;
        for (t, b, e) in parsed.tensors {
            if let Some(&prev) = self.by_name.get(&t.name) {
                return Err((t.name, self.locs[prev].shard));
            }
            self.by_name.insert(t.name.clone(), self.tensors.len());
            // b, e ≤ buffer length ≤ file length: they fit in usize.
            self.locs.push(Loc { shard: si, start: ds + b as usize, end: ds + e as usize });
            self.tensors.push(t);
        }
        self.shards.push(shard);
        Ok(())
    }

    /// A sharded set described by `model.safetensors.index.json`
    /// (`{"metadata": {...}, "weight_map": {tensor: shard file}}`, transformers
    /// save_pretrained). The index must describe the shards exactly: every tensor it lists
    /// is in the shard it names, and every tensor of every shard is listed there (a mismatch
    /// means a mixed-up or partly copied set). Shard names must be plain file names in the
    /// index's directory.
    pub fn open_index(index_json: &Path) -> Result<Self, SafetensorsError> {
        let ip = || index_json.to_path_buf();
        let text = std::fs::read_to_string(index_json).map_err(|source| SafetensorsError::Io { file: ip(), source })?;
        let entries = match serde_json::from_str::<Entries>(&text) {
            Ok(Entries(e, _)) => e,
            Err(e) => {
                if serde_json::from_str::<Value>(&text).is_ok() {
                    return Err(SafetensorsError::IndexFormat { file: ip(), reason: "not a JSON object".into() });
                }
                let (line, column, message) = json_error(&e);
                return Err(SafetensorsError::IndexJson { file: ip(), line, column, message });
            }
        };
        if let Some(k) = first_duplicate(&entries) {
            return Err(SafetensorsError::IndexFormat { file: ip(), reason: format!("key '{k}' appears twice") });
        }
        let mut index_metadata = None;
        let mut weight_map: Option<Vec<(String, String)>> = None;
        for (k, v) in entries {
            match k.as_str() {
                "metadata" => index_metadata = Some(v),
                "weight_map" => {
                    // (Duplicates inside weight_map: see check_weight_map_duplicates.)
                    let Value::Object(m) = v else {
                        return Err(SafetensorsError::IndexFormat {
                            file: ip(),
                            reason: format!("weight_map is {}, expected an object", kind(&v)),
                        });
                    };
                    let mut wm = Vec::with_capacity(m.len());
                    for (t, s) in m {
                        let Value::String(s) = s else {
                            return Err(SafetensorsError::IndexFormat {
                                file: ip(),
                                reason: format!("weight_map['{t}'] is {}, expected a file name", kind(&s)),
                            });
                        };
                        wm.push((t, s));
                    }
                    weight_map = Some(wm);
                }
                _ => {}
            }
        }
        let Some(weight_map) = weight_map else {
            return Err(SafetensorsError::IndexFormat { file: ip(), reason: "missing 'weight_map'".into() });
        };
        check_weight_map_duplicates(index_json, &text)?;

        let dir = index_json.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        // Shards in file-name order; each name validated once.
        let mut shard_names: Vec<&str> = weight_map.iter().map(|(_, s)| s.as_str()).collect();
        shard_names.sort_unstable();
        shard_names.dedup();
        for s in &shard_names {
            let mut comps = Path::new(s).components();
            let plain = matches!((comps.next(), comps.next()), (Some(Component::Normal(_)), None));
            if !plain {
                return Err(SafetensorsError::UnsafeShardPath { file: ip(), shard: s.to_string() });
            }
        }
        let mut set = SafetensorsSet {
            shards: Vec::new(),
            tensors: Vec::new(),
            locs: Vec::new(),
            by_name: HashMap::new(),
            index_path: Some(ip()),
            index_metadata,
            empty: IndexMap::new(),
        };
        for s in &shard_names {
            let path = dir.join(s);
            if !path.is_file() {
                return Err(SafetensorsError::MissingShard { file: ip(), shard: path });
            }
            let (shard, parsed) = open_shard(&path)?;
            if let Err((tensor, prev)) = set.push_shard(shard, parsed) {
                return Err(SafetensorsError::TensorInTwoShards {
                    file: ip(),
                    tensor,
                    first: set.shards[prev].path.clone(),
                    second: path,
                });
            }
        }
        // The index and the shards must agree both ways.
        let shard_of: HashMap<&str, &str> = weight_map.iter().map(|(t, s)| (t.as_str(), s.as_str())).collect();
        for (t, loc) in set.tensors.iter().zip(&set.locs) {
            let shard_path = &set.shards[loc.shard].path;
            let shard_name = shard_path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if shard_of.get(t.name.as_str()) != Some(&shard_name) {
                return Err(SafetensorsError::TensorNotInIndex {
                    file: ip(),
                    tensor: t.name.clone(),
                    shard: shard_path.clone(),
                });
            }
        }
        for (t, s) in &weight_map {
            if !set.by_name.contains_key(t) {
                return Err(SafetensorsError::TensorMissingFromShard {
                    file: ip(),
                    tensor: t.clone(),
                    shard: dir.join(s),
                });
            }
        }
        Ok(set)
    }

    /// Tensor descriptions: file order (by data offset), shards in file-name order.
    pub fn tensors(&self) -> &[StTensor] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&StTensor> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of one tensor, borrowed from the memory map.
    pub fn tensor_data(&self, name: &str) -> Option<&[u8]> {
        let loc = self.locs[*self.by_name.get(name)?];
        Some(&self.shards[loc.shard].backing.bytes()[loc.start..loc.end])
    }

    /// Drops a tensor's mapped pages from the resident set (see `mapped.rs`).
    pub fn release(&self, name: &str) {
        let Some(&i) = self.by_name.get(name) else { return };
        let loc = self.locs[i];
        if let Backing::Mmap(map) = &self.shards[loc.shard].backing {
            crate::mapped::release_range(map, loc.start, loc.end - loc.start);
        }
    }

    /// The shard file holding a tensor and the absolute byte range of its data there.
    pub fn tensor_location(&self, name: &str) -> Option<(&Path, std::ops::Range<u64>)> {
        let loc = self.locs[*self.by_name.get(name)?];
        Some((&self.shards[loc.shard].path, loc.start as u64..loc.end as u64))
    }

    /// `__metadata__` of the file (of the first shard for a set); empty when absent.
    pub fn metadata(&self) -> &IndexMap<String, String> {
        self.shards.first().map(|s| &s.metadata).unwrap_or(&self.empty)
    }

    /// The index's `metadata` object (e.g. `{"total_size": N}`), for sharded sets.
    pub fn index_metadata(&self) -> Option<&Value> {
        self.index_metadata.as_ref()
    }

    pub fn index_path(&self) -> Option<&Path> {
        self.index_path.as_deref()
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Every file read: the shards, and the index for a set (for output ≠ input checks).
    pub fn files(&self) -> Vec<&Path> {
        let mut v: Vec<&Path> = self.shards.iter().map(|s| s.path.as_path()).collect();
        if let Some(i) = &self.index_path {
            v.push(i);
        }
        v
    }

    /// Sum of the tensor data bytes.
    pub fn total_data_bytes(&self) -> u64 {
        self.locs.iter().map(|l| (l.end - l.start) as u64).sum()
    }
}

/// serde_json maps keep the last of duplicate keys; a weight_map naming one tensor twice
/// (possibly in two shards) must be refused, so its keys are read once more in order.
fn check_weight_map_duplicates(index_json: &Path, text: &str) -> Result<(), SafetensorsError> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: Entries,
    }
    if let Ok(Index { weight_map: Entries(wm, _) }) = serde_json::from_str::<Index>(text) {
        if let Some(k) = first_duplicate(&wm) {
            return Err(SafetensorsError::TensorInTwoShards {
                file: index_json.to_path_buf(),
                tensor: k.to_string(),
                first: PathBuf::from(wm.iter().find(|(n, _)| n == k).and_then(|(_, v)| v.as_str()).unwrap_or("?")),
                second: PathBuf::from(
                    wm.iter().rev().find(|(n, _)| n == k).and_then(|(_, v)| v.as_str()).unwrap_or("?"),
                ),
            });
        }
    }
    Ok(())
}
