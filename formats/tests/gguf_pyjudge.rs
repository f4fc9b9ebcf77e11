//! gguf-py (llama.cpp's Python package) as an independent judge, both directions:
//! - our writer -> gguf-py `GGUFReader` (tests/judges/gguf_read.py) -> field-by-field equal;
//! - gguf-py `GGUFWriter` (tests/judges/gguf_write.py) -> our reader agrees with gguf-py's
//!   reader on that file, and our writer reproduces it byte for byte;
//! - the real model: our metadata and tensor infos equal gguf-py's.
//!
//! Needs `python3` with the `gguf` package; fails (does not skip) when it is missing.

mod gguf_util;

use std::borrow::Cow;
use std::path::Path;
use std::process::Command;

use llmtool_formats::gguf::{write_gguf, GgufFile, GgufHeader};
use llmtool_formats::{GgmlType, MetaArray, MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

fn judge(script: &str, args: &[&str]) -> Vec<u8> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/judges").join(script);
    let out = Command::new("python3").arg(&script).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run python3 (needed as the gguf-py judge; install python3 and `pip install gguf`): {e}")
    });
    assert!(
        out.status.success(),
        "{} failed (is the `gguf` Python package installed? `pip install gguf`):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn py_dump(path: &Path, with_data: bool) -> Value {
    let p = path.to_str().unwrap();
    let args: &[&str] = if with_data { &[p] } else { &[p, "--no-data"] };
    serde_json::from_slice(&judge("gguf_read.py", args)).expect("judge JSON")
}

