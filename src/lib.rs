//! llmtool: convert, quantize, merge and validate LLM weights.
