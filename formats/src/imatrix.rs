//! Importance-matrix files, as llama.cpp's `llama-imatrix` writes and `llama-quantize` reads
//! them (llama.cpp `tools/imatrix/imatrix.cpp` `save_imatrix` / `save_imatrix_legacy`,
//! `common/imatrix-loader.cpp` `common_imatrix_load`; the llama.cpp vendored in
//! llama-cpp-python 0.3.36).
//!
//! * **GGUF** (current): `general.type = "imatrix"`, `imatrix.datasets` (string array),
//!   `imatrix.chunk_count`, `imatrix.chunk_size` (u32); per weight `W` two F32 tensors,
//!   `W.in_sum2` of `ne = [n_cols, n_mat]` (Σ x² of the matmul's input columns over every
//!   token, per expert for MoE weights) and `W.counts` of `ne = [1, n_mat]` (tokens seen),
//!   in name order.
//! * **legacy `.dat`**: i32 entry count; per entry i32 name length, the name, i32 `ncall`,
//!   i32 value count, the f32 values = Σ x² / count · ncall; then, optionally, the i32 chunk
//!   count and an i32-length-prefixed dataset name. All little-endian.
//!
//! [`Imatrix`] holds what `common_imatrix` holds: raw sums and counts for GGUF files, the
//! legacy file's values with `counts = [ncall]` for legacy ones; [`Imatrix::importance`] gives
//! the per-column mean of squares `llama-quantize` hands to the quantizers for either.
//! Readers check every count against the bytes that remain before allocating.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::atomic::AtomicFile;
use crate::gguf::{GgufFile, GgufHeader};
use crate::{FormatError, GgmlType, MetaArray, MetaValue, Metadata, TensorInfo};

pub const KEY_DATASETS: &str = "imatrix.datasets";
pub const KEY_CHUNK_COUNT: &str = "imatrix.chunk_count";
pub const KEY_CHUNK_SIZE: &str = "imatrix.chunk_size";
const SUFFIX_SUMS: &str = ".in_sum2";
const SUFFIX_COUNTS: &str = ".counts";

#[derive(Debug, thiserror::Error)]
pub enum ImatrixError {
    // The source is printed by the error chain (the CLI prints every cause), not repeated here.
    #[error("imatrix {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("imatrix {path}")]
    Gguf { path: PathBuf, source: Box<FormatError> },
    #[error("{path}: not an imatrix file: {why}")]
    NotImatrix { path: PathBuf, why: String },
    #[error("{path}: legacy imatrix truncated or malformed at byte {offset}: {what}")]
    Legacy { path: PathBuf, offset: usize, what: String },
    #[error("{path}: entry '{name}': {what}")]
    Entry { path: PathBuf, name: String, what: String },
    #[error("imatrix entry '{name}' does not fit the model: {what}")]
    Mismatch { name: String, what: String },
    #[error("combining imatrix files: {0}")]
    Combine(String),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: Box<FormatError> },
}

/// One weight's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ImatrixEntry {
    /// `counts.len()` rows of `sums.len() / counts.len()` values (one row per expert).
    pub sums: Vec<f32>,
    /// Tokens seen per row (GGUF), or `[ncall]` (legacy).
    pub counts: Vec<i64>,
}

impl ImatrixEntry {
    /// Values per row (the weight's input width).
    pub fn n_cols(&self) -> usize {
        self.sums.len() / self.counts.len().max(1)
    }
}

/// An importance matrix: entries by weight name (GGUF tensor names, e.g. `blk.0.attn_q.weight`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imatrix {
    pub entries: BTreeMap<String, ImatrixEntry>,
    pub datasets: Vec<String>,
    pub chunk_count: u32,
    /// Tokens per chunk (0 in legacy files).
    pub chunk_size: u32,
    /// Read from a legacy `.dat` (sums are normalised means × ncall, not raw sums).
    pub is_legacy: bool,
}

