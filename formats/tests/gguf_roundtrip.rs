//! Write -> read -> write round trips: the real model byte for byte, a header with every
//! metadata value type, a v2 file, writer-side validation, and a property test over random
//! metadata.

mod gguf_util;

use std::borrow::Cow;
use std::io::Read;

use llmtool_formats::gguf::{write_gguf, GgufError, GgufFile, GgufHeader, TensorProblem};
use llmtool_formats::{FormatError, GgmlType, MetaArray, MetaValue, Metadata, TensorInfo};
use proptest::prelude::*;

fn write_vec(header: &GgufHeader, data: &[Vec<u8>]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    write_gguf(&mut out, header, |i, _| Ok(Cow::Borrowed(data[i].as_slice())), |_| {})?;
    Ok(out)
}

/// Random bytes of the right size for each tensor (deterministic LCG).
fn tensor_bytes(tensors: &[TensorInfo]) -> Vec<Vec<u8>> {
    let mut state = 0x2545F4914F6CDD1Du64;
    tensors
        .iter()
        .map(|t| {
            (0..t.n_bytes().unwrap())
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (state >> 56) as u8
                })
                .collect()
        })
        .collect()
}

fn every_type_metadata() -> Metadata {
    let mut m = Metadata::new();
    m.insert("general.architecture", MetaValue::String("llama".into()));
    m.insert("t.u8", MetaValue::U8(255));
    m.insert("t.i8", MetaValue::I8(-128));
    m.insert("t.u16", MetaValue::U16(65535));
    m.insert("t.i16", MetaValue::I16(-32768));
    m.insert("t.u32", MetaValue::U32(u32::MAX));
    m.insert("t.i32", MetaValue::I32(i32::MIN));
    m.insert("t.f32", MetaValue::F32(f32::from_bits(0x7fc0_0123))); // NaN with payload
    m.insert("t.bool", MetaValue::Bool(true));
    m.insert("t.string", MetaValue::String("héllo wörld ✓ 🦀".into()));
    m.insert("t.u64", MetaValue::U64(u64::MAX));
    m.insert("t.i64", MetaValue::I64(i64::MIN));
    m.insert("t.f64", MetaValue::F64(-0.0));
    m.insert("a.u8", MetaValue::Array(MetaArray::U8(vec![0, 1, 255])));
    m.insert("a.bool", MetaValue::Array(MetaArray::Bool(vec![true, false])));
    m.insert("a.str", MetaValue::Array(MetaArray::String(vec!["".into(), "ü".into()])));
    m.insert("a.empty", MetaValue::Array(MetaArray::F64(vec![])));
    m.insert(
        "a.nested",
        MetaValue::Array(MetaArray::Array(vec![
            MetaArray::I32(vec![1, -2]),
            MetaArray::String(vec!["x".into()]),
            MetaArray::Array(vec![MetaArray::U16(vec![]), MetaArray::F32(vec![1.5])]),
        ])),
    );
    m
}

fn some_tensors() -> Vec<TensorInfo> {
    vec![
        TensorInfo::new("f32", GgmlType::F32, vec![3, 5]),
        TensorInfo::new("f16", GgmlType::F16, vec![7]),
        TensorInfo::new("bf16", GgmlType::BF16, vec![2, 2, 2]),
        TensorInfo::new("q8_0", GgmlType::Q8_0, vec![64, 3]),
        TensorInfo::new("q4_k", GgmlType::Q4_K, vec![256, 2, 1, 1]),
        TensorInfo::new("empty", GgmlType::F32, vec![0]),
    ]
}

