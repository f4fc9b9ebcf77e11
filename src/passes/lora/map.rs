//! Adapters → edits of GGUF-named base tensors.
//!
//! A PEFT module `M` edits the HF tensor `M.weight` (and `M.bias` for `lora_B.bias`), which
//! the architecture registry maps to a GGUF name and a layout fix. ΔW = s·B·A in HF layout
//! becomes ΔW in GGUF layout by the same fix: for Llama Q/K (`PermuteQk`) the rows of ΔW are
//! permuted like W's, which is permuting the rows of B (and of a DoRA magnitude vector).
//! Phi-3's `qkv_proj` / `gate_up_proj` are fused in HF as in GGUF, so they map 1:1; a LoRA on
//! separate q/k/v (gate/up) modules lands on its row range of the fused tensor. Likewise a
//! LoRA on one expert of a Mixture-of-Experts model (`...experts.E.w1`, `...experts.E.gate_proj`)
//! lands on expert E's rows of the stacked `ffn_*_exps` tensor (its rows are the experts'
//! matrices one after the other).

use std::collections::HashMap;

use llmtool_formats::{GgmlType, TensorInfo, TensorSource};

use super::peft::PeftAdapter;
use super::{Adapter, LoraError};
use crate::arch::{apply_fix, Arch, TensorFix};

/// ΔW = scale · b·a: `b` `[n_out, r]`, `a` `[r, n_in]` row-major, in the base tensor's GGUF
/// layout (row = ne[1] index, ne[0] = n_in).
#[derive(Debug, Clone)]
pub struct LowRank {
    pub r: usize,
    pub n_in: usize,
    pub n_out: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    /// Adapter scaling × the user's scale.
    pub scale: f32,
}

#[derive(Debug, Clone)]
pub enum EditKind {
    /// W += ΔW.
    Add(LowRank),
    /// W' = m / ‖W + ΔW‖_row · (W + ΔW) (DoRA).
    Dora(LowRank, Vec<f32>),
    /// W = values (GGUF layout).
    Replace(Vec<f32>),
}

/// One change to one base tensor, with where it comes from (for messages).
#[derive(Debug, Clone)]
pub struct Edit {
    pub kind: EditKind,
    pub origin: String,
}

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_from(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Applies a row fix to a row-major f32 matrix `[rows, cols]`.
pub(crate) fn fix_rows(
    fix: &TensorFix,
    name: &str,
    rows: usize,
    cols: usize,
    data: Vec<f32>,
) -> Result<Vec<f32>, String> {
    match fix {
        TensorFix::Copy => Ok(data),
        TensorFix::PermuteQk { .. } | TensorFix::UnpermuteQk { .. } => {
            let ne = if cols == 1 { vec![rows as u64] } else { vec![cols as u64, rows as u64] };
            let info = TensorInfo::new(name, GgmlType::F32, ne);
            apply_fix(fix, &info, &f32_bytes(&data)).map(|(_, b)| f32_from(&b)).map_err(|e| e.to_string())
        }
        TensorFix::AddOne | TensorFix::SubtractOne => Err("a norm offset tensor cannot take a LoRA delta".into()),
    }
}

/// Which base tensors change, and how, for `adapters` applied in order with their scales.
/// `config` is the base's HF config (or one made from its GGUF metadata) for the name map.
pub fn plan_edits(
    arch: &dyn Arch,
    config: &serde_json::Value,
    base: &dyn TensorSource,
    adapters: &[(Adapter, f32)],
) -> Result<HashMap<String, Vec<Edit>>, LoraError> {
    let mut edits: HashMap<String, Vec<Edit>> = HashMap::new();
    for (adapter, user_scale) in adapters {
        match adapter {
            Adapter::Peft(p) => plan_peft(arch, config, base, p, *user_scale, &mut edits)?,
            Adapter::Gguf(g) => {
                if g.arch != arch.gguf_arch() {
                    return Err(LoraError::Config {
                        path: g.path.clone(),
                        key: "general.architecture".into(),
                        reason: format!("adapter is for '{}', the base is '{}'", g.arch, arch.gguf_arch()),
                    });
                }
                for t in &g.tensors {
                    let target = |reason: String| LoraError::Target {
                        path: g.path.clone(),
                        module: t.tensor.clone(),
                        tensor: t.tensor.clone(),
                        reason,
                    };
                    let info =
                        base.tensor_info(&t.tensor).ok_or_else(|| target("no such tensor in the base".into()))?;
                    check_shape(info, t.n_in, t.n_out).map_err(target)?;
                    let lr = LowRank {
                        r: t.r,
                        n_in: t.n_in,
                        n_out: t.n_out,
                        a: t.a.clone(),
                        b: t.b.clone(),
                        scale: (t.scaling * *user_scale as f64) as f32,
                    };
                    edits
                        .entry(t.tensor.clone())
                        .or_default()
                        .push(Edit { kind: EditKind::Add(lr), origin: format!("{} ({})", g.path.display(), t.tensor) });
                }
            }
        }
    }
    for (name, list) in &edits {
        let info = base.tensor_info(name).expect("planned from base infos");
        let plain = matches!(info.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        if !plain && !llmtool_kernels::quant::can_quantize(info.ty) {
            return Err(LoraError::Base {
                tensor: name.clone(),
                reason: format!("type {} cannot be re-quantized after the merge", info.ty.name()),
            });
        }
        if info.ty.is_quantized() {
            if let Some(e) = list.iter().find(|e| matches!(e.kind, EditKind::Dora(..))) {
                return Err(LoraError::Base {
                    tensor: name.clone(),
                    reason: format!(
                        "DoRA from {} needs the exact base weights to compute its row norms; the base is {} (quantized): merge into an F32/F16/BF16 base",
                        e.origin,
                        info.ty.name()
                    ),
                });
            }
        }
    }
    Ok(edits)
}

fn check_shape(info: &TensorInfo, n_in: usize, n_out: usize) -> Result<(), String> {
    let ok = match info.ne.as_slice() {
        [a, b] => *a as usize == n_in && *b as usize == n_out,
        // stacked experts: all experts' rows
        [a, b, c] => *a as usize == n_in && (*b * *c) as usize == n_out,
        [a] => n_in == 1 && *a as usize == n_out,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "shape mismatch: the adapter gives [{n_out}, {n_in}] (out, in), the base tensor '{}' is {:?} (PyTorch order)",
            info.name,
            info.shape()
        ))
    }
}

