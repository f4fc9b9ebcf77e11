//! Evaluation passes on the inference core: perplexity and KL divergence.
