//! Passes: lazy transformations of a tensor source (convert now; quantize, lora, merge later).

pub mod chatvector;
pub mod convert;
pub mod lora;
pub mod quantize;
pub mod quantize_mix;
pub mod quantize_sensitivity;
pub mod quantize_weights;
