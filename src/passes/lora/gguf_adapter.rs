//! llama.cpp GGUF LoRA adapters (convert_lora_to_gguf.py; read by src/llama-adapter.cpp and
//! tools/export-lora/export-lora.cpp): `general.type = "adapter"`, `adapter.type = "lora"`,
//! `adapter.lora.alpha`; per base tensor `<gguf name>.lora_a` with ne `[n_in, r]` and
//! `<gguf name>.lora_b` with ne `[r, n_out]`, already in GGUF names and layouts (Q/K rows
//! permuted). ΔW = scale · B·A with scale = user · alpha / r (r = lora_b ne[0]), or the user
//! scale alone when alpha is 0 (export-lora.cpp). `token_embd` is flipped: lora_a ne
//! `[r, n_vocab]`, lora_b ne `[r, n_embd]`, ΔW[token][d] = Σ_k a[token][k]·b[d][k].

use std::path::{Path, PathBuf};

use llmtool_formats::gguf::GgufFile;
use llmtool_formats::TensorSource;

use super::{transpose, LoraError};

/// One adapted base tensor: ΔW = scale · b·a, `b` `[n_out, r]`, `a` `[r, n_in]` row-major.
#[derive(Debug, Clone)]
pub struct GgufLora {
    /// Base tensor (GGUF name).
    pub tensor: String,
    pub r: usize,
    pub n_in: usize,
    pub n_out: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    /// alpha / r, or 1 when alpha is 0.
    pub scaling: f64,
}

/// A GGUF LoRA adapter read into memory.
#[derive(Debug, Clone)]
pub struct GgufAdapter {
    pub path: PathBuf,
    pub arch: String,
    pub alpha: f64,
    pub tensors: Vec<GgufLora>,
}

fn read_f32(file: &GgufFile, path: &Path, name: &str) -> Result<(Vec<u64>, Vec<f32>), LoraError> {
    let bad = |reason: String| LoraError::Tensor { path: path.to_path_buf(), tensor: name.to_string(), reason };
    let info = file.tensor_info(name).ok_or_else(|| bad("missing".into()))?.clone();
    let n = info.n_elements().ok_or_else(|| bad("shape overflows".into()))?;
    let bytes = file.tensor_data(name).ok_or_else(|| bad("no data".into()))?;
    // checked against the bytes present before allocating the f32 copy
    if info.n_bytes() != Some(bytes.len() as u64) {
        return Err(bad(format!("{} bytes for ne {:?} {}", bytes.len(), info.ne, info.ty.name())));
    }
    let mut out = vec![0f32; n as usize];
    llmtool_kernels::dequant::dequantize(info.ty, bytes, &mut out).map_err(|e| bad(e.to_string()))?;
    Ok((info.ne.clone(), out))
}

impl GgufAdapter {
    pub fn open(path: &Path) -> Result<GgufAdapter, LoraError> {
        let file = GgufFile::open(path)
            .map_err(|e| LoraError::Format { path: path.to_path_buf(), source: Box::new(e.into()) })?;
        let key_err =
            |key: &str, reason: String| LoraError::Config { path: path.to_path_buf(), key: key.into(), reason };
        let md = &file.metadata;
        match md.get_str("general.type") {
            Some("adapter") => {}
            other => return Err(key_err("general.type", format!("expected \"adapter\", found {other:?}"))),
        }
        match md.get_str("adapter.type") {
            Some("lora") => {}
            other => return Err(key_err("adapter.type", format!("expected \"lora\", found {other:?}"))),
        }
        let arch = md
            .get_str("general.architecture")
            .ok_or_else(|| key_err("general.architecture", "missing".into()))?
            .to_string();
        let alpha = md.get_f64("adapter.lora.alpha").unwrap_or(0.0);
        let mut tensors = Vec::new();
        for info in file.tensor_infos() {
            let Some(base) = info.name.strip_suffix(".lora_a") else {
                if !info.name.ends_with(".lora_b") {
                    return Err(LoraError::Tensor {
                        path: path.to_path_buf(),
                        tensor: info.name.clone(),
                        reason: "not a LoRA tensor (expected <name>.lora_a / <name>.lora_b)".into(),
                    });
                }
                continue;
            };
            let (a_ne, a) = read_f32(&file, path, &info.name)?;
            let b_name = format!("{base}.lora_b");
            let (b_ne, b) = read_f32(&file, path, &b_name)?;
            let bad =
                |reason: String| LoraError::Tensor { path: path.to_path_buf(), tensor: info.name.clone(), reason };
            if a_ne.len() == 3 || b_ne.len() == 3 {
                return Err(bad(format!(
                    "3-D lora_a / lora_b (ne {a_ne:?}, {b_ne:?}): LoRAs of stacked MoE experts in llama.cpp's \
                     GGUF form are not supported; merge the PEFT adapter (per-expert modules) instead"
                )));
            }
            if a_ne.len() != 2 || b_ne.len() != 2 {
                return Err(bad(format!("expected 2-D lora_a and lora_b, found ne {a_ne:?} and {b_ne:?}")));
            }
            let r = b_ne[0] as usize;
            let (n_in, n_out, a, b) = if base.starts_with("token_embd") {
                if a_ne[0] as usize != r {
                    return Err(bad(format!("rank mismatch: lora_a ne {a_ne:?}, lora_b ne {b_ne:?}")));
                }
                // b_rep[token][k] = lora_a[token][k]; a_rep[k][d] = lora_b[d][k]
                (b_ne[1] as usize, a_ne[1] as usize, transpose(&b, b_ne[1] as usize, r), a)
            } else {
                if a_ne[1] as usize != r {
                    return Err(bad(format!("rank mismatch: lora_a ne {a_ne:?}, lora_b ne {b_ne:?}")));
                }
                (a_ne[0] as usize, b_ne[1] as usize, a, b)
            };
            let scaling = if alpha != 0.0 { alpha / r as f64 } else { 1.0 };
            tensors.push(GgufLora { tensor: base.to_string(), r, n_in, n_out, a, b, scaling });
        }
        if tensors.is_empty() {
            return Err(LoraError::Tensor {
                path: path.to_path_buf(),
                tensor: "(file)".into(),
                reason: "no LoRA tensors".into(),
            });
        }
        Ok(GgufAdapter { path: path.to_path_buf(), arch, alpha, tensors })
    }
}