fn array_json(a: &MetaArray) -> Value {
    let items: Vec<Value> = match a {
        MetaArray::U8(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::I8(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::U16(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::I16(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::U32(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::I32(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::F32(v) => v.iter().map(|x| json!({ "f32_bits": x.to_bits() })).collect(),
        MetaArray::Bool(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::String(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::Array(v) => v.iter().map(array_json).collect(),
        MetaArray::U64(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::I64(v) => v.iter().map(|x| json!(x)).collect(),
        MetaArray::F64(v) => v.iter().map(|x| json!({ "f64_bits": x.to_bits() })).collect(),
    };
    json!({ "elem_type": a.element_type().id(), "items": items })
}

fn value_json(v: &MetaValue) -> Value {
    match v {
        MetaValue::U8(x) => json!(x),
        MetaValue::I8(x) => json!(x),
        MetaValue::U16(x) => json!(x),
        MetaValue::I16(x) => json!(x),
        MetaValue::U32(x) => json!(x),
        MetaValue::I32(x) => json!(x),
        MetaValue::F32(x) => json!({ "f32_bits": x.to_bits() }),
        MetaValue::Bool(x) => json!(x),
        MetaValue::String(x) => json!(x),
        MetaValue::Array(a) => array_json(a),
        MetaValue::U64(x) => json!(x),
        MetaValue::I64(x) => json!(x),
        MetaValue::F64(x) => json!({ "f64_bits": x.to_bits() }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares our view of a file with gguf-py's, field by field, with messages naming it.
fn assert_same(ours: &GgufFile, py: &Value, with_data: bool) {
    assert_eq!(py["version"], json!(ours.version), "version");
    assert_eq!(py["alignment"], json!(ours.alignment), "alignment");
    assert_eq!(py["data_offset"], json!(ours.data_start), "data offset");
    let kv = py["kv"].as_array().unwrap();
    assert_eq!(kv.len(), ours.metadata.len(), "key count");
    for (entry, (key, value)) in kv.iter().zip(ours.metadata.iter()) {
        assert_eq!(entry["key"], json!(key), "key order");
        assert_eq!(entry["type"], json!(value.value_type().id()), "type of {key}");
        assert_eq!(entry["value"], value_json(value), "value of {key}");
    }
    let tensors = py["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), ours.tensors.len(), "tensor count");
    for (i, (pt, t)) in tensors.iter().zip(&ours.tensors).enumerate() {
        assert_eq!(pt["name"], json!(t.name));
        assert_eq!(pt["type"], json!(t.ty.id()), "type of {}", t.name);
        assert_eq!(pt["ne"], json!(t.ne), "ne of {}", t.name);
        assert_eq!(pt["offset"], json!(ours.data_start + ours.offsets[i]), "offset of {}", t.name);
        assert_eq!(pt["n_bytes"], json!(t.n_bytes().unwrap()), "size of {}", t.name);
        if with_data {
            assert_eq!(pt["hex"], json!(hex(ours.tensor_data(&t.name).unwrap())), "data of {}", t.name);
        }
    }
}

#[test]
fn our_writer_read_by_gguf_py() {
    let mut m = Metadata::new();
    m.insert("general.architecture", MetaValue::String("llama".into()));
    m.insert("t.u8", MetaValue::U8(255));
    m.insert("t.i8", MetaValue::I8(-7));
    m.insert("t.u16", MetaValue::U16(65535));
    m.insert("t.i16", MetaValue::I16(-300));
    m.insert("t.u32", MetaValue::U32(u32::MAX));
    m.insert("t.i32", MetaValue::I32(i32::MIN));
    m.insert("t.f32", MetaValue::F32(f32::from_bits(0x7fc0_0123)));
    m.insert("t.bool", MetaValue::Bool(true));
    m.insert("t.string", MetaValue::String("héllo ✓ 🦀 中文".into()));
    m.insert("t.u64", MetaValue::U64(u64::MAX));
    m.insert("t.i64", MetaValue::I64(i64::MIN));
    m.insert("t.f64", MetaValue::F64(f64::MIN_POSITIVE));
    m.insert("a.empty", MetaValue::Array(MetaArray::U32(vec![])));
    m.insert("a.bool", MetaValue::Array(MetaArray::Bool(vec![false, true])));
    m.insert("a.str", MetaValue::Array(MetaArray::String(vec!["".into(), "ß".into()])));
    m.insert("a.f64", MetaValue::Array(MetaArray::F64(vec![1.0, -2.5])));
    m.insert(
        "a.nested",
        MetaValue::Array(MetaArray::Array(vec![
            MetaArray::I16(vec![1, -1]),
            MetaArray::Array(vec![MetaArray::String(vec!["deep".into()]), MetaArray::U8(vec![])]),
        ])),
    );
    let tensors = vec![
        TensorInfo::new("f32", GgmlType::F32, vec![3, 5]),
        TensorInfo::new("f16", GgmlType::F16, vec![7]),
        TensorInfo::new("bf16", GgmlType::BF16, vec![4, 2]),
        TensorInfo::new("q8_0", GgmlType::Q8_0, vec![64, 3]),
        TensorInfo::new("q4_k", GgmlType::Q4_K, vec![256, 2]),
    ];
    let header = GgufHeader::new(m, tensors).unwrap();
    let data: Vec<Vec<u8>> = header
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (0..t.n_bytes().unwrap()).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8)).collect())
        .collect();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let mut file = std::fs::File::create(tmp.path()).unwrap();
    write_gguf(&mut file, &header, |i, _| Ok(Cow::Borrowed(data[i].as_slice())), |_| {}).unwrap();
    drop(file);

    let ours = GgufFile::open(tmp.path()).unwrap();
    assert_same(&ours, &py_dump(tmp.path(), true), true);
}

#[test]
fn gguf_py_writer_read_by_us_and_rewritten_identically() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    judge("gguf_write.py", &[tmp.path().to_str().unwrap()]);
    let ours = GgufFile::open(tmp.path()).unwrap();
    assert_same(&ours, &py_dump(tmp.path(), true), true);
    assert!(matches!(ours.metadata.get("a.nested"), Some(MetaValue::Array(MetaArray::Array(v))) if v.len() == 2));

    let mut out = Vec::new();
    write_gguf(&mut out, &ours.header(), |i, _| Ok(Cow::Borrowed(ours.tensor_data_at(i))), |_| {}).unwrap();
    let original = std::fs::read(tmp.path()).unwrap();
    assert_eq!(out.len(), original.len());
    assert!(out == original, "our rewrite of a gguf-py file differs");
}

#[test]
fn real_model_matches_gguf_py() {
    let path = gguf_util::real_model();
    let ours = GgufFile::open(&path).unwrap();
    assert_same(&ours, &py_dump(&path, false), false);
}
