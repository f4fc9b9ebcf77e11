//! Writing an [`Extraction`] as a PEFT adapter directory or a llama.cpp GGUF LoRA file,
//! atomically (temp beside the target, fsync, rename).
//!
//! * PEFT (what `PeftModel.from_pretrained` loads, and mergekit 0.1.5's
//!   `make_config_dict` writes): `adapter_model.safetensors` with
//!   `base_model.model.<module>.lora_A.weight` / `lora_B.weight` (embeddings:
//!   `lora_embedding_A` / `lora_embedding_B`), `lora_B.bias`, and the full tensors of
//!   `modules_to_save` under `base_model.model.<tensor>`; `adapter_config.json` with `r` = the
//!   largest rank, `lora_alpha` = r, and per module whose rank differs `rank_pattern` =
//!   `alpha_pattern` = its rank, so every module's scaling is 1.
//! * GGUF (convert_lora_to_gguf.py; llama.cpp src/llama-adapter.cpp): `general.type =
//!   adapter`, `adapter.type = lora`, `adapter.lora.alpha`; `<gguf tensor>.lora_a` ne
//!   `[n_in, r]`, `.lora_b` ne `[r, n_out]` with B's rows in GGUF order (Q/K permuted);
//!   `token_embd` flipped (lora_a ne `[r, n_vocab]`, lora_b ne `[r, n_embd]`). One alpha for
//!   the file: alpha = the largest rank, and the B of a module of smaller rank r is scaled by
//!   r/alpha so that alpha/r·B·A is its delta. Full-rank tensors and bias deltas have no place
//!   in the format (llama.cpp ignores norm vectors, refuses embeddings): they are left out and
//!   named in the returned notes.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use indexmap::IndexMap;
use llmtool_formats::atomic::{AtomicDir, AtomicFile};
use llmtool_formats::gguf::{write_gguf, GgufHeader};
use llmtool_formats::safetensors::{write_safetensors, Dtype, StTensor};
use llmtool_formats::{GgmlType, MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

use super::extract::{ExtractedLora, Extraction, FactorKind};
use super::map::{f32_bytes, fix_rows};
use super::transpose;

const PREFIX: &str = "base_model.model.";

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ExtractWriteError {
    pub path: std::path::PathBuf,
    pub reason: String,
}

fn werr(path: &Path, reason: impl ToString) -> ExtractWriteError {
    ExtractWriteError { path: path.to_path_buf(), reason: reason.to_string() }
}

/// The adapter_config.json of an extraction (mergekit 0.1.5 `make_config_dict`, plus
/// `lora_bias` when bias deltas are saved).
pub fn peft_config(ext: &Extraction, base_name_or_path: &str) -> Value {
    let r = ext.max_rank();
    let pattern: serde_json::Map<String, Value> =
        ext.loras.iter().filter(|l| l.r != r).map(|l| (l.module.clone(), json!(l.r))).collect();
    let mut targets: Vec<&str> = ext.loras.iter().map(|l| l.module.rsplit('.').next().unwrap_or("")).collect();
    targets.sort_unstable();
    targets.dedup();
    json!({
        "base_model_name_or_path": base_name_or_path,
        "peft_type": "LORA",
        "use_rslora": false,
        "target_modules": targets,
        "modules_to_save": ext.saved_modules,
        "task_type": "CAUSAL_LM",
        "r": r,
        "lora_alpha": r,
        "rank_pattern": pattern,
        "alpha_pattern": pattern,
        "lora_dropout": 0.0,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "lora_bias": ext.loras.iter().any(|l| l.bias.is_some()),
    })
}

/// The PEFT tensors (name, shape, data) of one module.
fn peft_tensors(l: &ExtractedLora) -> Vec<(String, Vec<u64>, Cow<'_, [f32]>)> {
    let (r, rows, cols) = (l.r as u64, l.rows as u64, l.cols as u64);
    let m = &l.module;
    let mut out = match l.kind {
        FactorKind::Linear => vec![
            (format!("{PREFIX}{m}.lora_A.weight"), vec![r, cols], Cow::Borrowed(l.right.as_slice())),
            (format!("{PREFIX}{m}.lora_B.weight"), vec![rows, r], Cow::Borrowed(l.left.as_slice())),
        ],
        // ΔW = left·right = (B·A)ᵀ with A = leftᵀ [r, vocab], B = rightᵀ [dim, r]
        FactorKind::Embedding => vec![
            (format!("{PREFIX}{m}.lora_embedding_A"), vec![r, rows], Cow::Owned(transpose(&l.left, l.rows, l.r))),
            (format!("{PREFIX}{m}.lora_embedding_B"), vec![cols, r], Cow::Owned(transpose(&l.right, l.r, l.cols))),
        ],
    };
    if let Some(b) = &l.bias {
        out.push((format!("{PREFIX}{m}.lora_B.bias"), vec![rows], Cow::Borrowed(b.as_slice())));
    }
    out
}

/// Writes `ext` as a PEFT adapter directory at `out`.
pub fn write_peft(
    ext: &Extraction,
    out: &Path,
    base_name_or_path: &str,
    force: bool,
) -> Result<u64, ExtractWriteError> {
    let mut tensors: Vec<(String, Vec<u64>, Cow<'_, [f32]>)> = ext.loras.iter().flat_map(peft_tensors).collect();
    for s in &ext.saved {
        tensors.push((format!("{PREFIX}{}", s.name), s.shape.clone(), Cow::Borrowed(s.data.as_slice())));
    }
    let sts: Vec<StTensor> = tensors.iter().map(|(n, s, _)| StTensor::new(n.clone(), Dtype::F32, s.clone())).collect();
    let mut md = IndexMap::new();
    md.insert("format".to_string(), "pt".to_string());
    let dir = AtomicDir::create(out, force).map_err(|e| werr(out, e))?;
    let st_path = dir.path().join("adapter_model.safetensors");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&st_path).map_err(|e| werr(&st_path, e))?);
    let written = write_safetensors(&mut f, &sts, Some(&md), |i, _| Ok(Cow::Owned(f32_bytes(&tensors[i].2))), |_| {})
        .map_err(|e| werr(&st_path, e))?;
    f.flush().map_err(|e| werr(&st_path, e))?;
    drop(f);
    let cfg_path = dir.path().join("adapter_config.json");
    let text = serde_json::to_string_pretty(&peft_config(ext, base_name_or_path)).expect("JSON serializes") + "\n";
    std::fs::write(&cfg_path, text).map_err(|e| werr(&cfg_path, e))?;
    dir.commit().map_err(|e| werr(out, e))?;
    Ok(written)
}

