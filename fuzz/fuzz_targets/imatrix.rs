//! Importance matrices: GGUF (`Imatrix::from_gguf`) and legacy `.dat`
//! (`Imatrix::from_legacy_bytes`), chosen by the GGUF magic; a typed error or a matrix whose
//! importance rows can be computed and written back; no panic; no single allocation over
//! 64 MiB.
#![no_main]
#[path = "common.rs"]
#[macro_use]
mod common;

use llmtool_formats::gguf::GgufFile;
use llmtool_formats::imatrix::Imatrix;
use std::path::Path;

target!(64 << 20, |data| {
    let path = Path::new("<fuzz>");
    let m = if data.starts_with(b"GGUF") {
        let Ok(f) = GgufFile::from_vec(data.to_vec(), "<fuzz>") else { return };
        Imatrix::from_gguf(&f, path)
    } else {
        Imatrix::from_legacy_bytes(data, path)
    };
    if let Ok(m) = m {
        std::hint::black_box(m.importance());
        let _ = m.legacy_bytes(None);
    }
});
