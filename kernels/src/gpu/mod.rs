//! GPU block codecs: wgpu compute shaders (WGSL) on Vulkan, byte-identical to the CPU
//! reference (`quant::quantize_reference`, `dequant::dequantize_reference`).
//!
//! [`GpuContext`] holds the adapter, device and queue; its [`GpuContext::quantize`] and
//! [`GpuContext::dequantize`] run one of [`supported_types`] over a whole tensor, in slices
//! that fit the device's storage-binding limit. How the shaders stay bit-exact on drivers that
//! may fuse or reassociate float operations, round division loosely, flush denormals or assume
//! no NaN/infinity is described in `shaders/common.wgsl`; the blocks left to the CPU reference
//! (non-finite or extreme inputs, non-finite f16 scales) in `special.rs`.

mod bench;
mod codec;
mod context;
mod error;
mod special;

pub use bench::{bench_codec, BenchResult};
pub use codec::supported_types;
pub use context::{GpuContext, GpuOptions, Op, DEFAULT_SLICE_BYTES};
pub use error::GpuError;
pub use special::{dequantize_cpu_blocks, quantize_cpu_blocks};
