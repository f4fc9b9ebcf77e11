//! [`AtomicDir`]: one output directory (a sharded set, an HF model directory).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{check_absent, fsync_dir, register, remove_any, sibling, split_target, unregister, WriteError};

/// One output directory, built as a hidden temp directory beside `target` and moved into
/// place by [`commit`](Self::commit). With `force`, an existing target is swapped with the new
/// directory in one step (`renameat2(RENAME_EXCHANGE)`; where unsupported, moved aside first)
/// and removed afterwards. Dropped without commit, the temp is removed.
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
        Ok(AtomicDir { target: target.to_path_buf(), temp, force, committed: false })
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
                io::Error::new(io::ErrorKind::NotFound, "temp directory removed (interrupted)"),
            ));
        }
        sync_tree(&self.temp)?;
        let exists = fs::symlink_metadata(&self.target).is_ok();
        if exists && !self.force {
            return Err(WriteError::Exists { path: self.target.clone() });
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
                fs::rename(&self.target, &old).map_err(|e| WriteError::io(&self.target, "move old target aside", e))?;
                if let Err(e) = fs::rename(&self.temp, &self.target) {
                    let _ = fs::rename(&old, &self.target);
                    return Err(WriteError::io(&self.target, "rename temp directory onto target", e));
                }
                remove_any(&old);
            }
        } else {
            fs::rename(&self.temp, &self.target)
                .map_err(|e| WriteError::io(&self.target, "rename temp directory onto target", e))?;
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
        let ft = entry.file_type().map_err(|e| WriteError::io(&p, "stat", e))?;
        if ft.is_dir() {
            sync_tree(&p)?;
        } else if ft.is_file() {
            File::open(&p).and_then(|f| f.sync_all()).map_err(|e| WriteError::io(&p, "fsync", e))?;
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
