//! [`AtomicFile`]: one output file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{check_absent, fsync_dir, register, sibling, split_target, unregister, WriteError};

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
            return Err(WriteError::TargetIsDir { path: target.to_path_buf() });
        }
        check_absent(target, force)?;
        let temp = sibling(&parent, &name, "tmp");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|source| WriteError::CreateTemp { target: target.to_path_buf(), temp: temp.clone(), source })?;
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
        self.out.as_mut().expect("AtomicFile writer used after commit")
    }

    /// Flushes, fsyncs, moves the temp onto the target and fsyncs the directory.
    /// Without `force`, a target that appeared meanwhile is not replaced.
    pub fn commit(mut self) -> Result<(), WriteError> {
        let out = self.out.take().expect("AtomicFile committed twice");
        let file = out.into_inner().map_err(|e| WriteError::io(&self.target, "write", e.into_error()))?;
        file.sync_all().map_err(|e| WriteError::io(&self.target, "fsync", e))?;
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
                    return Err(WriteError::Exists { path: self.target.clone() });
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
        let out = self.out.as_mut().expect("AtomicFile writer used after commit");
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
