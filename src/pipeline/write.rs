//! The end of a pipeline: a stage streamed into a GGUF file, one tensor ahead of the writer
//! (`stream::with_lookahead`), into a temp file that is fsynced and renamed into place, so a
//! failure leaves nothing half-written.

use std::path::{Path, PathBuf};

use llmtool_formats::atomic::AtomicFile;
use llmtool_formats::gguf::GgufHeader;
use llmtool_formats::{FormatError, TensorSource};

use super::{PipelineError, Stage};
use crate::progress::Progress;
use crate::stream::with_lookahead;

/// How a GGUF file is written.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions<'a> {
    /// Replace an existing file.
    pub force: bool,
    /// No progress bar.
    pub quiet: bool,
    /// The progress bar's label.
    pub label: &'a str,
}

impl Default for WriteOptions<'_> {
    /// Replace nothing, show nothing.
    fn default() -> Self {
        WriteOptions { force: false, quiet: true, label: "write" }
    }
}

/// Errors of writing one file, naming it.
#[derive(Debug, thiserror::Error)]
#[error("writing {}", path.display())]
pub struct WriteFileError {
    pub path: PathBuf,
    #[source]
    pub source: FormatError,
}

/// The GGUF header of a stage: its metadata and tensor infos, with the version and
/// alignment of the GGUF file it was read from when it is one (so an unchanged copy is
/// byte-identical).
pub fn gguf_header(stage: Stage<'_>) -> Result<GgufHeader, FormatError> {
    let mut header = GgufHeader::new(stage.metadata.clone(), stage.tensors.tensor_infos().to_vec())?;
    if let Some(g) = stage.origin.gguf {
        header.version = g.version;
        header.alignment = g.alignment;
    }
    Ok(header)
}

/// Streams `stage` into a new GGUF file at `path`; returns the bytes written (the file size).
pub fn write_gguf(stage: Stage<'_>, path: &Path, opts: &WriteOptions) -> Result<u64, PipelineError> {
    let header = gguf_header(stage)?;
    write_header_and_tensors(&header, stage.tensors, path, opts)
}

/// Streams `source` under `header` into a new GGUF file at `path` (temp file, fsync,
/// rename), with a progress bar unless `opts.quiet`. Returns the bytes written.
pub fn write_header_and_tensors(
    header: &GgufHeader,
    source: &dyn TensorSource,
    path: &Path,
    opts: &WriteOptions,
) -> Result<u64, PipelineError> {
    let layout = header.layout().map_err(FormatError::from)?;
    let mut out = AtomicFile::create(path, opts.force).map_err(FormatError::from)?;
    let mut progress = Progress::new(layout.file_size, opts.label, opts.quiet);
    let infos = source.tensor_infos().to_vec();
    let written = with_lookahead(
        infos.len(),
        |i| source.tensor_bytes(&infos[i].name),
        |i| source.release(&infos[i].name),
        |next| llmtool_formats::gguf::write_gguf(out.writer(), header, |i, _| next(i), |b| progress.set(b)),
    )
    .map_err(|source| Box::new(WriteFileError { path: path.to_path_buf(), source }))?;
    progress.finish();
    out.commit().map_err(FormatError::from)?;
    Ok(written)
}
