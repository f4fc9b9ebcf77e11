//! Fuzzes the GGUF reader: any input must either be rejected with a typed error or open
//! and hand out every tensor's data in bounds; no panic, no huge allocation from a count.
//! Accepted files must also survive a write-back (header encode + streaming writer). No
//! single allocation over 64 MiB (the inputs are at most a few KiB; tests/alloc_bounds.rs:
//! at most 4·n + 64 KiB).
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool_formats::gguf::{write_gguf, GgufFile};
use std::borrow::Cow;

target!(64 << 20, |data| {
    let Ok(file) = GgufFile::from_vec(data.to_vec(), "<fuzz>") else {
        return;
    };
    let mut sum = 0u64;
    for (i, t) in file.tensors.iter().enumerate() {
        let bytes = file.tensor_data(&t.name).expect("listed tensor has data");
        assert_eq!(bytes.len() as u64, t.n_bytes().expect("validated size"));
        assert_eq!(bytes, file.tensor_data_at(i));
        sum = sum.wrapping_add(bytes.iter().map(|&b| b as u64).sum::<u64>());
    }
    std::hint::black_box(sum);
    // What we accept we must be able to write back, and read back the same.
    let header = file.header();
    let mut out = Vec::new();
    let n = write_gguf(
        &mut out,
        &header,
        |i, _| Ok(Cow::Borrowed(file.tensor_data_at(i))),
        |_| {},
    )
    .expect("an accepted file can be written back");
    assert_eq!(n as usize, out.len());
    let again = GgufFile::from_vec(out, "<fuzz rewrite>").expect("rewritten file opens");
    assert_eq!(again.tensors, file.tensors);
    assert_eq!(again.offsets, file.offsets);
});
