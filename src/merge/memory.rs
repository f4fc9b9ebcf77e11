//! Library entry point for merging in memory (the evolve search): the inputs are loaded once
//! into an [`InputCache`]; each candidate configuration is planned over it and its tensors
//! computed on demand from the cache, without file I/O.

use llmtool_formats::Metadata;

use super::config::MergeConfig;
use super::error::MergeRunError;
use super::inputs::InputCache;
use super::plan::plan;
use super::source::MergedSource;
use crate::arch::Arch;

/// A merged model held as a lazy tensor source over an input cache.
pub struct MergedModel<'a> {
    pub arch: &'static dyn Arch,
    pub metadata: Metadata,
    pub tensors: MergedSource<&'a InputCache>,
}

/// Plans `config` over `inputs` (which must hold every model the config references).
pub fn merge_in_memory<'a>(
    config: &MergeConfig,
    inputs: &'a InputCache,
    seed: u64,
) -> Result<MergedModel<'a>, MergeRunError> {
    let p = plan(config, inputs, seed)?;
    Ok(MergedModel { arch: p.arch, metadata: p.metadata.clone(), tensors: MergedSource::new(p, inputs) })
}
