//! Tokenizer metadata. TODO(helper).
