//! Content addressing for build steps. A step's key is the SHA-256 of llmtool's version,
//! the step's configuration and the content hashes of everything it reads (its input model,
//! adapters, merge configs and the models they name), so an unchanged step is found in the
//! cache and skipped on rebuild. File hashes are memoised by (path, size, mtime) in the
//! cache directory so a large model is read once, not on every build.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// llmtool's version: part of every key, so a new release recomputes its results.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A hex SHA-256.
pub type Hash = String;

/// Memoised content hashes of files and directories.
pub struct HashMemo {
    file: PathBuf,
    entries: BTreeMap<String, (u64, u128, Hash)>,
    dirty: bool,
}

impl HashMemo {
    /// Loads the memo from `cache_dir` (an unreadable memo is ignored: it is only a speed-up).
    pub fn load(cache_dir: &Path) -> HashMemo {
        let file = cache_dir.join("file-hashes.json");
        let entries = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        HashMemo { file, entries, dirty: false }
    }

    /// Writes the memo back (best effort, atomically by rename).
    pub fn save(&self) {
        if !self.dirty {
            return;
        }
        if let (Some(dir), Ok(json)) = (self.file.parent(), serde_json::to_vec(&self.entries)) {
            let _ = std::fs::create_dir_all(dir);
            let tmp = self.file.with_extension("json.tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, &self.file);
            }
        }
    }

    /// Content hash of a file, or of a directory (its files' relative names and hashes, in
    /// name order; hidden files skipped).
    pub fn hash_path(&mut self, path: &Path) -> std::io::Result<Hash> {
        let meta = std::fs::metadata(path).map_err(|e| with_path(path, e))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            list_files(path, path, &mut files)?;
            files.sort();
            let mut h = Sha256::new();
            for rel in files {
                let fh = self.hash_path(&path.join(&rel))?;
                h.update(rel.to_string_lossy().as_bytes());
                h.update([0]);
                h.update(fh.as_bytes());
            }
            return Ok(hex(&h.finalize()));
        }
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).to_string_lossy().into_owned();
        let mtime =
            meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        if let Some((size, mt, h)) = self.entries.get(&key) {
            if *size == meta.len() && *mt == mtime {
                return Ok(h.clone());
            }
        }
        let h = hash_file(path)?;
        self.entries.insert(key, (meta.len(), mtime, h.clone()));
        self.dirty = true;
        Ok(h)
    }
}

fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| with_path(dir, e))? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            list_files(root, &p, out)?;
        } else {
            out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
        }
    }
    Ok(())
}

/// Bytes on disk of a file, or of every file under a directory.
pub fn path_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    let mut files = Vec::new();
    if list_files(path, path, &mut files).is_err() {
        return 0;
    }
    files.iter().filter_map(|f| std::fs::metadata(path.join(f)).ok()).map(|m| m.len()).sum()
}

fn hash_file(path: &Path) -> std::io::Result<Hash> {
    let mut f = std::fs::File::open(path).map_err(|e| with_path(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| with_path(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of a step: version, kind, configuration (as canonical JSON) and the hashes of
/// what it reads, in a fixed order.
pub fn step_key(kind: &str, config: &serde_json::Value, reads: &[(&str, &Hash)]) -> Hash {
    let mut h = Sha256::new();
    for part in [TOOL_VERSION, kind, &config.to_string()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for (role, hash) in reads {
        h.update(role.as_bytes());
        h.update([0]);
        h.update(hash.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_config_and_inputs_and_hashes_are_memoised() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, b"hello").unwrap();
        let mut memo = HashMemo::load(dir.path());
        let h1 = memo.hash_path(&f).unwrap();
        assert_eq!(h1, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"); // sha256("hello")
        let cfg = serde_json::json!({"type": "Q8_0"});
        let k1 = step_key("quantize", &cfg, &[("input", &h1)]);
        assert_ne!(k1, step_key("quantize", &serde_json::json!({"type": "Q4_0"}), &[("input", &h1)]));
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x"), b"1").unwrap();
        let d1 = memo.hash_path(&sub).unwrap();
        std::fs::write(sub.join("y"), b"2").unwrap();
        assert_ne!(d1, memo.hash_path(&sub).unwrap());
        memo.save();
        let memo2 = HashMemo::load(dir.path());
        assert!(!memo2.entries.is_empty());
    }
}
