//! `llmtool merge`: mergekit YAML configurations over GGUF files and HF dirs.
//!
//! - [`config`]: the YAML, read as mergekit reads it; model path resolution.
//! - [`plan`]: which inputs and parameters feed every output tensor.
//! - [`inputs`]: input tensors as f32 in HF layout, from files or an in-memory cache.
//! - [`source`]: the merged model as a lazy tensor source for the writers.
//! - [`memory`]: merging in memory over a shared input cache (evolve).
//! - [`methods`]: the per-tensor math of every merge method (linear, slerp, nuslerp, task
//!   arithmetic and its TIES/DARE/breadcrumbs/DELLA variants, model stock, passthrough).

pub mod config;
pub mod error;
pub mod inputs;
pub mod memory;
pub mod methods;
pub mod plan;
pub mod source;
