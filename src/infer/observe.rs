//! A hook on the core's matrix products: an observer sees each weight's input activations
//! before the product (what llama.cpp's `ggml_backend_sched_eval_callback` shows
//! `llama-imatrix`: `src1` of every `MUL_MAT`), e.g. to accumulate an importance matrix.

/// Sees the inputs of matrix products. Called from the forward pass, once per product, with
/// `x` = `n_tokens` rows of `k` activations (f32, before any activation quantization).
pub trait MatmulObserver: Send + Sync {
    /// Whether `observe` wants the inputs of products with this weight (GGUF name).
    fn wants(&self, weight: &str, n_tokens: usize) -> bool;
    fn observe(&self, weight: &str, x: &[f32], n_tokens: usize, k: usize);
}
