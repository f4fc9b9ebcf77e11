//! `cleanup_temp_outputs` (the Ctrl-C path), alone in its own test binary because it
//! removes every live temp of the process.

use std::fs;
use std::io::Write;

use llmtool_formats::atomic::{cleanup_temp_outputs, live_temp_outputs, AtomicDir, AtomicFile};

fn entries(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn cleanup_temp_outputs_removes_live_temps() {
    let d = tempfile::tempdir().unwrap();
    let mut f = AtomicFile::create(&d.path().join("a.gguf"), false).unwrap();
    f.write_all(b"partial").unwrap();
    f.flush().unwrap();
    let dir = AtomicDir::create(&d.path().join("outdir"), false).unwrap();
    fs::write(dir.path().join("model.safetensors"), b"partial").unwrap();
    assert_eq!(entries(d.path()).len(), 2);
    assert_eq!(live_temp_outputs().len(), 2);
    cleanup_temp_outputs();
    assert!(entries(d.path()).is_empty(), "{:?}", entries(d.path()));
    // What was interrupted cannot be committed afterwards.
    assert!(f.commit().is_err());
    assert!(dir.commit().is_err());
    assert!(entries(d.path()).is_empty());
}
