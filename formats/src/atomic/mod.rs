//! Crash-safe outputs.
//!
//! Every writer of llmtool goes through [`AtomicFile`] (one file) or [`AtomicDir`] (a sharded
//! safetensors set, an HF directory): the bytes go to a hidden temp beside the target
//! (`.NAME.tmp-PID-RANDOM`, same directory so that the final `rename` is atomic), which is
//! fsynced, renamed into place, and the parent directory fsynced. So:
//!
//! - a run that fails (disk full, bad input) or is dropped without `commit` removes its temp
//!   and leaves any existing target untouched;
//! - a run interrupted by Ctrl-C removes its temps when the CLI's handler calls
//!   [`cleanup_temp_outputs`] (every live temp is in a process-wide registry);
//! - a SIGKILL / power loss leaves at most a hidden temp, never a partial target.
//!
//! [`check_output_not_input`] refuses an output that is (or would replace a directory holding)
//! one of the inputs, however the paths are spelled (symlinks, `..`, hard links).

mod check;
mod dir;
mod file;

pub use check::check_output_not_input;
pub use dir::AtomicDir;
pub use file::AtomicFile;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Errors preparing or committing an output. Every variant names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: output exists (use --force to overwrite)")]
    Exists { path: PathBuf },
    #[error("{output}: output is the same file as input {input}")]
    OutputIsInput { output: PathBuf, input: PathBuf },
    #[error("{output}: output is inside input directory {input}")]
    OutputInsideInput { output: PathBuf, input: PathBuf },
    #[error("{output}: output directory contains input {input}; replacing it would destroy the input")]
    OutputContainsInput { output: PathBuf, input: PathBuf },
    #[error("{path}: output has no file name")]
    NoFileName { path: PathBuf },
    #[error("{path}: parent directory {parent} does not exist or is not a directory")]
    NoParent { path: PathBuf, parent: PathBuf },
    #[error("{path}: target is a directory, expected a file")]
    TargetIsDir { path: PathBuf },
    #[error("{target}: cannot create temp {temp}: {source}")]
    CreateTemp { target: PathBuf, temp: PathBuf, source: io::Error },
    #[error("{path}: {op} failed: {source}")]
    Io { path: PathBuf, op: &'static str, source: io::Error },
}

impl WriteError {
    pub(crate) fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        WriteError::Io { path: path.to_path_buf(), op, source }
    }
}

// ---------------------------------------------------------------------------------------------
// registry of live temps

fn registry() -> &'static Mutex<HashSet<PathBuf>> {
    static REG: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashSet::new()))
}

pub(crate) fn register(p: &Path) {
    registry().lock().unwrap_or_else(|e| e.into_inner()).insert(p.to_path_buf());
}

pub(crate) fn unregister(p: &Path) {
    registry().lock().unwrap_or_else(|e| e.into_inner()).remove(p);
}

/// Removes every temp file / directory of this process not yet committed. Meant for the
/// CLI's Ctrl-C handler, right before it exits; outputs still open afterwards fail to commit.
pub fn cleanup_temp_outputs() {
    let paths: Vec<PathBuf> = registry().lock().unwrap_or_else(|e| e.into_inner()).drain().collect();
    for p in paths {
        remove_any(&p);
    }
}

/// Paths of the temps currently registered (for tests and diagnostics).
pub fn live_temp_outputs() -> Vec<PathBuf> {
    registry().lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
}

pub(crate) fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// helpers

/// Parent directory and file name of `target`, the parent checked to be a directory.
pub(crate) fn split_target(target: &Path) -> Result<(PathBuf, std::ffi::OsString), WriteError> {
    let name = target.file_name().ok_or_else(|| WriteError::NoFileName { path: target.to_path_buf() })?.to_os_string();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(WriteError::NoParent { path: target.to_path_buf(), parent });
    }
    Ok((parent, name))
}

/// A hidden sibling name: `.NAME.KIND-PID-RANDOM`.
pub(crate) fn sibling(parent: &Path, name: &std::ffi::OsStr, kind: &str) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process; mixing a counter and the time makes names
    // unique within the process too.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(format!(".{kind}-{}-{:016x}", std::process::id(), h.finish()));
    parent.join(s)
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| WriteError::io(dir, "fsync directory", e))
}

pub(crate) fn check_absent(target: &Path, force: bool) -> Result<(), WriteError> {
    if !force && fs::symlink_metadata(target).is_ok() {
        return Err(WriteError::Exists { path: target.to_path_buf() });
    }
    Ok(())
}
