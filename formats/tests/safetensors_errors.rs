//! One test per defect the safetensors reader must refuse with a typed error.

use std::fs;
use std::path::{Path, PathBuf};

use llmtool_formats::safetensors::{SafetensorsError as E, SafetensorsSet, MAX_HEADER_BYTES};

/// A file from a header JSON text and a data buffer (header padded to 8 like writers do).
fn file_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut v = (h.len() as u64).to_le_bytes().to_vec();
    v.extend(h);
    v.extend_from_slice(data);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

/// Opens the bytes as a file; the error must name the file.
fn open_err(bytes: &[u8]) -> E {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "m.safetensors", bytes);
    let err = SafetensorsSet::open_file(&p).unwrap_err();
    assert!(err.to_string().contains("m.safetensors"), "error must name the file: {err}");
    // The upstream safetensors crate refuses it too (bar pickles, which it merely fails to
    // parse, and duplicate keys, which its map silently collapses).
    if !matches!(err, E::DuplicateKey { .. }) {
        let up = llmtool_formats::safetensors::upstream::SafeTensors::deserialize(bytes);
        assert!(up.is_err(), "upstream accepts a file we refuse ({err})");
    }
    // The in-memory entry point agrees.
    let err2 = SafetensorsSet::from_bytes(bytes.to_vec()).unwrap_err();
    assert_eq!(std::mem::discriminant(&err), std::mem::discriminant(&err2), "{err} vs {err2}");
    err
}

#[test]
fn valid_file_opens() {
    let b = file_bytes(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &[0; 8]);
    assert!(llmtool_formats::safetensors::upstream::SafeTensors::deserialize(&b).is_ok());
    let set = SafetensorsSet::from_bytes(b).unwrap();
    assert_eq!(set.tensors().len(), 1);
}

#[test]
fn file_shorter_than_length_prefix() {
    assert!(matches!(open_err(&[1, 2, 3]), E::TooSmall { len: 3, .. }));
    assert!(matches!(open_err(&[]), E::TooSmall { len: 0, .. }));
}

#[test]
fn header_length_past_end_of_file() {
    let mut b = 1000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}      ");
    assert!(matches!(open_err(&b), E::HeaderPastEnd { header_len: 1000, file_len: 16, .. }));
}

#[test]
fn header_length_over_cap() {
    let b = (MAX_HEADER_BYTES + 1).to_le_bytes().to_vec();
    assert!(matches!(open_err(&b), E::HeaderTooLarge { header_len, .. } if header_len == MAX_HEADER_BYTES + 1));
    let b = u64::MAX.to_le_bytes().to_vec();
    assert!(matches!(open_err(&b), E::HeaderTooLarge { .. }));
}

