//! Cross-check with an independent Rust reader, the `gguf-rs` crate (0.1.8), on the real
//! model: key count and keys, tensor names, shapes, types, offsets, sizes, data offset.
//!
//! gguf-rs lives in its own workspace (tests/judges/gguf_rs_judge) because it enables
//! serde_json's `arbitrary_precision`, which would otherwise leak into our test builds.
//! This test builds it with the same cargo (crates.io must be reachable the first time).
//!
//! Findings that made us keep our own parser (gguf-rs 0.1.8 source + probes):
//! - metadata goes into a `BTreeMap<String, serde_json::Value>`: file order is lost (keys
//!   come back sorted), value types are lost (u8..i64 all become JSON numbers, f32 widened),
//!   an empty array loses its element type: not lossless, cannot write back byte-identical;
//! - nested arrays (which gguf-py writes) are rejected;
//! - strings are decoded with `from_utf8_lossy` (invalid UTF-8 silently replaced), any
//!   non-zero bool byte is `true`, duplicate keys silently overwrite;
//! - tensor sizes use a block size guessed from the type id range (ids >= 10 are taken as
//!   256-element blocks), so I8/I16/I32/I64/F64/BF16/IQ4_NL/MXFP4 sizes are wrong; id 40
//!   (NVFP4 in current ggml) maps to its `Count` sentinel and hits `unreachable!` (panic);
//! - offsets are not validated at all (no alignment, overlap or bounds check), the string
//!   buffer is allocated from the length field (up to 1 GiB) before reading, v1 is accepted.
//!   It handles v2 and v3 and big-endian files.

mod gguf_util;

use std::path::{Path, PathBuf};
use std::process::Command;

use llmtool_formats::gguf::GgufFile;
use serde_json::{json, Value};

fn judge_binary() -> PathBuf {
    let root = gguf_util::workspace_root();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/judges/gguf_rs_judge/Cargo.toml");
    let target = root.join("target/gguf-rs-judge");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo to build the gguf-rs judge");
    assert!(out.status.success(), "building the gguf-rs judge failed:\n{}", String::from_utf8_lossy(&out.stderr));
    target.join("release/gguf-rs-judge")
}

fn gguf_rs_dump(path: &Path) -> Value {
    let out = Command::new(judge_binary()).arg(path).output().expect("run gguf-rs judge");
    assert!(out.status.success(), "gguf-rs judge failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(line.trim()).expect("judge JSON")
}

#[test]
fn real_model_matches_gguf_rs() {
    let path = gguf_util::real_model();
    let ours = GgufFile::open(&path).unwrap();
    let v = gguf_rs_dump(&path);
    let theirs = v.get("ok").unwrap_or_else(|| panic!("gguf-rs could not read the model: {v}"));

    assert_eq!(theirs["version"], json!(format!("v{}", ours.version)));
    assert_eq!(theirs["num_kv"], json!(ours.metadata.len()));
    let mut our_keys: Vec<&str> = ours.metadata.keys().collect();
    our_keys.sort_unstable(); // gguf-rs keeps keys in a BTreeMap
    assert_eq!(theirs["keys"], json!(our_keys));
    assert_eq!(theirs["alignment"], json!(ours.alignment));
    assert_eq!(theirs["data_offset"], json!(ours.data_start));

    let tensors = theirs["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), ours.tensors.len());
    for (i, (t, o)) in tensors.iter().zip(&ours.tensors).enumerate() {
        assert_eq!(t["name"], json!(o.name));
        assert_eq!(t["kind"], json!(o.ty.id()), "type of {}", o.name);
        assert_eq!(t["shape"], json!(o.ne), "shape of {}", o.name);
        assert_eq!(t["offset"], json!(ours.offsets[i]), "offset of {}", o.name);
        // The model holds F32, Q4_1 and Q8_0, whose sizes gguf-rs computes right.
        assert_eq!(t["size"], json!(o.n_bytes().unwrap()), "size of {}", o.name);
    }
}
