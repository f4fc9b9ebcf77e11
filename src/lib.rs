//! llmtool: convert, quantize, merge and validate LLM weights.

pub mod arch;
pub mod tokenizer;
