//! The convert pass: choosing output element types and re-typing tensors lazily.
//!
//! Type rules (llama.cpp `convert_hf_to_gguf.py` conventions where they exist):
//! - GGUF output, no `--outtype`: float tensors keep their type, except 1-D tensors (norms,
//!   biases), which GGUF stores as F32 — llama.cpp keeps them F32 because ggml's CPU ops
//!   want F32 there. Quantized tensors stay as they are.
//! - GGUF output with `--outtype T`: tensors of 2+ dims become T, 1-D tensors and norms
//!   (`*_norm.weight`, also 2-D ones like Command R+'s per-head q/k norms) F32.
//! - HF output: HF checkpoints hold one float dtype. Without `--outtype` it is the dominant
//!   float type of the 2+-D tensors (so HF→GGUF→HF restores bf16/f16 norms exactly, since
//!   they were widened losslessly); when every matrix is quantized there is no such type and
//!   F32 is used, which holds every dequantized value exactly. With `--outtype T` all float
//!   tensors become T. Integer tensors are never re-typed.

use std::borrow::Cow;

use llmtool_formats::{FormatError, GgmlType, TensorInfo, TensorSource};
use llmtool_kernels::convert;

/// `--outtype` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutType {
    F32,
    F16,
    Bf16,
}

impl OutType {
    /// The output type of a float GGML type (`None` for other types).
    pub fn from_ggml(ty: GgmlType) -> Option<OutType> {
        match ty {
            GgmlType::F32 => Some(OutType::F32),
            GgmlType::F16 => Some(OutType::F16),
            GgmlType::BF16 => Some(OutType::Bf16),
            _ => None,
        }
    }

    pub fn ggml(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::Bf16 => GgmlType::BF16,
        }
    }
}

fn is_retypable(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::F64) || ty.is_quantized()
}

/// Output types for a GGUF target.
pub fn gguf_types(infos: &[TensorInfo], outtype: Option<OutType>) -> Vec<GgmlType> {
    infos
        .iter()
        .map(|t| {
            if !is_retypable(t.ty) {
                return t.ty;
            }
            // convert_hf_to_gguf.py keeps 1-D tensors and every `*_norm.weight` F32 (Command
            // R+'s per-head q/k norms are 2-D), and the MoE routers.
            let one_d = t.ne.len() <= 1 || t.name.ends_with("_norm.weight") || crate::arch::is_router_tensor(&t.name);
            match outtype {
                None if one_d && !t.ty.is_quantized() => GgmlType::F32,
                None => t.ty,
                Some(_) if one_d => GgmlType::F32,
                Some(o) => o.ggml(),
            }
        })
        .collect()
}

/// The float type an HF checkpoint of these tensors should use (see module docs).
pub fn hf_model_dtype(infos: &[TensorInfo], outtype: Option<OutType>) -> GgmlType {
    if let Some(o) = outtype {
        return o.ggml();
    }
    let mut counts = [0usize; 3];
    for t in infos.iter().filter(|t| t.ne.len() >= 2) {
        match t.ty {
            GgmlType::F32 => counts[0] += 1,
            GgmlType::F16 => counts[1] += 1,
            GgmlType::BF16 => counts[2] += 1,
            _ => {}
        }
    }
    let types = [GgmlType::F32, GgmlType::F16, GgmlType::BF16];
    match counts.iter().enumerate().max_by_key(|&(i, c)| (*c, std::cmp::Reverse(i))) {
        Some((i, &c)) if c > 0 => types[i],
        _ => GgmlType::F32,
    }
}

/// Output types for an HF target: every float or quantized tensor in the model dtype.
pub fn hf_types(infos: &[TensorInfo], model_dtype: GgmlType) -> Vec<GgmlType> {
    infos.iter().map(|t| if is_retypable(t.ty) { model_dtype } else { t.ty }).collect()
}