impl Imatrix {
    /// Reads either format: a GGUF file by its magic, anything else as legacy.
    pub fn read(path: &Path) -> Result<Imatrix, ImatrixError> {
        let bytes = std::fs::read(path).map_err(|source| ImatrixError::Io { path: path.into(), source })?;
        if bytes.starts_with(b"GGUF") {
            let file = GgufFile::from_vec(bytes, path)
                .map_err(|e| ImatrixError::Gguf { path: path.into(), source: Box::new(e.into()) })?;
            Self::from_gguf(&file, path)
        } else {
            Self::from_legacy_bytes(&bytes, path)
        }
    }

    /// The entries of a GGUF imatrix (`common_imatrix_load`): `.in_sum2`/`.counts` pairs, F32,
    /// `in_sum2` a whole number of rows of `counts`' length.
    pub fn from_gguf(file: &GgufFile, path: &Path) -> Result<Imatrix, ImatrixError> {
        let md = &file.metadata;
        let not = |why: String| ImatrixError::NotImatrix { path: path.into(), why };
        if let Some(t) = md.get_str("general.type") {
            if t != "imatrix" {
                return Err(not(format!("general.type is '{t}', expected 'imatrix'")));
            }
        }
        for key in [KEY_DATASETS, KEY_CHUNK_COUNT, KEY_CHUNK_SIZE] {
            if !md.contains_key(key) {
                // llama-quantize refuses such files too ("missing imatrix metadata").
                return Err(not(format!("metadata key {key} is missing")));
            }
        }
        let datasets = match md.get(KEY_DATASETS) {
            Some(MetaValue::Array(MetaArray::String(v))) => v.clone(),
            _ => return Err(not(format!("{KEY_DATASETS} is not an array of strings"))),
        };
        let u32_key = |key: &str| match md.get(key) {
            Some(MetaValue::U32(v)) => Ok(*v),
            _ => Err(not(format!("{key} is not a u32"))),
        };
        let (chunk_count, chunk_size) = (u32_key(KEY_CHUNK_COUNT)?, u32_key(KEY_CHUNK_SIZE)?);
        let mut pairs: BTreeMap<&str, (Option<usize>, Option<usize>)> = BTreeMap::new();
        for (i, t) in file.tensors.iter().enumerate() {
            if let Some(n) = t.name.strip_suffix(SUFFIX_SUMS) {
                pairs.entry(n).or_default().0 = Some(i);
            } else if let Some(n) = t.name.strip_suffix(SUFFIX_COUNTS) {
                pairs.entry(n).or_default().1 = Some(i);
            }
        }
        if pairs.is_empty() {
            return Err(not("no .in_sum2 / .counts tensors".into()));
        }
        let mut entries = BTreeMap::new();
        for (name, pair) in pairs {
            let bad = |what: String| ImatrixError::Entry { path: path.into(), name: name.into(), what };
            let (Some(si), Some(ci)) = pair else {
                return Err(bad("has only one of .in_sum2 and .counts".into()));
            };
            let (s, c) = (&file.tensors[si], &file.tensors[ci]);
            if s.ty != GgmlType::F32 || c.ty != GgmlType::F32 {
                return Err(bad(format!("tensors must be F32, found {} and {}", s.ty, c.ty)));
            }
            let sums = f32s(file.tensor_data_at(si));
            let counts: Vec<i64> = f32s(file.tensor_data_at(ci)).iter().map(|&x| x.round() as i64).collect();
            if counts.is_empty() || !sums.len().is_multiple_of(counts.len()) {
                return Err(bad(format!("{} sums are not rows of {} counts", sums.len(), counts.len())));
            }
            if let Some(x) = counts.iter().find(|&&x| x < 0) {
                return Err(bad(format!("negative count {x}")));
            }
            entries.insert(name.to_string(), ImatrixEntry { sums, counts });
        }
        Ok(Imatrix { entries, datasets, chunk_count, chunk_size, is_legacy: false })
    }

