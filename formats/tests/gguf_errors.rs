//! One test per GGUF reader error: each builds a malformed file in memory, asserts the
//! specific error variant and that the message names the offset / key / tensor.

mod gguf_util;

use gguf_util::{valid_two_tensors, B};
use llmtool_formats::gguf::{GgufError, GgufFile, TensorProblem};

fn open_err(bytes: Vec<u8>) -> (GgufError, String) {
    let e = GgufFile::from_vec(bytes, "bad.gguf").expect_err("malformed file must be rejected");
    let msg = e.to_string();
    assert!(msg.starts_with("bad.gguf:"), "message must name the file: {msg}");
    (e, msg)
}

/// 24-byte header + one kv whose value is given raw (`ty` then `value` bytes).
fn with_kv(key: &[u8], ty: u32, value: &[u8]) -> Vec<u8> {
    let mut b = B::header(3, 0, 1);
    b.str(key).u32(ty).bytes(value);
    b.finish()
}

/// One tensor info with the given fields, padded, followed by `data_len` data bytes.
fn with_tensor(name: &str, ne: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let mut b = B::header(3, 1, 0);
    b.tensor(name, ne, ty, offset).pad(32).zeros(data_len);
    b.finish()
}

#[test]
fn valid_fixture_opens() {
    let f = GgufFile::from_vec(valid_two_tensors(), "ok.gguf").unwrap();
    assert_eq!(f.tensor_data("a").unwrap(), &[1u8; 16]);
    assert_eq!(f.tensor_data("b").unwrap(), &[2u8; 12]);
}

#[test]
fn empty_file_on_disk() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let e = GgufFile::open(tmp.path()).unwrap_err();
    assert!(matches!(e, GgufError::TooShort { size: 0, needed: 24, .. }), "{e:?}");
    assert!(e.to_string().contains(&tmp.path().display().to_string()));
}

