//! llmtool: convert, quantize, merge and validate LLM weights.
//!
//! - [`arch`]: architecture registry (HF ⇄ GGUF names, config keys, layout fixes).
//! - [`tokenizer`]: tokenizer metadata ⇄ `tokenizer.ggml.*`; encode/decode ([`tokenizer::Tokenizer`]).
//! - [`chat_template`]: rendering a model's Jinja chat template.
//! - [`infer`]: the inference core (forward pass, KV cache); [`generate`]: text generation on it.
//! - [`eval`]: perplexity, KL divergence, multiple-choice tasks.
//! - [`export`]: Ollama / LM Studio layouts of a GGUF (Modelfile, chat template translation, model card).
//! - [`evolve`]: the evolutionary merge search's building blocks (CMA-ES).
//! - [`sample`]: greedy / temperature / top-k / top-p sampling.
//! - [`model`]: opening a GGUF file or HF dir in the internal (GGUF) form.
//! - [`merge`]: mergekit-style model merging (per-tensor methods).
//! - [`passes`]: lazy transformations of tensor sources.
//! - [`pipeline`]: typed passes chained over an opened model, written once (the library API
//!   `build` and the commands use).
//! - [`cli`]: the command line.

pub mod arch;
pub mod build;
pub mod chat_template;
pub mod cli;
pub mod eval;
pub mod evolve;
pub mod export;
pub mod generate;
pub mod infer;
pub mod merge;
pub mod meta_carry;
pub mod model;
pub mod moe_build;
pub mod passes;
pub mod paths;
pub mod pipeline;
pub mod progress;
pub mod sample;
pub mod stream;
pub mod tokenizer;
pub mod yaml;