#[test]
fn real_model_rewrites_byte_identical() {
    let path = gguf_util::real_model();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version, 3);
    let header = f.header();
    let layout = header.layout().unwrap();
    assert_eq!(layout.offsets, f.offsets);
    assert_eq!(layout.data_start, f.data_start);
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert_eq!(layout.file_size, on_disk, "computed layout must match the real file size");

    let mut out = Vec::with_capacity(on_disk as usize);
    let mut calls = Vec::new();
    let n = write_gguf(&mut out, &header, |i, _| Ok(Cow::Borrowed(f.tensor_data_at(i))), |w| calls.push(w)).unwrap();
    assert_eq!(n, on_disk);
    assert_eq!(calls.len(), f.tensors.len());
    assert_eq!(calls.last(), Some(&on_disk));
    assert!(calls.windows(2).all(|w| w[0] < w[1] || f.tensors.is_empty()));

    let mut original = Vec::new();
    std::fs::File::open(&path).unwrap().read_to_end(&mut original).unwrap();
    assert!(out == original, "rewritten model differs from the original");
}

#[test]
fn every_value_type_round_trips() {
    let header = GgufHeader::new(every_type_metadata(), some_tensors()).unwrap();
    let data = tensor_bytes(&header.tensors);
    let bytes = write_vec(&header, &data).unwrap();
    assert_eq!(bytes.len() as u64, header.layout().unwrap().file_size);

    let f = GgufFile::from_vec(bytes.clone(), "mem.gguf").unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.tensors, header.tensors);
    // PartialEq on f32 NaN is false: compare the NaN bit pattern, then the rest.
    let nan = f.metadata.get("t.f32").unwrap();
    assert!(matches!(nan, MetaValue::F32(v) if v.to_bits() == 0x7fc0_0123));
    let strip = |m: &Metadata| {
        m.iter().filter(|(k, _)| *k != "t.f32").map(|(k, v)| (k.to_string(), v.clone())).collect::<Vec<_>>()
    };
    assert_eq!(strip(&f.metadata), strip(&header.metadata));
    assert_eq!(f.metadata.keys().collect::<Vec<_>>(), header.metadata.keys().collect::<Vec<_>>());
    for (i, t) in header.tensors.iter().enumerate() {
        assert_eq!(f.tensor_data(&t.name).unwrap(), data[i].as_slice(), "{}", t.name);
    }
    // Second generation is byte-identical.
    let again = write_vec(&f.header(), &data).unwrap();
    assert!(again == bytes);
}

#[test]
fn version_2_round_trips_as_version_2() {
    let mut header = GgufHeader::new(every_type_metadata(), some_tensors()).unwrap();
    header.version = 2;
    let data = tensor_bytes(&header.tensors);
    let bytes = write_vec(&header, &data).unwrap();
    assert_eq!(&bytes[4..8], &2u32.to_le_bytes());
    let f = GgufFile::from_vec(bytes.clone(), "v2.gguf").unwrap();
    assert_eq!(f.version, 2);
    assert!(write_vec(&f.header(), &data).unwrap() == bytes);
}

#[test]
fn custom_alignment_from_metadata() {
    let mut m = Metadata::new();
    m.insert("general.alignment", MetaValue::U32(128));
    let header = GgufHeader::new(m, some_tensors()).unwrap();
    assert_eq!(header.alignment, 128);
    let layout = header.layout().unwrap();
    assert!(layout.offsets.iter().all(|o| o % 128 == 0));
    assert_eq!(layout.data_start % 128, 0);
    let data = tensor_bytes(&header.tensors);
    let f = GgufFile::from_vec(write_vec(&header, &data).unwrap(), "a128.gguf").unwrap();
    assert_eq!(f.alignment, 128);
    assert_eq!(f.offsets, layout.offsets);
}

#[test]
fn header_new_rejects_non_u32_alignment() {
    let mut m = Metadata::new();
    m.insert("general.alignment", MetaValue::U64(32));
    assert!(matches!(GgufHeader::new(m, vec![]), Err(GgufError::AlignmentType { .. })));
    let mut m = Metadata::new();
    m.insert("general.alignment", MetaValue::U32(24));
    assert!(matches!(GgufHeader::new(m, vec![]), Err(GgufError::BadAlignment { found: 24, .. })));
}