/// Re-encodes one tensor's bytes from `from` to `to` (dequantizing block types); borrowed
/// when nothing changes.
pub fn retype_bytes<'a>(
    name: &str,
    from: GgmlType,
    to: GgmlType,
    bytes: Cow<'a, [u8]>,
) -> Result<Cow<'a, [u8]>, FormatError> {
    if from == to {
        return Ok(bytes);
    }
    convert::convert_bytes(from, to, &bytes)
        .map(Cow::Owned)
        .map_err(|e| FormatError::Other(format!("tensor '{name}': {e}")))
}

/// A source whose tensors are those of `inner` re-typed to the given types.
pub struct Retyped<'a> {
    inner: Inner<'a>,
    infos: Vec<TensorInfo>,
}

/// The re-typed source, borrowed or owned (a pass's computed output, e.g. a MoE).
enum Inner<'a> {
    Borrowed(&'a dyn TensorSource),
    Owned(Box<dyn TensorSource + 'a>),
}

fn retyped_infos(inner: &dyn TensorSource, types: &[GgmlType]) -> Vec<TensorInfo> {
    inner
        .tensor_infos()
        .iter()
        .zip(types)
        .map(|(t, &ty)| TensorInfo { name: t.name.clone(), ty, ne: t.ne.clone() })
        .collect()
}

impl<'a> Retyped<'a> {
    /// `inner`'s tensors in its order, tensor i re-typed to `types[i]`.
    pub fn new(inner: &'a dyn TensorSource, types: &[GgmlType]) -> Self {
        Retyped { infos: retyped_infos(inner, types), inner: Inner::Borrowed(inner) }
    }

    /// Like [`Retyped::new`], owning `inner`.
    pub fn owning(inner: Box<dyn TensorSource + 'a>, types: &[GgmlType]) -> Self {
        Retyped { infos: retyped_infos(inner.as_ref(), types), inner: Inner::Owned(inner) }
    }

    /// The tensors `infos` names (each one of `inner`'s, same shape), in that order and
    /// with those types — e.g. a quantization plan in llama.cpp's tensor order.
    pub fn from_infos(inner: &'a dyn TensorSource, infos: Vec<TensorInfo>) -> Self {
        Retyped { inner: Inner::Borrowed(inner), infos }
    }

    fn inner(&self) -> &dyn TensorSource {
        match &self.inner {
            Inner::Borrowed(s) => *s,
            Inner::Owned(s) => s.as_ref(),
        }
    }
}

impl TensorSource for Retyped<'_> {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let inner = self.inner();
        let from = inner.tensor_info(name).ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))?.ty;
        let to = self.tensor_info(name).expect("same names as inner").ty;
        retype_bytes(name, from, to, inner.tensor_bytes(name)?)
    }

    fn release(&self, name: &str) {
        self.inner().release(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, ty: GgmlType, ne: &[u64]) -> TensorInfo {
        TensorInfo::new(name, ty, ne.to_vec())
    }

    #[test]
    fn gguf_types_keep_matrices_and_widen_vectors() {
        let infos =
            [t("a", GgmlType::BF16, &[64, 64]), t("n", GgmlType::BF16, &[64]), t("q", GgmlType::Q4_1, &[64, 2])];
        assert_eq!(gguf_types(&infos, None), [GgmlType::BF16, GgmlType::F32, GgmlType::Q4_1]);
        assert_eq!(gguf_types(&infos, Some(OutType::F16)), [GgmlType::F16, GgmlType::F32, GgmlType::F16]);
    }

    #[test]
    fn hf_dtype_is_dominant_matrix_type_or_f32() {
        let infos =
            [t("a", GgmlType::BF16, &[64, 64]), t("b", GgmlType::BF16, &[64, 64]), t("n", GgmlType::F32, &[64])];
        assert_eq!(hf_model_dtype(&infos, None), GgmlType::BF16);
        let quant = [t("q", GgmlType::Q4_1, &[64, 2]), t("n", GgmlType::F32, &[64])];
        assert_eq!(hf_model_dtype(&quant, None), GgmlType::F32);
        assert_eq!(hf_model_dtype(&quant, Some(OutType::Bf16)), GgmlType::BF16);
        let ints = [t("i", GgmlType::I32, &[4])];
        assert_eq!(hf_types(&ints, GgmlType::F16), [GgmlType::I32]);
    }
}
