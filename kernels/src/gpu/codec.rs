//! The block codecs the GPU runs: per type, its shader and how many blocks one invocation
//! handles (a group whose byte size is a multiple of 4, so invocations never share a word).

use crate::GgmlType;

/// Shared WGSL helpers (exact division, sqrt, f16 conversion, FMA-proof products).
const COMMON: &str = include_str!("shaders/common.wgsl");
/// Shared bindings and byte helpers.
const IO: &str = include_str!("shaders/io.wgsl");
/// The `quantize`/`dequantize` entry points, calling the codec's `quantize_group`/`dequantize_group`.
const ENTRY: &str = include_str!("shaders/entry.wgsl");

/// One GPU block codec.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Codec {
    pub ty: GgmlType,
    /// The type's own shader (`quantize_group` and `dequantize_group`; ENTRY adds the entry points).
    pub shader: &'static str,
    /// Blocks per invocation.
    pub group_blocks: usize,
}

impl Codec {
    /// Elements per group.
    pub fn group_elems(&self) -> usize {
        self.group_blocks * self.ty.block_size()
    }

    /// Encoded bytes per group (a multiple of 4).
    pub fn group_bytes(&self) -> usize {
        self.group_blocks * self.ty.type_size()
    }

    /// The full WGSL source of this codec's module.
    pub fn source(&self) -> String {
        format!("{COMMON}\n{IO}\n{}\n{ENTRY}", self.shader)
    }
}

/// The module of the exact-arithmetic probes (tests only; see `GpuContext::probe`).
pub(crate) fn probe_source() -> String {
    format!("{COMMON}\n{IO}\n{}", include_str!("shaders/probe.wgsl"))
}

const CODECS: &[Codec] = &[
    Codec { ty: GgmlType::Q8_0, shader: include_str!("shaders/q8_0.wgsl"), group_blocks: 2 },
    Codec { ty: GgmlType::Q4_0, shader: include_str!("shaders/q4_0.wgsl"), group_blocks: 2 },
    Codec { ty: GgmlType::Q4_1, shader: include_str!("shaders/q4_1.wgsl"), group_blocks: 1 },
    Codec { ty: GgmlType::Q5_0, shader: include_str!("shaders/q5_0.wgsl"), group_blocks: 2 },
    Codec { ty: GgmlType::Q5_1, shader: include_str!("shaders/q5_1.wgsl"), group_blocks: 1 },
    Codec { ty: GgmlType::Q4_K, shader: include_str!("shaders/q4_k.wgsl"), group_blocks: 1 },
    Codec { ty: GgmlType::Q6_K, shader: include_str!("shaders/q6_k.wgsl"), group_blocks: 2 },
];

/// The codec of `ty`, if the GPU has one.
pub(crate) fn codec(ty: GgmlType) -> Option<&'static Codec> {
    CODECS.iter().find(|c| c.ty == ty)
}

/// The types with GPU quantize and dequantize kernels.
pub fn supported_types() -> Vec<GgmlType> {
    CODECS.iter().map(|c| c.ty).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_whole_words() {
        for c in CODECS {
            assert_eq!(c.group_bytes() % 4, 0, "{}", c.ty.name());
        }
    }
}
