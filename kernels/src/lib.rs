//! llmtool-kernels: number crunching with no I/O.
//!
//! - [`ggml_type`]: the GGML tensor type ids with their block geometry.
//! - [`convert`]: f32 ⇄ f16 ⇄ bf16 element conversion (via `half`).
//! - [`dequant`]: block dequantizers Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (scalar reference = the specification,
//!   rayon-parallel path over chunks of blocks).
//! - [`attention`]: fused causal attention over a key/value cache (packing-free register tiles).
//! - [`vexp`]: vectorized `exp` (softmax, SiLU).
//! - [`quant`]: block quantizers Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, byte-identical to ggml's
//!   `quantize_row_*_ref` (scalar reference + rayon-parallel path).

pub mod attention;
pub mod convert;
pub mod dequant;
pub mod error;
pub mod ggml_type;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod matmul;
pub mod quant;
mod shared_out;
pub mod vexp;

pub use error::KernelError;
pub use ggml_type::GgmlType;
