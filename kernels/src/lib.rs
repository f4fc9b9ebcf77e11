//! llmtool-kernels: number crunching with no I/O.
//!
//! - [`ggml_type`]: the GGML tensor type ids with their block geometry.
//! - [`convert`]: f32 ⇄ f16 ⇄ bf16 element conversion (via `half`).
//! - [`dequant`]: block dequantizers Q4_0, Q4_1, Q8_0 (scalar reference = the specification,
//!   rayon-parallel path over chunks of blocks).

pub mod convert;
pub mod dequant;
pub mod error;
pub mod ggml_type;

pub use error::KernelError;
pub use ggml_type::GgmlType;
