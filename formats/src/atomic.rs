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

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
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
    #[error(
        "{output}: output directory contains input {input}; replacing it would destroy the input"
    )]
    OutputContainsInput { output: PathBuf, input: PathBuf },
    #[error("{path}: output has no file name")]
    NoFileName { path: PathBuf },
    #[error("{path}: parent directory {parent} does not exist or is not a directory")]
    NoParent { path: PathBuf, parent: PathBuf },
    #[error("{path}: target is a directory, expected a file")]
    TargetIsDir { path: PathBuf },
    #[error("{target}: cannot create temp {temp}: {source}")]
    CreateTemp {
        target: PathBuf,
        temp: PathBuf,
        source: io::Error,
    },
    #[error("{path}: {op} failed: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl WriteError {
    fn io(path: &Path, op: &'static str, source: io::Error) -> Self {
        WriteError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// output ≠ input

/// `path` made absolute with symlinks and `..` resolved as far as the path exists; the
/// non-existing tail is appended with `.`/`..` resolved lexically.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    // Longest existing prefix, canonicalized; the rest appended lexically.
    let comps: Vec<Component> = abs.components().collect();
    for split in (1..=comps.len()).rev() {
        let prefix: PathBuf = comps[..split].iter().collect();
        if let Ok(canon) = fs::canonicalize(&prefix) {
            let mut out = canon;
            for c in &comps[split..] {
                match c {
                    Component::CurDir => {}
                    Component::ParentDir => {
                        out.pop();
                    }
                    other => out.push(other.as_os_str()),
                }
            }
            return Ok(out);
        }
    }
    Ok(abs)
}

/// Refuses an output that resolves to any input (same canonical path, or same
/// `(dev, inode)` — a hard link), that lies inside an input directory, or that is a directory
/// containing an input (writing it with `--force` would delete the input).
///
/// Callers that want to write *into* a model directory (e.g. `model_dir/model.gguf`) should
/// pass the files they read (config, shards, tokenizer) rather than the directory itself.
pub fn check_output_not_input(output: &Path, inputs: &[&Path]) -> Result<(), WriteError> {
    let out = resolve(output).map_err(|e| WriteError::io(output, "resolve", e))?;
    let out_meta = fs::metadata(&out).ok();
    for &input in inputs {
        let inp = resolve(input).map_err(|e| WriteError::io(input, "resolve", e))?;
        let same_inode = match (&out_meta, fs::metadata(&inp).ok()) {
            (Some(o), Some(i)) => o.dev() == i.dev() && o.ino() == i.ino(),
            _ => false,
        };
        if out == inp || same_inode {
            return Err(WriteError::OutputIsInput {
                output: output.into(),
                input: input.into(),
            });
        }
        if out.starts_with(&inp) {
            return Err(WriteError::OutputInsideInput {
                output: output.into(),
                input: input.into(),
            });
        }
        if inp.starts_with(&out) {
            return Err(WriteError::OutputContainsInput {
                output: output.into(),
                input: input.into(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// registry of live temps

fn registry() -> &'static Mutex<HashSet<PathBuf>> {
    static REG: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashSet::new()))
}

fn register(p: &Path) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(p.to_path_buf());
}

fn unregister(p: &Path) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(p);
}

/// Removes every temp file / directory of this process not yet committed. Meant for the
/// CLI's Ctrl-C handler, right before it exits; outputs still open afterwards fail to commit.
pub fn cleanup_temp_outputs() {
    let paths: Vec<PathBuf> = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .collect();
    for p in paths {
        remove_any(&p);
    }
}

/// Paths of the temps currently registered (for tests and diagnostics).
pub fn live_temp_outputs() -> Vec<PathBuf> {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

fn remove_any(p: &Path) {
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
fn split_target(target: &Path) -> Result<(PathBuf, std::ffi::OsString), WriteError> {
    let name = target
        .file_name()
        .ok_or_else(|| WriteError::NoFileName {
            path: target.to_path_buf(),
        })?
        .to_os_string();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(WriteError::NoParent {
            path: target.to_path_buf(),
            parent,
        });
    }
    Ok((parent, name))
}

/// A hidden sibling name: `.NAME.KIND-PID-RANDOM`.
fn sibling(parent: &Path, name: &std::ffi::OsStr, kind: &str) -> PathBuf {
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
    s.push(format!(
        ".{kind}-{}-{:016x}",
        std::process::id(),
        h.finish()
    ));
    parent.join(s)
}

fn fsync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WriteError::io(dir, "fsync directory", e))
}