fn plan_peft(
    arch: &dyn Arch,
    config: &serde_json::Value,
    base: &dyn TensorSource,
    p: &PeftAdapter,
    user_scale: f32,
    edits: &mut HashMap<String, Vec<Edit>>,
) -> Result<(), LoraError> {
    let path = p.dir.join("adapter_model.safetensors");
    let map = |module: &str, hf: &str| -> Result<(String, TensorFix, TensorInfo), LoraError> {
        let target = |reason: String| LoraError::Target {
            path: path.clone(),
            module: module.to_string(),
            tensor: hf.to_string(),
            reason,
        };
        if let Some(sl) = arch.hf_expert_slice(hf, config).map_err(|e| target(e.to_string()))? {
            return Err(target(format!(
                "expert {} of the stacked '{}': a full expert tensor (modules_to_save) is not supported",
                sl.index, sl.gguf
            )));
        }
        let m = arch
            .hf_to_gguf_tensor(hf, config)
            .map_err(|e| target(format!("not a tensor of this {} base: {e}", arch.gguf_arch())))?
            .ok_or_else(|| target(format!("dropped by the {} mapping (tied or unused)", arch.gguf_arch())))?;
        let info = base
            .tensor_info(&m.name)
            .ok_or_else(|| target(format!("maps to '{}', which is not in the base", m.name)))?
            .clone();
        Ok((m.name, m.fix, info))
    };
    // Saved base layers / modules_to_save first: PEFT loads them, then merges the LoRA on top.
    for t in &p.full {
        let module = t.name.rsplit_once('.').map_or(t.name.as_str(), |x| x.0).to_string();
        let (name, fix, info) = map(&module, &t.name)?;
        let target = |reason: String| LoraError::Target {
            path: path.clone(),
            module: module.clone(),
            tensor: t.name.clone(),
            reason,
        };
        if info.shape() != t.shape {
            return Err(target(format!("shape {:?}, the base tensor '{name}' is {:?}", t.shape, info.shape())));
        }
        let st = TensorInfo::from_shape(&name, GgmlType::F32, &t.shape);
        let (_, bytes) = apply_fix(&fix, &st, &f32_bytes(&t.data)).map_err(|e| target(e.to_string()))?;
        edits.entry(name).or_default().push(Edit {
            kind: EditKind::Replace(f32_from(&bytes)),
            origin: format!("{} ({})", path.display(), t.name),
        });
    }
    for m in &p.modules {
        let hf = format!("{}.weight", m.module);
        let target = |reason: String| LoraError::Target {
            path: path.clone(),
            module: m.module.clone(),
            tensor: hf.clone(),
            reason,
        };
        let expert = arch.hf_expert_slice(&hf, config).map_err(|e| target(e.to_string()))?;
        let (name, fix, info, n_out, b) = match fused_part(arch, config, &m.module).map_err(&target)? {
            _ if expert.is_some() => {
                // one expert of a stacked tensor: the delta fills that expert's rows
                let sl = expert.expect("checked");
                let info = base
                    .tensor_info(&sl.gguf)
                    .ok_or_else(|| target(format!("maps to '{}', which is not in the base", sl.gguf)))?
                    .clone();
                if m.magnitude.is_some() || m.bias.is_some() {
                    return Err(target("DoRA / lora_bias on one expert of a stacked tensor is not supported".into()));
                }
                let (rows, n_exp) = (info.ne.get(1).copied().unwrap_or(0) as usize, sl.count as usize);
                if info.ne.len() != 3 || info.ne[2] as usize != n_exp || rows != m.n_out {
                    return Err(target(format!(
                        "{} output rows for expert {} of '{}', whose shape is {:?} (PyTorch order)",
                        m.n_out,
                        sl.index,
                        sl.gguf,
                        info.shape()
                    )));
                }
                let e = sl.index as usize;
                let mut b = vec![0f32; rows * n_exp * m.r];
                b[e * rows * m.r..(e + 1) * rows * m.r].copy_from_slice(&m.b);
                (sl.gguf, TensorFix::Copy, info, rows * n_exp, b)
            }
            Some((fused_hf, rows)) => {
                // q/k/v (gate/up) LoRA of a model whose GGUF (and HF Phi-3) fuses them: the
                // delta fills its row range of the fused tensor, zeros elsewhere.
                let (name, fix, info) = map(&m.module, &fused_hf)?;
                let n_fused = info.ne.get(1).copied().unwrap_or(0) as usize;
                if m.magnitude.is_some() || m.bias.is_some() {
                    return Err(target("DoRA / lora_bias on one part of a fused tensor is not supported".into()));
                }
                if rows.len() != m.n_out || rows.end > n_fused {
                    return Err(target(format!(
                        "{} output rows; its part {rows:?} of '{name}' ({n_fused} rows) has {}",
                        m.n_out,
                        rows.len()
                    )));
                }
                let mut b = vec![0f32; n_fused * m.r];
                b[rows.start * m.r..rows.end * m.r].copy_from_slice(&m.b);
                (name, fix, info, n_fused, b)
            }
            None => {
                let (name, fix, info) = map(&m.module, &hf)?;
                (name, fix, info, m.n_out, m.b.clone())
            }
        };
        check_shape(&info, m.n_in, n_out).map_err(&target)?;
        let b = fix_rows(&fix, &name, n_out, m.r, b).map_err(&target)?;
        let lr =
            LowRank { r: m.r, n_in: m.n_in, n_out, a: m.a.clone(), b, scale: (m.scaling * user_scale as f64) as f32 };
        let kind = match &m.magnitude {
            Some(mag) => EditKind::Dora(lr, fix_rows(&fix, &name, m.n_out, 1, mag.clone()).map_err(&target)?),
            None => EditKind::Add(lr),
        };
        edits.entry(name).or_default().push(Edit { kind, origin: format!("{} ({})", path.display(), m.module) });
        if let Some(bias) = &m.bias {
            let hf_b = format!("{}.bias", m.module);
            let (bname, bfix, binfo) = map(&m.module, &hf_b)?;
            check_shape(&binfo, 1, m.n_out).map_err(&target)?;
            let b = fix_rows(&bfix, &bname, m.n_out, 1, bias.clone()).map_err(&target)?;
            let lr = LowRank {
                r: 1,
                n_in: 1,
                n_out: m.n_out,
                a: vec![1.0],
                b,
                scale: (m.scaling * user_scale as f64) as f32,
            };
            edits.entry(bname).or_default().push(Edit {
                kind: EditKind::Add(lr),
                origin: format!("{} ({}.lora_B.bias)", path.display(), m.module),
            });
        }
    }
    Ok(())
}

