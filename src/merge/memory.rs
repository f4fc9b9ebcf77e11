//! Library entry point for merging in memory (the evolve search): the inputs are loaded once
//! into an [`InputCache`]; each candidate configuration is planned over it by the merge
//! pass's own code ([`merge_over`]) and its tensors computed on demand from the cache,
//! without file I/O.

use super::config::MergeConfig;
use super::error::MergeRunError;
use super::inputs::InputCache;
use crate::pipeline::{merge_over, MergeOptions, Output};

/// A merged model held as a lazy tensor source over an input cache.
pub type MergedModel<'a> = Output<'a>;

/// Plans `config` over `inputs` (which must hold every model the config references).
pub fn merge_in_memory<'a>(
    config: &MergeConfig,
    inputs: &'a InputCache,
    seed: u64,
) -> Result<MergedModel<'a>, MergeRunError> {
    let opts = MergeOptions { seed, ..MergeOptions::default() };
    Ok(merge_over(config, inputs, opts)?.output)
}