/// Writes `ext` as a llama.cpp GGUF LoRA file at `out`. Returns notes on what the format
/// cannot hold (left out).
pub fn write_gguf_lora(ext: &Extraction, out: &Path, force: bool) -> Result<Vec<String>, ExtractWriteError> {
    let alpha = ext.max_rank();
    let mut infos = Vec::new();
    let mut data: Vec<Vec<f32>> = Vec::new();
    for l in &ext.loras {
        // llama.cpp applies alpha/r (r = lora_b ne[0]): scale B by r/alpha to keep ΔW.
        let scale = l.r as f32 / alpha as f32;
        let (a_ne, a, b_ne, b) = match l.kind {
            FactorKind::Embedding => {
                (vec![l.r as u64, l.rows as u64], l.left.clone(), vec![l.r as u64, l.cols as u64], {
                    transpose(&l.right, l.r, l.cols)
                })
            }
            FactorKind::Linear => {
                let b = fix_rows(&l.to_gguf, &l.tensor, l.rows, l.r, l.left.clone()).map_err(|e| werr(out, e))?;
                (vec![l.cols as u64, l.r as u64], l.right.clone(), vec![l.r as u64, l.rows as u64], b)
            }
        };
        infos.push(TensorInfo::new(format!("{}.lora_a", l.tensor), GgmlType::F32, a_ne));
        data.push(a);
        infos.push(TensorInfo::new(format!("{}.lora_b", l.tensor), GgmlType::F32, b_ne));
        data.push(b.into_iter().map(|x| x * scale).collect());
    }
    let mut notes = Vec::new();
    if !ext.saved.is_empty() {
        notes.push(format!(
            "GGUF LoRA output: full-rank tensors of {} left out (llama.cpp adapters hold only lora_a/lora_b pairs; use the PEFT output for them)",
            ext.saved_modules.join(", ")
        ));
    }
    let biased: Vec<&str> = ext.loras.iter().filter(|l| l.bias.is_some()).map(|l| l.module.as_str()).collect();
    if !biased.is_empty() {
        notes.push(format!("GGUF LoRA output: bias deltas of {} left out (no place in the format)", biased.join(", ")));
    }
    let mut md = Metadata::new();
    md.insert("general.architecture", MetaValue::String(ext.arch.to_string()));
    md.insert("general.type", MetaValue::String("adapter".into()));
    md.insert("adapter.type", MetaValue::String("lora".into()));
    md.insert("adapter.lora.alpha", MetaValue::F32(alpha as f32));
    let header = GgufHeader::new(md, infos).map_err(|e| werr(out, e))?;
    let mut file = AtomicFile::create(out, force).map_err(|e| werr(out, e))?;
    write_gguf(file.writer(), &header, |i, _| Ok(Cow::Owned(f32_bytes(&data[i]))), |_| {}).map_err(|e| werr(out, e))?;
    file.commit().map_err(|e| werr(out, e))?;
    Ok(notes)
}
