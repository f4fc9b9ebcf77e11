//! The layout fixes applied to tensor bytes at the HF <-> GGUF edge.
//!
//! * `PermuteQk` / `UnpermuteQk` — llama.cpp's Llama graph applies RoPE to adjacent pairs
//!   (x[2i], x[2i+1]) while HF's Llama rotates halves (x[i], x[i + d/2]); the converter
//!   reorders the rows of Q and K inside each head (convert_hf_to_gguf.py
//!   `LlamaModel.permute`: reshape(n_head, 2, d/2, ...).swapaxes(1, 2)). The rows are
//!   moved whole, so any tensor type works, quantized ones included, as long as a row (the
//!   outermost PyTorch dimension) holds whole blocks — which GGUF guarantees since blocks
//!   never cross `ne[0]`. 1-D tensors (biases) permute their elements.
//! * `AddOne` / `SubtractOne` — Gemma's RMSNorm computes x * (1 + w); llama.cpp stores
//!   w + 1 (GemmaModel.modify_tensors). Input F32/F16/BF16; the output is always F32, as
//!   llama.cpp keeps 1-D tensors (norms) in F32, and both directions produce F32 so that
//!   a norm round trips without a second rounding. w -> (w + 1) - 1 is exact whenever w is
//!   a multiple of 2^-23 with |w| < 1 (every bf16 value of magnitude >= 2^-16, every f16
//!   normal value >= 2^-13 in magnitude); smaller weights lose their low bits, the same as in
//!   llama.cpp.

use llmtool_formats::{GgmlType, TensorInfo};

use super::{ArchError, TensorFix};

fn bad(info: &TensorInfo, fix: &'static str, reason: String) -> ArchError {
    ArchError::BadTensor { name: info.name.clone(), fix, reason }
}

fn fix_name(fix: &TensorFix) -> &'static str {
    match fix {
        TensorFix::Copy => "Copy",
        TensorFix::PermuteQk { .. } => "PermuteQk",
        TensorFix::UnpermuteQk { .. } => "UnpermuteQk",
        TensorFix::AddOne => "AddOne",
        TensorFix::SubtractOne => "SubtractOne",
    }
}

/// Applies `fix` to one tensor's bytes (laid out as `info` says) and returns the new info
/// (the dtype changes to F32 for AddOne/SubtractOne) and bytes.
pub fn apply_fix(fix: &TensorFix, info: &TensorInfo, bytes: &[u8]) -> Result<(TensorInfo, Vec<u8>), ArchError> {
    let name = fix_name(fix);
    let expected = info
        .n_bytes()
        .ok_or_else(|| bad(info, name, format!("shape {:?} is not valid for {}", info.ne, info.ty.name())))?;
    if bytes.len() as u64 != expected {
        return Err(bad(
            info,
            name,
            format!("expected {expected} bytes for {:?} {}, found {}", info.ne, info.ty.name(), bytes.len()),
        ));
    }
    match *fix {
        TensorFix::Copy => Ok((info.clone(), bytes.to_vec())),
        TensorFix::PermuteQk { n_head } => permute_rows(info, bytes, n_head, false).map(|b| (info.clone(), b)),
        TensorFix::UnpermuteQk { n_head } => permute_rows(info, bytes, n_head, true).map(|b| (info.clone(), b)),
        TensorFix::AddOne => add_scalar(info, bytes, 1.0, name),
        TensorFix::SubtractOne => add_scalar(info, bytes, -1.0, name),
    }
}

