//! Output ≠ input, however the paths are spelled.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::WriteError;

/// `path` made absolute with symlinks and `..` resolved as far as the path exists; the
/// non-existing tail is appended with `.`/`..` resolved lexically.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let abs = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
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
            return Err(WriteError::OutputIsInput { output: output.into(), input: input.into() });
        }
        if out.starts_with(&inp) {
            return Err(WriteError::OutputInsideInput { output: output.into(), input: input.into() });
        }
        if inp.starts_with(&out) {
            return Err(WriteError::OutputContainsInput { output: output.into(), input: input.into() });
        }
    }
    Ok(())
}