    /// A legacy `.dat` file (`common_imatrix_load_legacy`).
    pub fn from_legacy_bytes(bytes: &[u8], path: &Path) -> Result<Imatrix, ImatrixError> {
        let mut r = LegacyReader { bytes, pos: 0, path };
        let n_entries = r.i32("entry count")?;
        if n_entries < 1 {
            return Err(r.err(format!("entry count {n_entries}: no data")));
        }
        let mut entries = BTreeMap::new();
        for i in 0..n_entries {
            let len = r.len(&format!("name length of entry {}", i + 1), 1)?;
            let name = String::from_utf8(r.take(len, "entry name")?.to_vec())
                .map_err(|_| r.err(format!("entry {} name is not UTF-8", i + 1)))?;
            let ncall = r.i32("ncall")?;
            let nval = r.len(&format!("value count of '{name}'"), 4)?;
            if nval == 0 {
                return Err(r.err(format!("entry '{name}' has no values")));
            }
            let sums = f32s(r.take(nval * 4, "values")?);
            entries.insert(name, ImatrixEntry { sums, counts: vec![ncall as i64] });
        }
        let mut m = Imatrix { entries, is_legacy: true, ..Default::default() };
        // Optional trailer: chunk count, then the dataset name.
        if r.pos < bytes.len() {
            m.chunk_count = r.i32("chunk count")?.max(0) as u32;
            if r.pos < bytes.len() {
                let len = r.len("dataset name length", 1)?;
                let name = r.take(len, "dataset name")?;
                if len > 0 {
                    m.datasets.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        Ok(m)
    }

    /// Per weight, the per-column mean of x² that `llama-quantize` passes to the quantizers:
    /// GGUF: sums / count per row (1 where a row saw no token); legacy: values / ncall.
    pub fn importance(&self) -> BTreeMap<&str, Vec<f32>> {
        let mut out = BTreeMap::new();
        for (name, e) in &self.entries {
            let n = e.n_cols();
            let v = if self.is_legacy {
                let ncall = e.counts.first().copied().unwrap_or(0);
                if ncall > 0 {
                    e.sums.iter().map(|&s| s / ncall as f32).collect()
                } else {
                    e.sums.clone()
                }
            } else {
                e.sums
                    .chunks(n.max(1))
                    .zip(&e.counts)
                    .flat_map(|(row, &c)| row.iter().map(move |&s| if c > 0 { s / c as f32 } else { 1.0 }))
                    .collect()
            };
            out.insert(name.as_str(), v);
        }
        out
    }

    /// Checks that every entry names a weight among `tensors` whose input width (`ne[0]`) is
    /// the entry's row length and whose expert count (`ne[2]`, 1 for a matrix) its row count:
    /// an imatrix made for another model is refused.
    pub fn check_fits(&self, tensors: &[TensorInfo]) -> Result<(), ImatrixError> {
        for (name, e) in &self.entries {
            let bad = |what: String| ImatrixError::Mismatch { name: name.clone(), what };
            let t = tensors.iter().find(|t| &t.name == name).ok_or_else(|| bad("no such tensor".into()))?;
            let n_mat = t.ne.get(2).copied().unwrap_or(1) as usize;
            if t.ne.first().copied().unwrap_or(0) as usize != e.n_cols()
                || (e.counts.len() != 1 && e.counts.len() != n_mat)
            {
                return Err(bad(format!(
                    "{} values in {} row(s), the tensor's shape is {:?}",
                    e.sums.len(),
                    e.counts.len(),
                    t.ne
                )));
            }
        }
        Ok(())
    }

    /// Adds `other`'s statistics, as `llama-imatrix --in-file a --in-file b` does
    /// (`IMatrixCollector::load_imatrix`): raw sums and counts add; a legacy file's values
    /// count as `ncall · chunk_size` tokens (`chunk_size` from the combined GGUF data, which
    /// must have one). Datasets are appended, chunk counts added.
    pub fn combine(&mut self, other: &Imatrix) -> Result<(), ImatrixError> {
        if self.is_legacy {
            return Err(ImatrixError::Combine("a legacy file can only be added to GGUF data".into()));
        }
        if other.is_legacy && self.chunk_size == 0 {
            return Err(ImatrixError::Combine(
                "a legacy file holds no chunk size: give a GGUF imatrix first (its chunk size counts the legacy calls)"
                    .into(),
            ));
        }
        if !other.is_legacy && self.chunk_size != 0 && other.chunk_size != 0 && self.chunk_size != other.chunk_size {
            return Err(ImatrixError::Combine(format!(
                "chunk sizes differ: {} vs {} (computed with different --ctx)",
                self.chunk_size, other.chunk_size
            )));
        }
        if self.chunk_size == 0 {
            self.chunk_size = other.chunk_size;
        }
        for (name, o) in &other.entries {
            let e = self.entries.entry(name.clone()).or_insert_with(|| ImatrixEntry {
                sums: vec![0.0; o.sums.len()],
                counts: vec![0; o.counts.len().max(1)],
            });
            if other.is_legacy {
                if e.sums.len() != o.sums.len() {
                    return Err(ImatrixError::Combine(format!(
                        "'{name}': {} values vs {}",
                        e.sums.len(),
                        o.sums.len()
                    )));
                }
                let add = o.counts.first().copied().unwrap_or(0) * self.chunk_size as i64;
                e.sums.iter_mut().zip(&o.sums).for_each(|(a, b)| *a += b);
                e.counts.iter_mut().for_each(|c| *c += add);
                continue;
            }
            // An entry seen as one matrix so far may be an expert stack in `other` (and back).
            if e.counts.len() == 1 && o.counts.len() > 1 {
                let (c, row) = (e.counts[0], e.sums.clone());
                e.counts = vec![c; o.counts.len()];
                e.sums = row.iter().copied().cycle().take(row.len() * o.counts.len()).collect();
            }
            if e.counts.len() != o.counts.len() || e.sums.len() != o.sums.len() {
                return Err(ImatrixError::Combine(format!(
                    "'{name}': {} values in {} rows vs {} in {}",
                    e.sums.len(),
                    e.counts.len(),
                    o.sums.len(),
                    o.counts.len()
                )));
            }
            e.sums.iter_mut().zip(&o.sums).for_each(|(a, b)| *a += b);
            e.counts.iter_mut().zip(&o.counts).for_each(|(a, b)| *a += b);
        }
        self.datasets.extend(other.datasets.iter().cloned());
        self.chunk_count += other.chunk_count;
        Ok(())
    }

    /// The GGUF form `llama-imatrix` writes (metadata in its order, tensors sorted by name,
    /// `.in_sum2` before `.counts`).
    pub fn gguf_header(&self) -> Result<GgufHeader, FormatError> {
        let mut md = Metadata::new();
        md.insert("general.type", MetaValue::String("imatrix".into()));
        md.insert(KEY_DATASETS, MetaValue::Array(MetaArray::String(self.datasets.clone())));
        md.insert(KEY_CHUNK_COUNT, MetaValue::U32(self.chunk_count));
        md.insert(KEY_CHUNK_SIZE, MetaValue::U32(self.chunk_size));
        let mut tensors = Vec::with_capacity(2 * self.entries.len());
        for (name, e) in &self.entries {
            let n_mat = e.counts.len() as u64;
            tensors.push(TensorInfo::new(
                format!("{name}{SUFFIX_SUMS}"),
                GgmlType::F32,
                vec![e.n_cols() as u64, n_mat],
            ));
            tensors.push(TensorInfo::new(format!("{name}{SUFFIX_COUNTS}"), GgmlType::F32, vec![1, n_mat]));
        }
        Ok(GgufHeader::new(md, tensors)?)
    }

    /// Writes the GGUF form atomically (`force`: replace an existing file).
    pub fn write_gguf(&self, path: &Path, force: bool) -> Result<(), ImatrixError> {
        if self.is_legacy {
            return Err(ImatrixError::Write {
                path: path.into(),
                source: Box::new(FormatError::Other(
                    "legacy data (means × ncall) has no raw sums: combine it into GGUF data first".into(),
                )),
            });
        }
        let werr = |source: FormatError| ImatrixError::Write { path: path.into(), source: Box::new(source) };
        let header = self.gguf_header().map_err(werr)?;
        let entries: Vec<&ImatrixEntry> = self.entries.values().collect();
        let mut out = AtomicFile::create(path, force).map_err(|e| werr(e.into()))?;
        crate::gguf::write_gguf(
            out.writer(),
            &header,
            |i, _| {
                let e = entries[i / 2];
                Ok(Cow::Owned(if i % 2 == 0 {
                    f32_bytes(e.sums.iter().copied())
                } else {
                    f32_bytes(e.counts.iter().map(|&c| c as f32))
                }))
            },
            |_| {},
        )
        .map_err(werr)?;
        out.commit().map_err(|e| werr(e.into()))
    }

    /// The legacy `.dat` bytes `llama-imatrix --output-format dat` writes: entries that saw no
    /// token at all are left out; rows without data are stored as 1; per entry
    /// `ncall = ceil(max count / chunk_size)` and values Σx²/count · ncall.
    pub fn legacy_bytes(&self, dataset: Option<&str>) -> Result<Vec<u8>, FormatError> {
        if self.is_legacy || self.chunk_size == 0 {
            return Err(FormatError::Other("legacy output needs raw sums and a chunk size (GGUF data)".into()));
        }
        let stored: Vec<(&String, &ImatrixEntry)> =
            self.entries.iter().filter(|(_, e)| e.counts.iter().any(|&c| c != 0)).collect();
        let mut b = Vec::new();
        b.extend((stored.len() as i32).to_le_bytes());
        let cs = self.chunk_size as i64;
        for (name, e) in stored {
            b.extend((name.len() as i32).to_le_bytes());
            b.extend(name.as_bytes());
            let max = e.counts.iter().copied().max().unwrap_or(0);
            let ncall = ((max + cs - 1) / cs) as i32;
            b.extend(ncall.to_le_bytes());
            b.extend((e.sums.len() as i32).to_le_bytes());
            let n = e.n_cols();
            for (i, &s) in e.sums.iter().enumerate() {
                let c = e.counts[i / n] as f32;
                let (v, c) = if c == 0.0 { (1.0, 1.0) } else { (s, c) };
                b.extend(((v / c) * ncall as f32).to_le_bytes());
            }
        }
        b.extend((self.chunk_count as i32).to_le_bytes());
        let ds = dataset.or(self.datasets.last().map(String::as_str)).unwrap_or("");
        b.extend((ds.len() as i32).to_le_bytes());
        b.extend(ds.as_bytes());
        Ok(b)
    }

    /// Writes the legacy form atomically.
    pub fn write_legacy(&self, path: &Path, force: bool) -> Result<(), ImatrixError> {
        let werr = |source: FormatError| ImatrixError::Write { path: path.into(), source: Box::new(source) };
        let bytes = self.legacy_bytes(None).map_err(werr)?;
        let mut out = AtomicFile::create(path, force).map_err(|e| werr(e.into()))?;
        std::io::Write::write_all(out.writer(), &bytes)
            .map_err(|source| werr(FormatError::Io { path: path.into(), source }))?;
        out.commit().map_err(|e| werr(e.into()))
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn f32_bytes(v: impl Iterator<Item = f32>) -> Vec<u8> {
    v.flat_map(f32::to_le_bytes).collect()
}

struct LegacyReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl LegacyReader<'_> {
    fn err(&self, what: String) -> ImatrixError {
        ImatrixError::Legacy { path: self.path.into(), offset: self.pos, what }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], ImatrixError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(self.err(format!("{what}: {n} bytes needed, {left} left")));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i32(&mut self, what: &str) -> Result<i32, ImatrixError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length field whose `len · unit` bytes must follow in the file.
    fn len(&mut self, what: &str, unit: usize) -> Result<usize, ImatrixError> {
        let v = self.i32(what)?;
        let left = self.bytes.len() - self.pos;
        if v < 0 || (v as usize).saturating_mul(unit) > left {
            return Err(self.err(format!("{what} {v} does not fit the {left} bytes left")));
        }
        Ok(v as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Imatrix {
        let mut entries = BTreeMap::new();
        entries.insert("blk.0.attn_q.weight".to_string(), ImatrixEntry { sums: vec![4.0, 8.0, 12.0], counts: vec![4] });
        // two experts, the second never routed to
        entries.insert(
            "blk.0.ffn_up_exps.weight".to_string(),
            ImatrixEntry { sums: vec![2.0, 6.0, 0.0, 0.0], counts: vec![2, 0] },
        );
        Imatrix { entries, datasets: vec!["wiki.txt".into()], chunk_count: 2, chunk_size: 2, is_legacy: false }
    }

    #[test]
    fn gguf_round_trip_and_importance() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        let m = sample();
        m.write_gguf(&p, false).unwrap();
        let back = Imatrix::read(&p).unwrap();
        assert_eq!(back, m);
        let imp = back.importance();
        assert_eq!(imp["blk.0.attn_q.weight"], vec![1.0, 2.0, 3.0]);
        assert_eq!(imp["blk.0.ffn_up_exps.weight"], vec![1.0, 3.0, 1.0, 1.0]);
        // names sorted, in_sum2 then counts, shapes as llama-imatrix writes them
        let f = GgufFile::open(&p).unwrap();
        let names: Vec<_> = f.tensors.iter().map(|t| (t.name.as_str(), t.ne.clone())).collect();
        assert_eq!(
            names,
            [
                ("blk.0.attn_q.weight.in_sum2", vec![3, 1]),
                ("blk.0.attn_q.weight.counts", vec![1, 1]),
                ("blk.0.ffn_up_exps.weight.in_sum2", vec![2, 2]),
                ("blk.0.ffn_up_exps.weight.counts", vec![1, 2]),
            ]
        );
        assert!(matches!(m.write_gguf(&p, false), Err(ImatrixError::Write { .. })), "existing file kept");
    }

    #[test]
    fn legacy_round_trip_matches_the_gguf_importance() {
        let m = sample();
        let bytes = m.legacy_bytes(None).unwrap();
        let back = Imatrix::from_legacy_bytes(&bytes, Path::new("m.dat")).unwrap();
        assert!(back.is_legacy);
        assert_eq!(back.chunk_count, 2);
        assert_eq!(back.datasets, vec!["wiki.txt".to_string()]);
        // ncall = ceil(4 / 2) = 2 for attn_q: stored mean · 2, read back as the mean.
        assert_eq!(back.entries["blk.0.attn_q.weight"].counts, vec![2]);
        let (a, b) = (m.importance(), back.importance());
        assert_eq!(a, b);
        // combining the legacy data into GGUF data adds ncall · chunk_size tokens
        let mut c = m.clone();
        c.combine(&back).unwrap();
        assert_eq!(c.entries["blk.0.attn_q.weight"].counts, vec![8]);
        assert_eq!(c.chunk_count, 4);
        assert_eq!(c.datasets.len(), 2);
    }

    #[test]
    fn malformed_legacy_files_are_clear_errors() {
        let good = sample().legacy_bytes(None).unwrap();
        for cut in [0, 3, 7, 20, 40] {
            let e = Imatrix::from_legacy_bytes(&good[..cut], Path::new("t.dat")).unwrap_err().to_string();
            assert!(e.contains("t.dat") && e.contains("byte"), "cut {cut}: {e}");
        }
        // a huge value count is refused before any allocation
        let mut b = 1i32.to_le_bytes().to_vec();
        b.extend(1i32.to_le_bytes());
        b.push(b'w');
        b.extend(1i32.to_le_bytes());
        b.extend(i32::MAX.to_le_bytes());
        let e = Imatrix::from_legacy_bytes(&b, Path::new("t.dat")).unwrap_err().to_string();
        assert!(e.contains("value count of 'w'") && e.contains("does not fit"), "{e}");
    }

    #[test]
    fn gguf_without_imatrix_metadata_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gguf");
        let mut md = Metadata::new();
        md.insert("general.architecture", MetaValue::String("llama".into()));
        let h = GgufHeader::new(md, vec![]).unwrap();
        let mut f = std::fs::File::create(&p).unwrap();
        crate::gguf::write_gguf(&mut f, &h, |_, _| unreachable!(), |_| {}).unwrap();
        let e = Imatrix::read(&p).unwrap_err().to_string();
        assert!(e.contains("not an imatrix file") && e.contains("imatrix.datasets"), "{e}");
    }
}