/// For Phi-3 (fused `qkv_proj` and `gate_up_proj` in HF and GGUF): the fused HF tensor and the
/// row range that a separate `q_proj`/`k_proj`/`v_proj` (`gate_proj`/`up_proj`) LoRA covers.
/// Rows: Q for all heads, then K, then V; gate, then up (src/arch/phi3.rs).
fn fused_part(
    arch: &dyn Arch,
    config: &serde_json::Value,
    module: &str,
) -> Result<Option<(String, std::ops::Range<usize>)>, String> {
    if arch.gguf_arch() != "phi3" {
        return Ok(None);
    }
    let Some((prefix, last)) = module.rsplit_once('.') else { return Ok(None) };
    let get = |k: &str| {
        config.get(k).and_then(serde_json::Value::as_u64).map(|v| v as usize).ok_or(format!("config has no {k}"))
    };
    let (fused, rows) = match last {
        "q_proj" | "k_proj" | "v_proj" => {
            let n_head = get("num_attention_heads")?;
            let n_kv =
                config.get("num_key_value_heads").and_then(serde_json::Value::as_u64).map_or(n_head, |v| v as usize);
            let hd = match config.get("head_dim").and_then(serde_json::Value::as_u64) {
                Some(h) => h as usize,
                None => get("hidden_size")? / n_head.max(1),
            };
            let (q, kv) = (n_head * hd, n_kv * hd);
            let rows = match last {
                "q_proj" => 0..q,
                "k_proj" => q..q + kv,
                _ => q + kv..q + 2 * kv,
            };
            ("qkv_proj", rows)
        }
        "gate_proj" | "up_proj" => {
            let ff = get("intermediate_size")?;
            ("gate_up_proj", if last == "gate_proj" { 0..ff } else { ff..2 * ff })
        }
        _ => return Ok(None),
    };
    Ok(Some((format!("{prefix}.{fused}.weight"), rows)))
}
