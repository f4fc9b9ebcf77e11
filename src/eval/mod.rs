//! Evaluation passes on the inference core: perplexity and KL divergence, computed the way
//! llama.cpp's `llama-perplexity` does so the figures compare; [`validate`] scores model
//! stages (on disk or in memory) against each other and checks quality gates.

pub mod imatrix;
pub mod kld;
pub mod perplexity;
pub mod tasks;
pub mod validate;

pub use kld::{kl_divergence, save_base, Base, BaseFile, KldResult};
pub use perplexity::{perplexity, ChunkStat, EvalError, NllSums, PplOptions, PplResult};
