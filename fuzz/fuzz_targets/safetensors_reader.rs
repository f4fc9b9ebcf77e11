#![no_main]
//! Arbitrary bytes through the safetensors reader (the same checks as `open_file`): it must
//! return an error or a set whose every tensor slice lies inside the buffer and has the size
//! its dtype and shape give, and a set that parses must be written back identically.
use libfuzzer_sys::fuzz_target;
use llmtool_formats::safetensors::{write_safetensors, SafetensorsSet};
use std::borrow::Cow;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = SafetensorsSet::from_bytes(data.to_vec()) else {
        return;
    };
    let mut total = 0u64;
    for t in set.tensors() {
        let bytes = set.tensor_data(&t.name).expect("listed tensor has data");
        assert_eq!(Some(bytes.len() as u64), t.n_bytes());
        total += bytes.len() as u64;
    }
    assert_eq!(total, set.total_data_bytes());
    // Re-serialize and re-read: same tensors, same bytes.
    let mut out = Vec::new();
    let meta = if set.shards()[0].has_metadata() {
        Some(set.metadata())
    } else {
        None
    };
    write_safetensors(
        &mut out,
        set.tensors(),
        meta,
        |_, t| Ok(Cow::Borrowed(set.tensor_data(&t.name).unwrap())),
        |_| {},
    )
    .expect("a valid set can be written back");
    let again = SafetensorsSet::from_bytes(out).expect("what we write reads back");
    assert_eq!(again.tensors(), set.tensors());
    for t in set.tensors() {
        assert_eq!(again.tensor_data(&t.name), set.tensor_data(&t.name));
    }
});
