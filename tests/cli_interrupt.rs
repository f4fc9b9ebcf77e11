//! An interrupted conversion never leaves a partial output at the target (Ctrl-C removes the
//! temp output too; SIGKILL may leave only a hidden temp beside it).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn interrupted(signal: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf32");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtool"))
        .args(["convert", "--quiet", "--outtype", "f32", model.to_str().unwrap(), out.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Long enough to be writing shards (540 MB of f32), far shorter than the whole job.
    std::thread::sleep(Duration::from_millis(120));
    let killed = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "the conversion finished before it could be interrupted");
    (dir, out)
}

#[test]
fn ctrl_c_leaves_no_target_and_no_temp() {
    let (dir, out) = interrupted("-INT");
    assert!(!out.exists(), "partial output left at the target");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "temp output left behind: {left:?}");
}

#[test]
fn sigkill_leaves_no_target() {
    let (_dir, out) = interrupted("-KILL");
    assert!(!out.exists(), "partial output left at the target");
}
