//! A hook on the core's matrix products: an observer sees each weight's input activations
//! before the product (what llama.cpp's `ggml_backend_sched_eval_callback` shows
//! `llama-imatrix`: `src1` of every `MUL_MAT`), e.g. to accumulate an importance matrix.

/// Sees the inputs of matrix products. Called from the forward pass, once per product, with
/// `x` = `n_tokens` rows of `k` activations (f32, before any activation quantization).
pub trait MatmulObserver: Send + Sync {
    /// Whether `observe` wants the inputs of products with this weight (GGUF name).
    fn wants(&self, weight: &str, n_tokens: usize) -> bool;
    fn observe(&self, weight: &str, x: &[f32], n_tokens: usize, k: usize);

    /// Mixture of Experts: the `n_rows` input rows (`x`, `k` wide) of expert `expert` (of
    /// `n_expert`) of a stacked expert weight — one row per (token, expert) routing, what
    /// llama-imatrix sees of a `MUL_MAT_ID` (always asked for, whatever the row count).
    fn observe_expert(&self, _weight: &str, _expert: usize, _n_expert: usize, _x: &[f32], _n_rows: usize, _k: usize) {}
}

/// The name under which an observer is shown the input of layer `il`: the residual stream
/// before the block, `n_tokens × n_embd` (transformers' `hidden_states[il]`). Not a weight
/// name, so observers that want `blk.*` weights never see it.
pub fn layer_input_name(il: usize) -> String {
    format!("layer_input.{il}")
}
