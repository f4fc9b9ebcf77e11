#![no_main]
//! Arbitrary bytes through the safetensors reader (the same checks as `open_file`): it must
//! return an error or a set whose every tensor slice has the size its dtype and shape give;
//! it must agree with the upstream `safetensors` crate on what is valid (except duplicate
//! keys, which upstream silently collapses) and on every tensor; and a set that parses must
//! be written back and read again identically. No single allocation over 64 MiB
//! (tests/alloc_bounds.rs: at most 16·n + 64 KiB).
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool_formats::safetensors::{upstream, write_safetensors, SafetensorsError, SafetensorsSet};
use std::borrow::Cow;

target!(64 << 20, |data| {
    let ours = SafetensorsSet::from_bytes(data.to_vec());
    let theirs = upstream::SafeTensors::deserialize(data);
    let set = match (ours, theirs) {
        (Err(SafetensorsError::DuplicateKey { .. }), _) => return,
        (Err(_), Err(_)) => return,
        (Ok(_), Err(e)) => panic!("upstream rejects what we accept: {e:?}"),
        (Err(e), Ok(_)) => panic!("we reject what upstream accepts: {e}"),
        (Ok(set), Ok(up)) => {
            assert_eq!(up.len(), set.tensors().len());
            for t in set.tensors() {
                let v = up.tensor(&t.name).expect("upstream has the tensor");
                assert_eq!(v.dtype(), t.dtype);
                assert_eq!(v.shape().iter().map(|&d| d as u64).collect::<Vec<_>>(), t.shape);
                assert_eq!(Some(v.data()), set.tensor_data(&t.name));
            }
            set
        }
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
    let meta = if set.shards()[0].has_metadata() { Some(set.metadata()) } else { None };
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