fn check_absent(target: &Path, force: bool) -> Result<(), WriteError> {
    if !force && fs::symlink_metadata(target).is_ok() {
        return Err(WriteError::Exists {
            path: target.to_path_buf(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// AtomicFile

/// One output file, written to a hidden temp beside `target` and moved into place by
/// [`commit`](Self::commit). Dropped without commit, the temp is removed.
///
/// Writes through [`Write`] report errors naming the target; [`writer`](Self::writer) gives
/// the raw buffered file.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    force: bool,
    out: Option<BufWriter<File>>,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temp file. An existing `target` is refused unless `force`.
    pub fn create(target: &Path, force: bool) -> Result<Self, WriteError> {
        let (parent, name) = split_target(target)?;
        if target.is_dir() {
            return Err(WriteError::TargetIsDir {
                path: target.to_path_buf(),
            });
        }
        check_absent(target, force)?;
        let temp = sibling(&parent, &name, "tmp");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|source| WriteError::CreateTemp {
                target: target.to_path_buf(),
                temp: temp.clone(),
                source,
            })?;
        register(&temp);
        Ok(AtomicFile {
            target: target.to_path_buf(),
            temp,
            force,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            committed: false,
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.out
            .as_mut()
            .expect("AtomicFile writer used after commit")
    }

    /// Flushes, fsyncs, moves the temp onto the target and fsyncs the directory.
    /// Without `force`, a target that appeared meanwhile is not replaced.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let out = self.out.take().expect("AtomicFile committed twice");
        let file = out
            .into_inner()
            .map_err(|e| WriteError::io(&self.target, "write", e.into_error()))?;
        file.sync_all()
            .map_err(|e| WriteError::io(&self.target, "fsync", e))?;
        drop(file);
        if !self.temp.exists() {
            // cleanup_temp_outputs ran (Ctrl-C): nothing to commit.
            return Err(WriteError::io(
                &self.target,
                "commit",
                io::Error::new(io::ErrorKind::NotFound, "temp file removed (interrupted)"),
            ));
        }
        if self.force {
            fs::rename(&self.temp, &self.target)
                .map_err(|e| WriteError::io(&self.target, "rename temp onto target", e))?;
        } else {
            // link(2) fails with EEXIST if the target appeared since `create`: no-replace
            // semantics without a race. Filesystems without hard links fall back to rename.
            match fs::hard_link(&self.temp, &self.target) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.temp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(WriteError::Exists {
                        path: self.target.clone(),
                    });
                }
                Err(_) => {
                    check_absent(&self.target, false)?;
                    fs::rename(&self.temp, &self.target)
                        .map_err(|e| WriteError::io(&self.target, "rename temp onto target", e))?;
                }
            }
        }
        self.committed = true;
        unregister(&self.temp);
        let (parent, _) = split_target(&self.target)?;
        fsync_dir(&parent)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (out, target) = self.parts();
        out.write(buf).map_err(|e| with_path(target, e))
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let (out, target) = self.parts();
        out.write_all(buf).map_err(|e| with_path(target, e))
    }
    fn flush(&mut self) -> io::Result<()> {
        let (out, target) = self.parts();
        out.flush().map_err(|e| with_path(target, e))
    }
}

impl AtomicFile {
    fn parts(&mut self) -> (&mut BufWriter<File>, &Path) {
        let out = self
            .out
            .as_mut()
            .expect("AtomicFile writer used after commit");
        (out, &self.target)
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            // Drop the buffer unflushed: nothing more goes to a temp that is being removed.
            let (file, _) = out.into_parts();
            drop(file);
        }
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
            unregister(&self.temp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AtomicDir

/// One output directory, built as a hidden temp directory beside `target` and moved into
/// place by [`commit`](Self::commit) (with `force`, the old target is moved aside first and
/// removed after the new one is in place). Dropped without commit, the temp is removed.
#[derive(Debug)]
pub struct AtomicDir {
    target: PathBuf,
    temp: PathBuf,
    force: bool,
    committed: bool,
}

impl AtomicDir {
    pub fn create(target: &Path, force: bool) -> Result<Self, WriteError> {
        let (parent, name) = split_target(target)?;
        check_absent(target, force)?;
        let temp = sibling(&parent, &name, "tmp");
        fs::create_dir(&temp).map_err(|source| WriteError::CreateTemp {
            target: target.to_path_buf(),
            temp: temp.clone(),
            source,
        })?;
        register(&temp);
        Ok(AtomicDir {
            target: target.to_path_buf(),
            temp,
            force,
            committed: false,
        })
    }

    /// The temp directory to write the files into.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Fsyncs the files and the temp directory, moves it into place, fsyncs the parent.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let (parent, name) = split_target(&self.target)?;
        if !self.temp.is_dir() {
            return Err(WriteError::io(
                &self.target,
                "commit",
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "temp directory removed (interrupted)",
                ),
            ));
        }
        sync_tree(&self.temp)?;
        let exists = fs::symlink_metadata(&self.target).is_ok();
        if exists && !self.force {
            return Err(WriteError::Exists {
                path: self.target.clone(),
            });
        }
        if exists {
            // Swap new and old in one step where the kernel can (renameat2 RENAME_EXCHANGE),
            // so the target never goes missing; the old output then sits at the temp path.
            if exchange(&self.temp, &self.target).is_ok() {
                remove_any(&self.temp);
            } else {
                // Two renames. The moved-aside old output is not registered for Ctrl-C
                // cleanup: if interrupted here it survives as a hidden `.NAME.old-…`.
                let old = sibling(&parent, &name, "old");
                fs::rename(&self.target, &old)
                    .map_err(|e| WriteError::io(&self.target, "move old target aside", e))?;
                if let Err(e) = fs::rename(&self.temp, &self.target) {
                    let _ = fs::rename(&old, &self.target);
                    return Err(WriteError::io(
                        &self.target,
                        "rename temp directory onto target",
                        e,
                    ));
                }
                remove_any(&old);
            }
        } else {
            fs::rename(&self.temp, &self.target).map_err(|e| {
                WriteError::io(&self.target, "rename temp directory onto target", e)
            })?;
        }
        self.committed = true;
        unregister(&self.temp);
        fsync_dir(&parent)
    }
}

/// Atomically exchanges two paths (Linux `renameat2(RENAME_EXCHANGE)`); `Unsupported`
/// elsewhere, or an error on filesystems without it, and the caller falls back.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes())?;
    let b = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths, AT_FDCWD, a flag the kernel checks.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Fsyncs every regular file under `dir` and every directory (including `dir`).
fn sync_tree(dir: &Path) -> Result<(), WriteError> {
    let rd = fs::read_dir(dir).map_err(|e| WriteError::io(dir, "read directory", e))?;
    for entry in rd {
        let entry = entry.map_err(|e| WriteError::io(dir, "read directory", e))?;
        let p = entry.path();
        let ft = entry
            .file_type()
            .map_err(|e| WriteError::io(&p, "stat", e))?;
        if ft.is_dir() {
            sync_tree(&p)?;
        } else if ft.is_file() {
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| WriteError::io(&p, "fsync", e))?;
        }
    }
    fsync_dir(dir)
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            remove_any(&self.temp);
            unregister(&self.temp);
        }
    }
}