#[test]
fn layout_rejects_alignment_disagreeing_with_metadata() {
    let mut header = GgufHeader::new(Metadata::new(), vec![]).unwrap();
    header.alignment = 64;
    let e = header.layout().unwrap_err();
    assert!(matches!(e, GgufError::InvalidHeader { .. }), "{e:?}");
    assert!(e.to_string().contains("general.alignment"));
}

#[test]
fn layout_rejects_bad_tensors() {
    let check = |tensors: Vec<TensorInfo>| GgufHeader::new(Metadata::new(), tensors).unwrap().layout().unwrap_err();
    let e = check(vec![TensorInfo::new("x", GgmlType::F32, vec![1]), TensorInfo::new("x", GgmlType::F32, vec![1])]);
    assert!(matches!(e, GgufError::DuplicateTensor { index: 1, first: 0, .. }), "{e:?}");
    let e = check(vec![TensorInfo::new("n".repeat(64), GgmlType::F32, vec![1])]);
    assert!(matches!(e, GgufError::Tensor { problem: TensorProblem::NameTooLong { .. }, .. }), "{e:?}");
    let e = check(vec![TensorInfo::new("x", GgmlType::F32, vec![1; 5])]);
    assert!(matches!(e, GgufError::Tensor { problem: TensorProblem::TooManyDims { .. }, .. }), "{e:?}");
    let e = check(vec![TensorInfo::new("x", GgmlType::Q4_K, vec![128])]);
    assert!(matches!(e, GgufError::Tensor { problem: TensorProblem::RowNotBlockMultiple { .. }, .. }), "{e:?}");
    let e = check(vec![TensorInfo::new("x", GgmlType::F32, vec![1 << 40, 1 << 40])]);
    assert!(matches!(e, GgufError::Tensor { problem: TensorProblem::ElementCountOverflow { .. }, .. }), "{e:?}");
    let mut m = Metadata::new();
    m.insert("", MetaValue::U8(1));
    let e = GgufHeader::new(m, vec![]).unwrap().layout().unwrap_err();
    assert!(matches!(e, GgufError::EmptyKey { .. }), "{e:?}");
}

#[test]
fn writer_rejects_wrong_data_size() {
    let header = GgufHeader::new(Metadata::new(), vec![TensorInfo::new("w", GgmlType::F16, vec![4])]).unwrap();
    let mut out = Vec::new();
    let e = write_gguf(&mut out, &header, |_, _| Ok(Cow::Owned(vec![0u8; 7])), |_| {}).unwrap_err();
    assert!(
        matches!(e, FormatError::Gguf(GgufError::DataSizeMismatch { expected: 8, found: 7, ref name, .. }) if name == "w"),
        "{e:?}"
    );
}

#[test]
fn writer_reports_io_errors_with_offset() {
    struct Full(usize);
    impl std::io::Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"));
            }
            let n = b.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let header = GgufHeader::new(every_type_metadata(), some_tensors()).unwrap();
    let data = tensor_bytes(&header.tensors);
    let layout = header.layout().unwrap();
    let mut w = Full(layout.data_start as usize + 10);
    let e = write_gguf(&mut w, &header, |i, _| Ok(Cow::Borrowed(data[i].as_slice())), |_| {}).unwrap_err();
    assert!(matches!(e, FormatError::Gguf(GgufError::Write { offset, .. }) if offset == layout.data_start), "{e:?}");
}

#[test]
fn callback_errors_propagate() {
    let header = GgufHeader::new(Metadata::new(), vec![TensorInfo::new("w", GgmlType::F32, vec![1])]).unwrap();
    let e = write_gguf(&mut Vec::new(), &header, |_, t| Err(FormatError::NoSuchTensor(t.name.clone())), |_| {})
        .unwrap_err();
    assert!(matches!(e, FormatError::NoSuchTensor(ref n) if n == "w"));
}

#[test]
fn no_tensors_file() {
    let header = GgufHeader::new(every_type_metadata(), vec![]).unwrap();
    let bytes = write_vec(&header, &[]).unwrap();
    assert_eq!(bytes.len() % 32, 0);
    let f = GgufFile::from_vec(bytes.clone(), "meta-only.gguf").unwrap();
    assert!(f.tensors.is_empty());
    assert!(write_vec(&f.header(), &[]).unwrap() == bytes);
}