#[test]
fn header_not_json() {
    let e = open_err(&file_bytes(r#"{"a": {"dtype": "F32",,}"#, &[]));
    assert!(matches!(e, E::HeaderJson { line: 1, .. }), "{e}");
}

#[test]
fn header_not_utf8() {
    let mut b = 8u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{\"\xff\":1} ");
    b.truncate(16);
    assert!(matches!(open_err(&b), E::HeaderNotUtf8 { offset: 2, .. }));
}

#[test]
fn header_not_an_object() {
    assert!(matches!(open_err(&file_bytes("[1, 2]", &[])), E::HeaderNotObject { .. }));
}

#[test]
fn duplicate_tensor_key() {
    let h =
        r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
    assert!(matches!(open_err(&file_bytes(h, &[0; 2])), E::DuplicateKey { key, .. } if key == "a"));
}

#[test]
fn metadata_with_non_string_value() {
    let h = r#"{"__metadata__":{"format":1}}"#;
    assert!(matches!(open_err(&file_bytes(h, &[])), E::BadMetadata { .. }));
}

#[test]
fn tensor_entry_missing_fields() {
    let h = r#"{"a":{"dtype":"F32","shape":[2]}}"#;
    let e = open_err(&file_bytes(h, &[]));
    assert!(matches!(&e, E::BadTensorEntry { tensor, .. } if tensor == "a"), "{e}");
    let h = r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#;
    assert!(matches!(open_err(&file_bytes(h, &[0; 8])), E::BadTensorEntry { .. }));
}

#[test]
fn unknown_dtype() {
    let h = r#"{"a":{"dtype":"F12","shape":[2],"data_offsets":[0,3]}}"#;
    let e = open_err(&file_bytes(h, &[0; 3]));
    assert!(matches!(&e, E::UnknownDtype { tensor, dtype, .. } if tensor == "a" && dtype == "F12"), "{e}");
}

#[test]
fn begin_after_end() {
    let h = r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#;
    let e = open_err(&file_bytes(h, &[0; 4]));
    assert!(matches!(e, E::BeginAfterEnd { begin: 4, end: 0, .. }), "{e}");
}

#[test]
fn gap_between_tensors() {
    let h =
        r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}"#;
    let e = open_err(&file_bytes(h, &[0; 5]));
    assert!(matches!(&e, E::Gap { tensor, expected: 2, begin: 3, .. } if tensor == "b"), "{e}");
    // A gap before the first tensor.
    let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#;
    assert!(matches!(open_err(&file_bytes(h, &[0; 3])), E::Gap { expected: 0, begin: 1, .. }));
}

#[test]
fn overlapping_tensors() {
    let h =
        r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#;
    let e = open_err(&file_bytes(h, &[0; 4]));
    assert!(matches!(&e, E::Overlap { tensor, expected: 4, begin: 2, .. } if tensor == "b"), "{e}");
}

#[test]
fn trailing_bytes_after_last_tensor() {
    let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
    let e = open_err(&file_bytes(h, &[0; 5]));
    assert!(matches!(e, E::TrailingBytes { data_end: 2, buffer_len: 5, trailing: 3, .. }), "{e}");
}

#[test]
fn data_past_end_of_file() {
    let h = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let e = open_err(&file_bytes(h, &[0; 8]));
    assert!(matches!(e, E::DataPastEnd { data_end: 16, buffer_len: 8, .. }), "{e}");
}

#[test]
fn byte_size_not_shape_times_dtype() {
    let h = r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#;
    let e = open_err(&file_bytes(h, &[0; 20]));
    assert!(matches!(e, E::SizeMismatch { expected: 24, found: 20, .. }), "{e}");
}

#[test]
fn shape_product_overflow() {
    let h = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,0]}}"#;
    assert!(matches!(open_err(&file_bytes(h, &[])), E::ShapeOverflow { .. }));
    // Element count fits but the bit count does not.
    let h = r#"{"a":{"dtype":"F64","shape":[2305843009213693952,2],"data_offsets":[0,0]}}"#;
    assert!(matches!(open_err(&file_bytes(h, &[])), E::ShapeOverflow { .. }));
}

#[test]
fn pickle_checkpoints_refused_with_advice() {
    let d = tempfile::tempdir().unwrap();
    for name in ["pytorch_model.bin", "model.pt", "model.pth"] {
        let p = write(d.path(), name, b"anything");
        let e = SafetensorsSet::open_file(&p).unwrap_err();
        assert!(matches!(e, E::PickleCheckpoint { .. }), "{e}");
        assert!(e.to_string().contains("safe_serialization=True"), "{e}");
    }
    // Renamed pickle (torch.save zip) is recognised by content.
    let p = write(d.path(), "renamed.safetensors", b"PK\x03\x04\x00\x00\x00\x00\x00\x00rest");
    assert!(matches!(SafetensorsSet::open_file(&p).unwrap_err(), E::PickleCheckpoint { .. }));
}

// ----- sharded sets

const A: &str = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#;
const B: &str = r#"{"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}"#;

/// A two-shard set in a temp dir with the given index text.
fn set_with_index(index: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "s1.safetensors", &file_bytes(A, &[1, 2]));
    write(d.path(), "s2.safetensors", &file_bytes(B, &[3, 4, 5]));
    let p = write(d.path(), "model.safetensors.index.json", index.as_bytes());
    (d, p)
}

#[test]
fn valid_index_opens() {
    let (_d, p) =
        set_with_index(r#"{"metadata":{"total_size":5},"weight_map":{"b":"s2.safetensors","a":"s1.safetensors"}}"#);
    let set = SafetensorsSet::open_index(&p).unwrap();
    let names: Vec<&str> = set.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "shards in file-name order");
    assert_eq!(set.tensor_data("b").unwrap(), &[3, 4, 5]);
    assert_eq!(set.index_metadata().unwrap()["total_size"], 5);
}

