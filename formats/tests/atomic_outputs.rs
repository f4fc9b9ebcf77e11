//! Crash-safe outputs: refusal of existing outputs and of outputs that are inputs, temp
//! cleanup on failure / drop / Ctrl-C, and a writer killed mid-write.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use llmtool_formats::atomic::{check_output_not_input, live_temp_outputs, AtomicDir, AtomicFile, WriteError};

/// Names in `dir` other than `keep`.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn commit_writes_target_and_leaves_no_temp() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out.bin");
    let mut f = AtomicFile::create(&target, false).unwrap();
    let temp = f.temp_path().to_path_buf();
    assert!(temp.file_name().unwrap().to_string_lossy().starts_with(".out.bin.tmp-"));
    assert_eq!(temp.parent(), Some(d.path()));
    f.write_all(b"hello").unwrap();
    assert!(!target.exists(), "target must not appear before commit");
    f.commit().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"hello");
    assert_eq!(entries(d.path()), vec!["out.bin"]);
    assert!(!live_temp_outputs().contains(&temp));
}

#[test]
fn existing_output_refused_without_force() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out.bin");
    fs::write(&target, b"old").unwrap();
    let err = AtomicFile::create(&target, false).unwrap_err();
    assert!(matches!(&err, WriteError::Exists { path } if path == &target), "{err}");
    assert!(err.to_string().contains("out.bin"));
    // With force it is replaced.
    let mut f = AtomicFile::create(&target, true).unwrap();
    f.write_all(b"new").unwrap();
    f.commit().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"new");
    assert_eq!(entries(d.path()), vec!["out.bin"]);
}

#[test]
fn output_appearing_before_commit_is_not_replaced_without_force() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out.bin");
    let mut f = AtomicFile::create(&target, false).unwrap();
    f.write_all(b"mine").unwrap();
    fs::write(&target, b"someone else's").unwrap();
    let err = f.commit().unwrap_err();
    assert!(matches!(err, WriteError::Exists { .. }), "{err}");
    assert_eq!(fs::read(&target).unwrap(), b"someone else's");
    assert_eq!(entries(d.path()), vec!["out.bin"], "temp removed");
}

#[test]
fn drop_without_commit_removes_temp() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out.bin");
    fs::write(&target, b"old").unwrap();
    {
        let mut f = AtomicFile::create(&target, true).unwrap();
        f.write_all(&vec![7u8; 3 << 20]).unwrap();
        assert_eq!(entries(d.path()).len(), 2);
    }
    assert_eq!(entries(d.path()), vec!["out.bin"]);
    assert_eq!(fs::read(&target).unwrap(), b"old");
}

#[test]
fn output_same_path_as_input_refused() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("model.gguf");
    fs::write(&input, b"x").unwrap();
    let err = check_output_not_input(&input, &[&input]).unwrap_err();
    assert!(matches!(err, WriteError::OutputIsInput { .. }), "{err}");
    let other = d.path().join("other.gguf");
    check_output_not_input(&other, &[&input]).unwrap();
}

#[test]
fn output_via_symlink_refused() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("model.gguf");
    fs::write(&input, b"x").unwrap();
    let link = d.path().join("link.gguf");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let err = check_output_not_input(&link, &[&input]).unwrap_err();
    assert!(matches!(err, WriteError::OutputIsInput { .. }), "{err}");
    // A symlinked directory on the way, too.
    let dlink = d.path().join("dlink");
    std::os::unix::fs::symlink(d.path(), &dlink).unwrap();
    let err = check_output_not_input(&dlink.join("model.gguf"), &[&input]).unwrap_err();
    assert!(matches!(err, WriteError::OutputIsInput { .. }), "{err}");
}

#[test]
fn output_via_dotdot_refused() {
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let input = d.path().join("model.gguf");
    fs::write(&input, b"x").unwrap();
    let out = sub.join("..").join("model.gguf");
    let err = check_output_not_input(&out, &[&input]).unwrap_err();
    assert!(matches!(err, WriteError::OutputIsInput { .. }), "{err}");
    // `..` after a component that does not exist yet is resolved lexically.
    let out = d.path().join("new").join("..").join("model.gguf");
    let err = check_output_not_input(&out, &[&input]).unwrap_err();
    assert!(matches!(err, WriteError::OutputIsInput { .. }), "{err}");
}

#[test]
fn output_hard_link_to_input_refused() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("model.gguf");
    fs::write(&input, b"x").unwrap();
    let hard = d.path().join("hard.gguf");
    fs::hard_link(&input, &hard).unwrap();
    let err = check_output_not_input(&hard, &[&input]).unwrap_err();
    assert!(matches!(err, WriteError::OutputIsInput { .. }), "{err}");
}

#[test]
fn output_dir_containing_input_refused() {
    let d = tempfile::tempdir().unwrap();
    let model_dir = d.path().join("model");
    fs::create_dir(&model_dir).unwrap();
    let input = model_dir.join("model.safetensors");
    fs::write(&input, b"x").unwrap();
    let err = check_output_not_input(&model_dir, &[&input]).unwrap_err();
    assert!(matches!(err, WriteError::OutputContainsInput { .. }), "{err}");
    // Output inside an input directory.
    let err = check_output_not_input(&model_dir.join("out.gguf"), &[&model_dir]).unwrap_err();
    assert!(matches!(err, WriteError::OutputInsideInput { .. }), "{err}");
    // But beside the input files it is fine when only the files are inputs.
    check_output_not_input(&model_dir.join("out.gguf"), &[&input]).unwrap();
}

