//! Paths as users write them in recipes and configs.

use std::path::{Path, PathBuf};

/// `p` with `.` components dropped and each `..` cancelling the directory before it, like
/// Python's `os.path.normpath` — `examples/build/../../.cache/x` → `.cache/x` — except that a
/// `..` after a symbolic link is kept (the OS resolves it from the link's target, so dropping
/// both would name another place). Leading `..` of a relative path stay; `..` at the root
/// goes. The result names the same file as `p` (relative paths: from the current directory).
pub fn clean_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) if !is_symlink(&out.iter().collect::<PathBuf>()) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

#[cfg(test)]
mod tests {
    use super::clean_path;
    use std::path::Path;

    #[test]
    fn clean_path_resolves_dot_and_dotdot_lexically() {
        for (raw, want) in [
            ("examples/build/../../.cache/x.gguf", ".cache/x.gguf"),
            ("./a/./b", "a/b"),
            ("a/../..", ".."),
            ("../../x", "../../x"),
            ("/../a/../b", "/b"),
            ("a/..", "."),
            ("/", "/"),
        ] {
            assert_eq!(clean_path(Path::new(raw)), Path::new(want), "{raw}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn clean_path_keeps_dotdot_after_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let (d, target) = (tmp.path(), tmp.path().join("deep/target"));
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(tmp.path().join("deep/file"), b"x").unwrap();
        std::os::unix::fs::symlink(&target, d.join("link")).unwrap();
        // link/.. is deep/, where `file` lives; a lexical normpath would say d/file.
        let raw = d.join("link/../file");
        let clean = clean_path(&raw);
        assert_eq!(clean, raw);
        assert_eq!(std::fs::read(&clean).unwrap(), b"x");
        assert_eq!(clean_path(&d.join("deep/./target/../file")), d.join("deep/file"));
    }
}