#[test]
fn index_invalid_json() {
    let (_d, p) = set_with_index("{\"weight_map\": {\n \"a\": }");
    let e = SafetensorsSet::open_index(&p).unwrap_err();
    assert!(matches!(e, E::IndexJson { line: 2, .. }), "{e}");
}

#[test]
fn index_without_weight_map() {
    let (_d, p) = set_with_index(r#"{"metadata":{}}"#);
    assert!(matches!(SafetensorsSet::open_index(&p).unwrap_err(), E::IndexFormat { .. }));
}

#[test]
fn index_names_missing_shard() {
    let (_d, p) = set_with_index(r#"{"weight_map":{"a":"s1.safetensors","b":"s3.safetensors"}}"#);
    let e = SafetensorsSet::open_index(&p).unwrap_err();
    assert!(matches!(&e, E::MissingShard { shard, .. } if shard.ends_with("s3.safetensors")), "{e}");
}

#[test]
fn index_shard_path_with_dotdot_or_absolute() {
    for bad in ["../s1.safetensors", "/etc/passwd", "sub/s1.safetensors", "./s1.safetensors", ""] {
        let (_d, p) = set_with_index(&format!(r#"{{"weight_map":{{"a":"{bad}","b":"s2.safetensors"}}}}"#));
        let e = SafetensorsSet::open_index(&p).unwrap_err();
        assert!(matches!(&e, E::UnsafeShardPath { shard, .. } if shard == bad), "{bad}: {e}");
    }
}

#[test]
fn tensor_in_two_shards() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "s1.safetensors", &file_bytes(A, &[1, 2]));
    write(d.path(), "s2.safetensors", &file_bytes(A, &[1, 2]));
    let p = write(
        d.path(),
        "model.safetensors.index.json",
        br#"{"weight_map":{"a":"s1.safetensors","x":"s2.safetensors"}}"#,
    );
    let e = SafetensorsSet::open_index(&p).unwrap_err();
    assert!(matches!(&e, E::TensorInTwoShards { tensor, .. } if tensor == "a"), "{e}");
    // Listed twice in the index itself.
    let (_d, p) = set_with_index(r#"{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","a":"s2.safetensors"}}"#);
    let e = SafetensorsSet::open_index(&p).unwrap_err();
    assert!(matches!(&e, E::TensorInTwoShards { tensor, .. } if tensor == "a"), "{e}");
}

/// Decision: the index must describe the shards exactly, both ways.
#[test]
fn tensor_in_shard_but_not_in_index() {
    let d = tempfile::tempdir().unwrap();
    let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"extra":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}"#;
    write(d.path(), "s1.safetensors", &file_bytes(h, &[1, 2, 3]));
    write(d.path(), "s2.safetensors", &file_bytes(B, &[3, 4, 5]));
    let p = write(
        d.path(),
        "model.safetensors.index.json",
        br#"{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}"#,
    );
    let e = SafetensorsSet::open_index(&p).unwrap_err();
    assert!(matches!(&e, E::TensorNotInIndex { tensor, .. } if tensor == "extra"), "{e}");
}

#[test]
fn tensor_in_index_but_not_in_its_shard() {
    let (_d, p) = set_with_index(r#"{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"}}"#);
    let e = SafetensorsSet::open_index(&p).unwrap_err();
    assert!(matches!(&e, E::TensorMissingFromShard { tensor, .. } if tensor == "c"), "{e}");
    // Listed under the wrong shard.
    let (_d, p) = set_with_index(r#"{"weight_map":{"a":"s2.safetensors","b":"s2.safetensors"}}"#);
    let e = SafetensorsSet::open_index(&p).unwrap_err();
    assert!(matches!(&e, E::TensorMissingFromShard { tensor, .. } if tensor == "a"), "{e}");
}

#[test]
fn bad_shard_inside_a_set_names_the_shard() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "s1.safetensors", &file_bytes(A, &[1, 2, 9]));
    let p = write(d.path(), "model.safetensors.index.json", br#"{"weight_map":{"a":"s1.safetensors"}}"#);
    let e = SafetensorsSet::open_index(&p).unwrap_err();
    assert!(matches!(e, E::TrailingBytes { .. }), "{e}");
    assert!(e.to_string().contains("s1.safetensors"), "{e}");
}