// ---- property test over random metadata ----

fn arb_array(depth: u32) -> BoxedStrategy<MetaArray> {
    let leaf = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..5).prop_map(MetaArray::U8),
        prop::collection::vec(any::<i8>(), 0..5).prop_map(MetaArray::I8),
        prop::collection::vec(any::<u16>(), 0..5).prop_map(MetaArray::U16),
        prop::collection::vec(any::<i16>(), 0..5).prop_map(MetaArray::I16),
        prop::collection::vec(any::<u32>(), 0..5).prop_map(MetaArray::U32),
        prop::collection::vec(any::<i32>(), 0..5).prop_map(MetaArray::I32),
        prop::collection::vec(any::<u32>(), 0..5)
            .prop_map(|v| MetaArray::F32(v.into_iter().map(f32::from_bits).collect())),
        prop::collection::vec(any::<bool>(), 0..5).prop_map(MetaArray::Bool),
        prop::collection::vec(".{0,8}", 0..4).prop_map(MetaArray::String),
        prop::collection::vec(any::<u64>(), 0..5).prop_map(MetaArray::U64),
        prop::collection::vec(any::<i64>(), 0..5).prop_map(MetaArray::I64),
        prop::collection::vec(any::<u64>(), 0..5)
            .prop_map(|v| MetaArray::F64(v.into_iter().map(f64::from_bits).collect())),
    ];
    if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![4 => leaf, 1 => prop::collection::vec(arb_array(depth - 1), 0..3).prop_map(MetaArray::Array)]
            .boxed()
    }
}

fn arb_value() -> impl Strategy<Value = MetaValue> {
    prop_oneof![
        any::<u8>().prop_map(MetaValue::U8),
        any::<i8>().prop_map(MetaValue::I8),
        any::<u16>().prop_map(MetaValue::U16),
        any::<i16>().prop_map(MetaValue::I16),
        any::<u32>().prop_map(MetaValue::U32),
        any::<i32>().prop_map(MetaValue::I32),
        any::<u32>().prop_map(|b| MetaValue::F32(f32::from_bits(b))),
        any::<bool>().prop_map(MetaValue::Bool),
        ".{0,16}".prop_map(MetaValue::String),
        arb_array(3).prop_map(MetaValue::Array),
        any::<u64>().prop_map(MetaValue::U64),
        any::<i64>().prop_map(MetaValue::I64),
        any::<u64>().prop_map(|b| MetaValue::F64(f64::from_bits(b))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Random metadata (all types, nested arrays, unicode keys/strings, NaN payloads):
    /// write -> read gives the same bytes when written again, the same keys in the same
    /// order, and values equal bit for bit (compared through their encoding, since NaN != NaN).
    #[test]
    fn random_metadata_round_trips(entries in prop::collection::vec(("[a-z.\\u{e9}\\u{4e2d}]{1,12}", arb_value()), 0..12)) {
        let metadata: Metadata = entries.into_iter().filter(|(k, _)| k != "general.alignment").collect();
        let header = GgufHeader::new(metadata.clone(), some_tensors()).unwrap();
        let data = tensor_bytes(&header.tensors);
        let bytes = write_vec(&header, &data).unwrap();
        let f = GgufFile::from_vec(bytes.clone(), "prop.gguf").unwrap();
        prop_assert_eq!(f.metadata.keys().collect::<Vec<_>>(), metadata.keys().collect::<Vec<_>>());
        for (k, v) in metadata.iter() {
            let got = f.metadata.get(k).unwrap();
            prop_assert_eq!(got.value_type(), v.value_type());
            prop_assert_eq!(format!("{:?}", got), format!("{:?}", v));
        }
        prop_assert!(write_vec(&f.header(), &data).unwrap() == bytes);
    }
}