#[test]
fn missing_file_is_io_error() {
    let e = GgufFile::open("/nonexistent/x.gguf").unwrap_err();
    assert!(matches!(e, GgufError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/x.gguf"));
}

#[test]
fn short_file() {
    let (e, msg) = open_err(b"GGUF\x03\x00".to_vec());
    assert!(matches!(e, GgufError::TooShort { size: 6, needed: 24, .. }), "{e:?}");
    assert!(msg.contains("6 bytes"), "{msg}");
}

#[test]
fn bad_magic() {
    let mut bytes = valid_two_tensors();
    bytes[..4].copy_from_slice(b"GGML");
    let (e, msg) = open_err(bytes);
    assert!(matches!(e, GgufError::BadMagic { found, .. } if &found == b"GGML"), "{e:?}");
    assert!(msg.contains("offset 0") && msg.contains("47 47 55 46"), "{msg}");
}

#[test]
fn big_endian_file() {
    let mut bytes = valid_two_tensors();
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    let (e, msg) = open_err(bytes);
    assert!(matches!(e, GgufError::BigEndian { swapped: 3, .. }), "{e:?}");
    assert!(msg.contains("offset 4") && msg.contains("big-endian"), "{msg}");
}

#[test]
fn version_1_rejected() {
    let (e, msg) = open_err(B::header(1, 0, 0).finish());
    assert!(matches!(e, GgufError::UnsupportedVersion { found: 1, .. }), "{e:?}");
    assert!(msg.contains("offset 4") && msg.contains("version 1"), "{msg}");
}

#[test]
fn version_4_rejected() {
    let (e, msg) = open_err(B::header(4, 0, 0).finish());
    assert!(matches!(e, GgufError::UnsupportedVersion { found: 4, .. }), "{e:?}");
    assert!(msg.contains("expected 2 or 3"), "{msg}");
}

#[test]
fn version_2_accepted() {
    let mut bytes = valid_two_tensors();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(GgufFile::from_vec(bytes, "v2.gguf").unwrap().version, 2);
}

#[test]
fn huge_tensor_count() {
    let (e, msg) = open_err(B::header(3, u64::MAX / 2, 0).finish());
    assert!(matches!(e, GgufError::CountTooLarge { what: "tensor", offset: 8, .. }), "{e:?}");
    assert!(msg.contains("offset 8"), "{msg}");
}

#[test]
fn huge_kv_count() {
    let (e, msg) = open_err(B::header(3, 0, 1 << 40).finish());
    assert!(
        matches!(e, GgufError::CountTooLarge { what: "key-value", offset: 16, found, .. } if found == 1 << 40),
        "{e:?}"
    );
    assert!(msg.contains("offset 16"), "{msg}");
}

#[test]
fn huge_array_count() {
    // key "k": array (9) of u32 (4) with count 2^40 and no elements.
    let mut value = 4u32.to_le_bytes().to_vec();
    value.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let (e, msg) = open_err(with_kv(b"k", 9, &value));
    // 24 header + 8 + 1 key + 4 type + 4 elem type = 41: the count's offset.
    assert!(matches!(e, GgufError::CountTooLarge { what: "array element", offset: 41, .. }), "{e:?}");
    assert!(msg.contains("offset 41"), "{msg}");
}

#[test]
fn string_length_above_cap() {
    let mut b = B::header(3, 0, 1);
    b.u64(u64::MAX).zeros(8);
    let (e, msg) = open_err(b.finish());
    assert!(matches!(e, GgufError::StringTooLong { offset: 24, len: u64::MAX, .. }), "{e:?}");
    assert!(msg.contains("offset 24") && msg.contains("key #0"), "{msg}");
}

#[test]
fn string_length_past_eof() {
    let mut b = B::header(3, 0, 1);
    b.u64(100).bytes(b"short..");
    let (e, msg) = open_err(b.finish());
    assert!(matches!(e, GgufError::UnexpectedEof { offset: 32, needed: 100, remaining: 7, .. }), "{e:?}");
    assert!(msg.contains("offset 32") && msg.contains("key #0"), "{msg}");
}

#[test]
fn truncated_value() {
    // u64 value with only 3 bytes present.
    let (e, msg) = open_err(with_kv(b"key.x", 10, &[1, 2, 3]));
    assert!(matches!(e, GgufError::UnexpectedEof { needed: 8, remaining: 3, .. }), "{e:?}");
    assert!(msg.contains("key 'key.x'"), "{msg}");
}

#[test]
fn non_utf8_key() {
    let (e, msg) = open_err(with_kv(b"ke\xffy", 0, &[1]));
    assert!(matches!(e, GgufError::InvalidUtf8 { offset: 32, valid_up_to: 2, .. }), "{e:?}");
    assert!(msg.contains("offset 32") && msg.contains("key #0"), "{msg}");
}

#[test]
fn non_utf8_string_value() {
    let mut value = 3u64.to_le_bytes().to_vec();
    value.extend_from_slice(b"a\xc3(");
    let (e, msg) = open_err(with_kv(b"s", 8, &value));
    assert!(matches!(e, GgufError::InvalidUtf8 { .. }), "{e:?}");
    assert!(msg.contains("key 's'"), "{msg}");
}

#[test]
fn non_utf8_tensor_name() {
    let mut b = B::header(3, 1, 0);
    b.str(b"w\x80").u32(1).u64(4).u32(0).u64(0).pad(32).zeros(16);
    let (e, msg) = open_err(b.finish());
    assert!(matches!(e, GgufError::InvalidUtf8 { offset: 32, .. }), "{e:?}");
    assert!(msg.contains("name of tensor #0"), "{msg}");
}

#[test]
fn empty_key() {
    // Trailing filler so that the kv count itself passes the bytes-remaining check.
    let (e, msg) = open_err(with_kv(b"", 0, &[1, 0, 0]));
    assert!(matches!(e, GgufError::EmptyKey { offset: 24, index: 0, .. }), "{e:?}");
    assert!(msg.contains("offset 24"), "{msg}");
}

#[test]
fn duplicate_key() {
    let mut b = B::header(3, 0, 2);
    b.kv_u32("dup.key", 1).kv_u32("dup.key", 2);
    let (e, msg) = open_err(b.finish());
    // second key starts at 24 + (8 + 7 + 4 + 4) = 47
    assert!(
        matches!(e, GgufError::DuplicateKey { offset: 47, index: 1, first: 0, ref key, .. } if key == "dup.key"),
        "{e:?}"
    );
    assert!(msg.contains("'dup.key'") && msg.contains("offset 47"), "{msg}");
}

#[test]
fn duplicate_tensor_name() {
    let mut b = B::header(3, 2, 0);
    b.tensor("t", &[4], 0, 0).tensor("t", &[4], 0, 32).pad(32).zeros(48);
    let (e, msg) = open_err(b.finish());
    assert!(matches!(e, GgufError::DuplicateTensor { index: 1, first: 0, ref name, .. } if name == "t"), "{e:?}");
    assert!(msg.contains("'t'"), "{msg}");
}

#[test]
fn unknown_value_type() {
    let (e, msg) = open_err(with_kv(b"weird", 13, &[0; 8]));
    assert!(matches!(e, GgufError::UnknownValueType { found: 13, offset: 37, .. }), "{e:?}");
    assert!(msg.contains("key 'weird'") && msg.contains("offset 37"), "{msg}");
}

#[test]
fn unknown_array_element_type() {
    let mut value = 99u32.to_le_bytes().to_vec();
    value.extend_from_slice(&0u64.to_le_bytes());
    let (e, msg) = open_err(with_kv(b"arr", 9, &value));
    assert!(matches!(e, GgufError::UnknownValueType { found: 99, .. }), "{e:?}");
    assert!(msg.contains("elements of key 'arr'"), "{msg}");
}

#[test]
fn invalid_bool_byte() {
    let (e, msg) = open_err(with_kv(b"flag", 7, &[2]));
    assert!(matches!(e, GgufError::InvalidBool { found: 2, offset: 40, .. }), "{e:?}");
    assert!(msg.contains("key 'flag'") && msg.contains("offset 40"), "{msg}");
}

#[test]
fn array_nested_too_deep() {
    // 9 levels of arrays of arrays, each with one element, innermost empty u8 array.
    let mut value = Vec::new();
    for _ in 0..9 {
        value.extend_from_slice(&9u32.to_le_bytes());
        value.extend_from_slice(&1u64.to_le_bytes());
    }
    value.extend_from_slice(&0u32.to_le_bytes());
    value.extend_from_slice(&0u64.to_le_bytes());
    let (e, msg) = open_err(with_kv(b"deep", 9, &value));
    assert!(matches!(e, GgufError::ArrayTooDeep { depth: 9, max: 8, .. }), "{e:?}");
    assert!(msg.contains("key 'deep'"), "{msg}");
}

#[test]
fn alignment_zero() {
    let mut b = B::header(3, 0, 1);
    b.kv_u32("general.alignment", 0);
    let (e, msg) = open_err(b.finish());
    // value (type field) at 24 + 8 + 17 = 49
    assert!(matches!(e, GgufError::BadAlignment { found: 0, offset: 49, .. }), "{e:?}");
    assert!(msg.contains("offset 49"), "{msg}");
}

#[test]
fn alignment_not_power_of_two() {
    let mut b = B::header(3, 0, 1);
    b.kv_u32("general.alignment", 48);
    let (e, _) = open_err(b.finish());
    assert!(matches!(e, GgufError::BadAlignment { found: 48, .. }), "{e:?}");
}

#[test]
fn alignment_not_u32() {
    // u64 (type 10) alignment 32.
    let (e, msg) = open_err(with_kv(b"general.alignment", 10, &32u64.to_le_bytes()));
    assert!(matches!(e, GgufError::AlignmentType { ref found, .. } if found == "u64"), "{e:?}");
    assert!(msg.contains("general.alignment") && msg.contains("u64"), "{msg}");
}

#[test]
fn custom_alignment_is_used() {
    let mut b = B::header(3, 2, 1);
    b.kv_u32("general.alignment", 64);
    b.tensor("a", &[4], 0, 0).tensor("b", &[4], 0, 64).pad(64).zeros(64 + 16);
    let f = GgufFile::from_vec(b.finish(), "a64.gguf").unwrap();
    assert_eq!(f.alignment, 64);
    assert_eq!(f.data_start % 64, 0);
}

#[test]
fn tensor_name_too_long() {
    let name = "n".repeat(64);
    let (e, msg) = open_err(with_tensor(&name, &[4], 0, 0, 16));
    assert!(
        matches!(e, GgufError::Tensor { problem: TensorProblem::NameTooLong { len: 64, max: 63 }, offset: 24, .. }),
        "{e:?}"
    );
    assert!(msg.contains("offset 24"), "{msg}");
    // 63 bytes is fine (ggml: length < GGML_MAX_NAME).
    GgufFile::from_vec(with_tensor(&"n".repeat(63), &[4], 0, 0, 16), "ok.gguf").unwrap();
}

#[test]
fn too_many_dims() {
    let (e, msg) = open_err(with_tensor("w", &[1, 1, 1, 1, 1], 0, 0, 4));
    assert!(
        matches!(e, GgufError::Tensor { problem: TensorProblem::TooManyDims { found: 5, max: 4 }, offset: 33, .. }),
        "{e:?}"
    );
    assert!(msg.contains("'w'") && msg.contains("offset 33"), "{msg}");
}

#[test]
fn dim_above_i64_max() {
    let (e, msg) = open_err(with_tensor("w", &[1, 1 << 63], 0, 0, 0));
    assert!(matches!(e, GgufError::Tensor { problem: TensorProblem::DimTooLarge { index: 1, .. }, .. }), "{e:?}");
    assert!(msg.contains("'w'"), "{msg}");
}

#[test]
fn zero_size_dims_are_allowed() {
    // gguf.cpp accepts ne = 0 (an empty tensor); n_dims = 0 is a scalar.
    let mut b = B::header(3, 2, 0);
    b.tensor("empty", &[0, 7], 0, 0).tensor("scalar", &[], 0, 0).pad(32).zeros(4);
    let f = GgufFile::from_vec(b.finish(), "z.gguf").unwrap();
    assert_eq!(f.tensor_data("empty").unwrap().len(), 0);
    assert_eq!(f.tensor_data("scalar").unwrap().len(), 4);
}

#[test]
fn element_count_overflow() {
    let (e, msg) = open_err(with_tensor("w", &[1 << 32, 1 << 32], 0, 0, 0));
    assert!(matches!(e, GgufError::Tensor { problem: TensorProblem::ElementCountOverflow { .. }, .. }), "{e:?}");
    assert!(msg.contains("'w'") && msg.contains("overflows"), "{msg}");
}

#[test]
fn byte_size_overflow() {
    // 2^61 F64 elements: count fits i64, bytes (2^64) do not.
    let (e, _) = open_err(with_tensor("w", &[1 << 61], 28, 0, 0));
    assert!(matches!(e, GgufError::Tensor { problem: TensorProblem::SizeOverflow { .. }, .. }), "{e:?}");
}

#[test]
fn unknown_tensor_type_removed_id() {
    let (e, msg) = open_err(with_tensor("w", &[32], 4, 0, 32));
    assert!(
        matches!(
            e,
            GgufError::Tensor { problem: TensorProblem::UnknownType { id: 4, removed: Some("Q4_2") }, offset: 45, .. }
        ),
        "{e:?}"
    );
    assert!(msg.contains("unknown tensor type id 4 (Q4_2, removed from ggml)") && msg.contains("offset 45"), "{msg}");
}

#[test]
fn unknown_tensor_type_never_defined() {
    let (e, msg) = open_err(with_tensor("w", &[32], 1000, 0, 32));
    assert!(
        matches!(e, GgufError::Tensor { problem: TensorProblem::UnknownType { id: 1000, removed: None }, .. }),
        "{e:?}"
    );
    assert!(msg.contains("1000"), "{msg}");
}

#[test]
fn row_not_block_multiple() {
    // Q4_0 (id 2) has 32-element blocks.
    let (e, msg) = open_err(with_tensor("w", &[33, 2], 2, 0, 64));
    assert!(
        matches!(e, GgufError::Tensor { problem: TensorProblem::RowNotBlockMultiple { ne0: 33, block: 32, .. }, .. }),
        "{e:?}"
    );
    assert!(msg.contains("Q4_0") && msg.contains("'w'"), "{msg}");
}

#[test]
fn offset_misaligned() {
    let mut b = B::header(3, 2, 0);
    b.tensor("a", &[4], 0, 0).tensor("b", &[4], 0, 16).pad(32).zeros(64);
    let (e, msg) = open_err(b.finish());
    assert!(
        matches!(e, GgufError::MisalignedOffset { found: 16, alignment: 32, ref name, .. } if name == "b"),
        "{e:?}"
    );
    assert!(msg.contains("'b'") && msg.contains("offset"), "{msg}");
}

#[test]
fn offsets_overlapping() {
    // a is 64 bytes; b claims offset 32, inside a.
    let mut b = B::header(3, 2, 0);
    b.tensor("a", &[16], 0, 0).tensor("b", &[4], 0, 32).pad(32).zeros(96);
    let (e, msg) = open_err(b.finish());
    assert!(matches!(e, GgufError::OffsetNotContiguous { found: 32, expected: 64, .. }), "{e:?}");
    assert!(msg.contains("overlaps") && msg.contains("'b'"), "{msg}");
}

#[test]
fn offsets_with_gap() {
    let mut b = B::header(3, 2, 0);
    b.tensor("a", &[4], 0, 0).tensor("b", &[4], 0, 64).pad(32).zeros(96);
    let (e, msg) = open_err(b.finish());
    assert!(matches!(e, GgufError::OffsetNotContiguous { found: 64, expected: 32, .. }), "{e:?}");
    assert!(msg.contains("gap"), "{msg}");
}

#[test]
fn truncated_tensor_data() {
    let mut bytes = valid_two_tensors();
    let full = bytes.len();
    bytes.truncate(full - 32 + 5); // b's data has 12 bytes, keep 5
    let (e, msg) = open_err(bytes);
    assert!(matches!(e, GgufError::TensorDataPastEof { ref name, .. } if name == "b"), "{e:?}");
    assert!(msg.contains("'b'") && msg.contains("truncated"), "{msg}");
}

#[test]
fn tensor_offset_past_eof() {
    // A huge offset: misaligned check passes (multiple of 32), contiguity fails first; so a
    // lone tensor whose data would start past the end is the case to test.
    let (e, msg) = open_err(with_tensor("w", &[1 << 20], 0, 0, 100));
    assert!(matches!(e, GgufError::TensorDataPastEof { end, .. } if end > 1 << 20), "{e:?}");
    assert!(msg.contains("'w'"), "{msg}");
}

#[test]
fn data_section_start_past_eof() {
    let mut b = B::header(3, 1, 0);
    b.tensor("w", &[0], 0, 0); // ends at 24 + 9 + 4 + 8 + 4 + 8 = 57, no padding
    let (e, msg) = open_err(b.finish());
    assert!(matches!(e, GgufError::DataStartPastEof { header_end: 57, data_start: 64, file_size: 57, .. }), "{e:?}");
    assert!(msg.contains("64"), "{msg}");
}

#[test]
fn trailing_padding_after_last_tensor_is_optional() {
    // Like llama.cpp's loader: the last tensor must be inside the file, its padding need not.
    let mut bytes = valid_two_tensors();
    bytes.truncate(bytes.len() - 20); // drop b's padding only
    let f = GgufFile::from_vec(bytes, "nopad.gguf").unwrap();
    assert_eq!(f.tensor_data("b").unwrap(), &[2u8; 12]);
}