#[test]
fn unwritable_location_gives_error_naming_path() {
    // Tests run as root, for whom permission bits do not stop writes: use a parent that is a
    // regular file, and a directory of procfs, where nobody can create files.
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("plain");
    fs::write(&file, b"x").unwrap();
    let target = file.join("out.gguf");
    let err = AtomicFile::create(&target, false).unwrap_err();
    assert!(matches!(err, WriteError::NoParent { .. }), "{err}");
    assert!(err.to_string().contains("plain/out.gguf"), "{err}");
    let err = AtomicDir::create(&target, false).unwrap_err();
    assert!(matches!(err, WriteError::NoParent { .. }), "{err}");

    let target = Path::new("/proc/self/llmtool-test-out.gguf");
    let err = AtomicFile::create(target, false).unwrap_err();
    assert!(matches!(err, WriteError::CreateTemp { .. }), "{err}");
    assert!(err.to_string().contains("/proc/self/llmtool-test-out.gguf"), "{err}");
    assert!(!target.exists());
    let err = AtomicDir::create(Path::new("/proc/self/llmtool-test-dir"), false).unwrap_err();
    assert!(matches!(err, WriteError::CreateTemp { .. }), "{err}");
}

#[test]
fn disk_full_on_dev_full_is_an_error() {
    // /dev/full answers every write with ENOSPC.
    let mut f = fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let err = f.write_all(&[0u8; 4096]).and_then(|_| f.flush()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC expected, got {err}");
    // And a safetensors stream written there reports it.
    let t = vec![llmtool_formats::safetensors::StTensor::new("w", llmtool_formats::safetensors::Dtype::F32, vec![4])];
    let err = llmtool_formats::safetensors::write_safetensors(
        &mut f,
        &t,
        None,
        |_, _| Ok(std::borrow::Cow::Owned(vec![0u8; 16])),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
}

/// Re-runs this test binary on one test with an env var set (the child-side helpers below
/// do nothing in a normal run).
fn child(test: &str, env: (&str, &Path), shell_prefix: Option<&str>) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match shell_prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("{prefix}; exec \"$0\" \"$@\"")).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"]).env(env.0, env.1);
    cmd
}

#[test]
fn child_slow_writer_helper() {
    let Some(target) = std::env::var_os("LLMTOOL_TEST_SLOW_WRITER") else {
        return;
    };
    let mut f = AtomicFile::create(Path::new(&target), true).unwrap();
    f.write_all(&vec![1u8; 1 << 20]).unwrap();
    f.flush().unwrap();
    println!("READY");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
    f.commit().unwrap();
}

#[test]
fn writer_killed_mid_write_leaves_no_target() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out.gguf");
    let mut c = child("child_slow_writer_helper", ("LLMTOOL_TEST_SLOW_WRITER", &target), None)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.map(|l| l.contains("READY")).unwrap_or(false));
    assert!(ready, "child never got to write");
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    assert!(!target.exists(), "a killed writer must not leave the target");
    let left = entries(d.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(".out.gguf.tmp-"), "only a hidden temp may remain: {left:?}");
}

#[test]
fn child_fsize_writer_helper() {
    let Some(target) = std::env::var_os("LLMTOOL_TEST_FSIZE_WRITER") else {
        return;
    };
    let target = PathBuf::from(target);
    let mut f = AtomicFile::create(&target, true).unwrap();
    let temp = f.temp_path().to_path_buf();
    let res = f.write_all(&vec![1u8; 4 << 20]).and_then(|_| f.flush());
    let err = match res {
        Err(e) => {
            drop(f);
            e.to_string()
        }
        Ok(()) => f.commit().unwrap_err().to_string(),
    };
    assert!(err.contains(&*target.to_string_lossy()), "error must name the target: {err}");
    assert!(!temp.exists(), "temp removed on drop after a failed write");
    println!("WRITE-ERROR: {err}");
}

#[test]
fn write_failure_keeps_target_and_removes_temp() {
    // A real filesystem write failure for root: RLIMIT_FSIZE (EFBIG past 8 KiB; SIGXFSZ
    // ignored so the write returns an error instead of killing the process).
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out.gguf");
    fs::write(&target, b"old contents").unwrap();
    let out =
        child("child_fsize_writer_helper", ("LLMTOOL_TEST_FSIZE_WRITER", &target), Some("trap '' XFSZ; ulimit -f 16"))
            .output()
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("WRITE-ERROR"), "{stdout}");
    assert_eq!(fs::read(&target).unwrap(), b"old contents", "target untouched");
    assert_eq!(entries(d.path()), vec!["out.gguf"], "temp removed");
}

#[test]
fn atomic_dir_commit_and_force_replace() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out");
    let dir = AtomicDir::create(&target, false).unwrap();
    fs::write(dir.path().join("a.txt"), b"1").unwrap();
    assert!(!target.exists());
    dir.commit().unwrap();
    assert_eq!(fs::read(target.join("a.txt")).unwrap(), b"1");

    let err = AtomicDir::create(&target, false).unwrap_err();
    assert!(matches!(err, WriteError::Exists { .. }), "{err}");

    let dir = AtomicDir::create(&target, true).unwrap();
    fs::write(dir.path().join("b.txt"), b"2").unwrap();
    dir.commit().unwrap();
    assert_eq!(entries(&target), vec!["b.txt"], "old contents replaced");
    assert_eq!(entries(d.path()), vec!["out"], "no temp or old dir left");

    // Dropped without commit: temp removed, target untouched.
    {
        let dir = AtomicDir::create(&target, true).unwrap();
        fs::write(dir.path().join("c.txt"), b"3").unwrap();
    }
    assert_eq!(entries(d.path()), vec!["out"]);
    assert_eq!(entries(&target), vec!["b.txt"]);
}
