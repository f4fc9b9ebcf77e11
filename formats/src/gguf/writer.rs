//! Streaming GGUF writer: the header is computed from shapes and types first, then each
//! tensor's bytes are pulled from the caller one at a time, so the model is never in memory
//! as a whole.
//!
//! Padding (zero bytes) after the header and after every tensor, the last one included, as
//! ggml `gguf_write_out` and gguf-py `GGUFWriter` do: a file read by [`super::GgufFile`]
//! and written back with the same header and tensor bytes is byte-identical when the
//! original was written by either of them.

use std::borrow::Cow;
use std::io::Write;

use super::error::GgufError;
use super::layout::GgufHeader;
use crate::{FormatError, TensorInfo};

const ZEROS: [u8; 256] = [0; 256];

/// Counts bytes and turns I/O errors into [`GgufError::Write`] naming the offset.
struct Out<'w, W: Write> {
    inner: &'w mut W,
    written: u64,
}

impl<W: Write> Out<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), GgufError> {
        self.inner.write_all(bytes).map_err(|source| GgufError::Write { offset: self.written, source })?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, target: u64) -> Result<(), GgufError> {
        while self.written < target {
            let n = (target - self.written).min(ZEROS.len() as u64) as usize;
            self.write(&ZEROS[..n])?;
        }
        Ok(())
    }
}

/// Writes header + tensor infos, then pulls each tensor's bytes from `data(index, info)` in
/// order, checks each has exactly `info.n_bytes()` bytes, writes alignment padding.
/// `progress(bytes_written_so_far)` is called after each tensor. Returns bytes written.
/// Does not flush or fsync (the caller owns the file).
pub fn write_gguf<'d, W: Write>(
    out: &mut W,
    header: &GgufHeader,
    mut data: impl FnMut(usize, &TensorInfo) -> Result<Cow<'d, [u8]>, FormatError>,
    mut progress: impl FnMut(u64),
) -> Result<u64, FormatError> {
    let (layout, header_bytes) = header.encode()?;
    let mut out = Out { inner: out, written: 0 };
    out.write(&header_bytes)?;
    out.pad_to(layout.data_start)?;
    for (i, info) in header.tensors.iter().enumerate() {
        let bytes = data(i, info)?;
        let expected = layout.n_bytes[i];
        if bytes.len() as u64 != expected {
            return Err(GgufError::DataSizeMismatch {
                index: i,
                name: info.name.clone(),
                expected,
                found: bytes.len() as u64,
            }
            .into());
        }
        out.write(&bytes)?;
        drop(bytes);
        // The next tensor's start, or the end of the file after the last one.
        let next = layout.offsets.get(i + 1).map_or(layout.file_size, |o| layout.data_start + o);
        out.pad_to(next)?;
        progress(out.written);
    }
    debug_assert_eq!(out.written, layout.file_size);
    Ok(out.written)
}