/// Rows are the outermost PyTorch dimension (`ne.last()`); a row of a 1-D tensor is one element.
fn permute_rows(info: &TensorInfo, bytes: &[u8], n_head: u32, inverse: bool) -> Result<Vec<u8>, ArchError> {
    let name = if inverse { "UnpermuteQk" } else { "PermuteQk" };
    let rows = match info.ne.as_slice() {
        [] => return Err(bad(info, name, "tensor has no dimensions".into())),
        [n] => *n,
        ne => ne[ne.len() - 1],
    };
    if info.ne.len() == 1 && info.ty.block_size() != 1 {
        return Err(bad(info, name, format!("a 1-D {} tensor has no whole-element rows", info.ty.name())));
    }
    let n_head = n_head as u64;
    if n_head == 0 || rows % (2 * n_head) != 0 {
        return Err(bad(info, name, format!("{rows} rows are not a multiple of 2 x {n_head} heads")));
    }
    let row_bytes = (bytes.len() as u64 / rows) as usize;
    let half = (rows / n_head / 2) as usize; // d/2 rows per rotary half
    let n_head = n_head as usize;
    let mut out = vec![0u8; bytes.len()];
    for h in 0..n_head {
        for part in 0..2 {
            for i in 0..half {
                // HF row (h, part, i) <-> GGUF row (h, i, part)
                let hf = (h * 2 + part) * half + i;
                let gg = (h * half + i) * 2 + part;
                let (src, dst) = if inverse { (gg, hf) } else { (hf, gg) };
                out[dst * row_bytes..(dst + 1) * row_bytes]
                    .copy_from_slice(&bytes[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    Ok(out)
}

fn add_scalar(
    info: &TensorInfo,
    bytes: &[u8],
    delta: f32,
    name: &'static str,
) -> Result<(TensorInfo, Vec<u8>), ArchError> {
    let vals = to_f32(info.ty, bytes)
        .ok_or_else(|| bad(info, name, format!("element type {} is not F32, F16 or BF16", info.ty.name())))?;
    let mut out = Vec::with_capacity(vals.len() * 4);
    for v in vals {
        out.extend_from_slice(&(v + delta).to_le_bytes());
    }
    Ok((TensorInfo { name: info.name.clone(), ty: GgmlType::F32, ne: info.ne.clone() }, out))
}

/// F32/F16/BF16 bytes as f32 values (the norm offsets are defined on floats only).
fn to_f32(ty: GgmlType, bytes: &[u8]) -> Option<Vec<f32>> {
    if !matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return None;
    }
    let mut out = vec![0f32; bytes.len() / ty.type_size()];
    llmtool_kernels::convert::to_f32(ty, bytes, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_tensor(name: &str, ne: Vec<u64>) -> (TensorInfo, Vec<u8>) {
        let n: u64 = ne.iter().product();
        let bytes = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        (TensorInfo::new(name, GgmlType::F32, ne), bytes)
    }

    #[test]
    fn permute_then_unpermute_is_identity() {
        for (rows, heads) in [(8u64, 1u32), (16, 2), (64, 4), (32, 2)] {
            let (info, bytes) = f32_tensor("q", vec![3, rows]);
            let (_, p) = apply_fix(&TensorFix::PermuteQk { n_head: heads }, &info, &bytes).unwrap();
            assert_ne!(p, bytes);
            let (_, u) = apply_fix(&TensorFix::UnpermuteQk { n_head: heads }, &info, &p).unwrap();
            assert_eq!(u, bytes);
        }
    }

    #[test]
    fn permute_moves_rows_like_llama_cpp() {
        // 1 head, d = 4 rows: HF halves [r0 r1 | r2 r3] -> interleaved [r0 r2 r1 r3].
        let (info, bytes) = f32_tensor("q", vec![1, 4]);
        let (_, p) = apply_fix(&TensorFix::PermuteQk { n_head: 1 }, &info, &bytes).unwrap();
        let vals: Vec<f32> = p.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(vals, vec![0.0, 2.0, 1.0, 3.0]);
    }

    #[test]
    fn permute_rejects_bad_shapes() {
        let (info, bytes) = f32_tensor("q", vec![2, 6]);
        assert!(matches!(
            apply_fix(&TensorFix::PermuteQk { n_head: 2 }, &info, &bytes),
            Err(ArchError::BadTensor { .. })
        ));
        assert!(apply_fix(&TensorFix::PermuteQk { n_head: 0 }, &info, &bytes).is_err());
        assert!(apply_fix(&TensorFix::Copy, &info, &bytes[1..]).is_err());
    }

    #[test]
    fn add_one_from_bf16_and_f16_gives_f32() {
        let w = [0.5f32, -0.25, 1.5, 0.0];
        for ty in [GgmlType::F16, GgmlType::BF16] {
            let bytes: Vec<u8> = w
                .iter()
                .flat_map(|&x| match ty {
                    GgmlType::F16 => half::f16::from_f32(x).to_bits().to_le_bytes(),
                    _ => half::bf16::from_f32(x).to_bits().to_le_bytes(),
                })
                .collect();
            let info = TensorInfo::new("n", ty, vec![4]);
            let (oi, ob) = apply_fix(&TensorFix::AddOne, &info, &bytes).unwrap();
            assert_eq!(oi.ty, GgmlType::F32);
            let vals: Vec<f32> = ob.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(vals, vec![1.5, 0.75, 2.5, 1.0]);
            let (_, back) = apply_fix(&TensorFix::SubtractOne, &oi, &ob).unwrap();
            let back: Vec<f32> = back.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(back, w);
        }
        let q = TensorInfo::new("n", GgmlType::Q8_0, vec![32]);
        assert!(apply_fix(&TensorFix::AddOne, &q, &[0u8; 34]).is_err());
    }
}
