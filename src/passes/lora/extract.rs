//! LoRA extraction: a low-rank adapter from the difference of two models, by truncated SVD
//! (`llmtool lora extract`), as mergekit 0.1.5's `mergekit-extract-lora`
//! (`mergekit/scripts/extract_lora.py`) does:
//!
//! * per module ΔW = W_tuned − W_base, both dequantized to f32 in HF layout (llama.cpp's Q/K
//!   row permutation and Gemma's norm offset undone, as the merge inputs are read);
//! * thin SVD ΔW = U·S·Vᵀ (faer, in f64), rank r = min(R, min(rows, cols)) and, with `sv_epsilon`,
//!   at most the number of singular values above it (mergekit's `--max-rank`, `--sv-epsilon`);
//! * B = U_r·√S_r, A = √S_r·V_rᵀ (mergekit's default `--distribute-scale`; without it S goes
//!   to A and B = U_r), lora_alpha = r so PEFT's scaling alpha/r is 1;
//! * the token embedding and the output head (`embed_tokens`, `lm_head`) are saved at full
//!   rank as `modules_to_save` (the tuned tensor), or, with `embed_lora`, decomposed
//!   (`lora_embedding_A/B` for the embedding: the SVD of ΔWᵀ, i.e. A and B swapped and
//!   transposed);
//! * tensors of modules that are not matrices (norms) are saved at full rank as
//!   `modules_to_save`, or left out with `skip_undecomposable`;
//! * a bias of a decomposed module gets its delta as `lora_B.bias`.
//!
//! Deviations from mergekit, each because the merged result is the same or the input is one
//! mergekit cannot read: inputs may be GGUF (quantized ones dequantized); modules equal in
//! both models are left out (mergekit writes them anyway: zero factors, copies of the base);
//! `modules_to_save` lists full module paths, not leaf names (PEFT matches them as suffixes:
//! mergekit's `norm` also wraps every `*_layernorm`, which then must all be saved); with tied
//! embeddings there is no separate `lm_head` to save; `lora_bias: true` is set in the config
//! when bias deltas are written (mergekit writes them without it, and PEFT then drops them
//! with a warning); factors are F32.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use llmtool_formats::{Metadata, TensorInfo};
use rayon::prelude::*;

use super::peft::FullTensor;
use crate::arch::{is_rope_factor_tensor, TensorFix};
use crate::merge::inputs::decode;
use crate::model::Model;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("base {base} is a '{base_arch}' model, tuned {tuned} a '{tuned_arch}' one: extraction needs two models of one architecture")]
    Arch { base: PathBuf, base_arch: String, tuned: PathBuf, tuned_arch: String },
    #[error("'{key}' is {base} in the base and {tuned} in the tuned model: not the same architecture")]
    Hparam { key: String, base: String, tuned: String },
    #[error("tensor '{tensor}' is in {has} but not in {lacks}: not the same architecture")]
    Missing { tensor: String, has: PathBuf, lacks: PathBuf },
    #[error("tensor '{tensor}' has shape {base:?} in the base and {tuned:?} in the tuned model")]
    Shape { tensor: String, base: Vec<u64>, tuned: Vec<u64> },
    #[error("--rank 0: the rank must be at least 1")]
    RankZero,
    #[error(
        "--rank {rank} exceeds min(rows, cols) = {max} of every module selected (largest: '{module}'): no module can have that rank"
    )]
    RankTooLarge { rank: usize, max: usize, module: String },
    #[error("--modules: '{name}' is not a module of this {arch} model (its modules: {known})")]
    UnknownModule { name: String, arch: String, known: String },
    #[error("base and tuned models are equal in every tensor selected: nothing to extract")]
    NothingToExtract,
    #[error("tensor '{tensor}': {reason}")]
    Read { tensor: String, reason: String },
    #[error("module '{module}': SVD failed: {reason}")]
    Svd { module: String, reason: String },
}

/// What to extract, mergekit's options by their llmtool names.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Largest rank of a module (mergekit `--max-rank`); smaller modules get min(rows, cols).
    pub rank: usize,
    /// HF module leaf names to extract (`q_proj`, `embed_tokens`, `input_layernorm` …);
    /// empty: every module, as mergekit does.
    pub modules: Vec<String>,
    /// Decompose the embedding and output head instead of saving them (`--embed-lora`).
    pub embed_lora: bool,
    /// Leave out modules that are not matrices instead of saving them (`--skip-undecomposable`).
    pub skip_undecomposable: bool,
    /// √S on both factors (mergekit's default); otherwise S on A.
    pub distribute_scale: bool,
    /// Singular values at or below this are dropped (`--sv-epsilon`; 0 keeps all up to rank).
    pub sv_epsilon: f32,
}

/// How a module's delta is stored in a PEFT adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    /// `lora_A.weight` `[r, n_in]`, `lora_B.weight` `[n_out, r]`.
    Linear,
    /// `lora_embedding_A` `[r, n_vocab]`, `lora_embedding_B` `[n_embd, r]`; ΔW = (B·A)ᵀ.
    Embedding,
}

/// One decomposed module: ΔW ≈ left·right, both row-major, in HF layout (`left` `[rows, r]`,
/// `right` `[r, cols]`, rows × cols the HF weight's shape).
#[derive(Debug, Clone)]
pub struct ExtractedLora {
    /// HF module path, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    /// The GGUF tensor it edits, e.g. `blk.0.attn_q.weight`.
    pub tensor: String,
    /// The HF → GGUF layout fix of that tensor (Llama Q/K: a row permutation).
    pub to_gguf: TensorFix,
    pub kind: FactorKind,
    pub r: usize,
    pub rows: usize,
    pub cols: usize,
    pub left: Vec<f32>,
    pub right: Vec<f32>,
    /// Σ_{k<r} s_k² / Σ s_k²: the share of ‖ΔW‖²_F the rank-r factors keep.
    pub energy_kept: f64,
    /// Δ of the module's bias (HF order), when it has one that changed.
    pub bias: Option<Vec<f32>>,
}

/// The adapter extracted from two models.
#[derive(Debug, Clone)]
pub struct Extraction {
    pub arch: &'static str,
    pub loras: Vec<ExtractedLora>,
    /// Tensors saved at full rank (`modules_to_save`): the tuned model's, HF names and layout.
    pub saved: Vec<FullTensor>,
    /// Module paths of the saved modules (the config's `modules_to_save`).
    pub saved_modules: Vec<String>,
    /// What was left out or adjusted, and why (printed by the CLI).
    pub notes: Vec<String>,
}

impl Extraction {
    /// The largest module rank (the config's `r`).
    pub fn max_rank(&self) -> usize {
        self.loras.iter().map(|l| l.r).max().unwrap_or(0)
    }
}

/// One module to decompose: its weight (GGUF and HF names), kind, GGUF → HF fix, and its
/// bias's GGUF name when it has one.
struct Job {
    tensor: String,
    hf: String,
    kind: FactorKind,
    fix: TensorFix,
    bias: Option<String>,
}

fn leaf(module: &str) -> &str {
    module.rsplit('.').next().unwrap_or(module)
}

fn module_of(hf: &str) -> &str {
    hf.rsplit_once('.').map_or(hf, |m| m.0)
}

/// Checks that the two models are of one architecture with the same tensors and shapes.
fn check_pair(base: &Model, tuned: &Model) -> Result<(), ExtractError> {
    if base.arch.gguf_arch() != tuned.arch.gguf_arch() {
        return Err(ExtractError::Arch {
            base: base.path.clone(),
            base_arch: base.arch.gguf_arch().into(),
            tuned: tuned.path.clone(),
            tuned_arch: tuned.arch.gguf_arch().into(),
        });
    }
    // The Q/K row permutation depends on the head counts: equal shapes are not enough.
    let arch = tuned.arch.gguf_arch();
    for key in [format!("{arch}.attention.head_count"), format!("{arch}.attention.head_count_kv")] {
        let show = |md: &Metadata| md.get(&key).map_or("absent".to_string(), |v| format!("{v:?}"));
        let (b, t) = (show(&base.metadata), show(&tuned.metadata));
        if b != t {
            return Err(ExtractError::Hparam { key, base: b, tuned: t });
        }
    }
    let real = |m: &Model| -> Vec<TensorInfo> {
        m.tensors.tensor_infos().iter().filter(|t| !is_rope_factor_tensor(&t.name)).cloned().collect()
    };
    let (bt, tt) = (real(base), real(tuned));
    for t in &tt {
        let b = bt.iter().find(|b| b.name == t.name).ok_or_else(|| ExtractError::Missing {
            tensor: t.name.clone(),
            has: tuned.path.clone(),
            lacks: base.path.clone(),
        })?;
        if b.ne != t.ne {
            return Err(ExtractError::Shape { tensor: t.name.clone(), base: b.shape(), tuned: t.shape() });
        }
    }
    if let Some(b) = bt.iter().find(|b| !tt.iter().any(|t| t.name == b.name)) {
        return Err(ExtractError::Missing {
            tensor: b.name.clone(),
            has: base.path.clone(),
            lacks: tuned.path.clone(),
        });
    }
    Ok(())
}

/// A tensor of `model` as f32 in HF layout.
fn read_hf(model: &Model, name: &str, fix: TensorFix) -> Result<Vec<f32>, ExtractError> {
    let bad = |reason: String| ExtractError::Read { tensor: name.to_string(), reason };
    let info = model.tensors.tensor_info(name).ok_or_else(|| bad(format!("not in {}", model.path.display())))?;
    let bytes = model.tensors.tensor_bytes(name).map_err(|e| bad(e.to_string()))?;
    let out = decode(&model.path, info, &bytes, fix).map_err(|e| bad(e.to_string()))?;
    drop(bytes);
    model.tensors.release(name);
    Ok(out)
}

/// tuned − base of one tensor, in HF layout.
fn delta(base: &Model, tuned: &Model, name: &str, fix: TensorFix) -> Result<Vec<f32>, ExtractError> {
    let mut d = read_hf(tuned, name, fix)?;
    let b = read_hf(base, name, fix)?;
    d.iter_mut().zip(&b).for_each(|(t, b)| *t -= b);
    Ok(d)
}

/// Extracts the adapter that turns `base` into (an approximation of) `tuned`.
pub fn extract(base: &Model, tuned: &Model, opts: &ExtractOptions) -> Result<Extraction, ExtractError> {
    if opts.rank == 0 {
        return Err(ExtractError::RankZero);
    }
    check_pair(base, tuned)?;
    let arch = tuned.arch;
    let md = &tuned.metadata;

    // Every tensor under its HF name, grouped by module.
    let mut hf_of: Vec<(TensorInfo, String, TensorFix)> = Vec::new();
    for t in tuned.tensors.tensor_infos() {
        if is_rope_factor_tensor(&t.name) {
            continue; // computed from the config, not weights
        }
        if arch.gguf_expert_names(&t.name, md).ok().flatten().is_some() {
            return Err(ExtractError::Read {
                tensor: t.name.clone(),
                reason: "stacked Mixture-of-Experts expert tensor: lora extract does not support MoE models".into(),
            });
        }
        let m = arch
            .gguf_to_hf_tensor(&t.name, md)
            .map_err(|e| ExtractError::Read { tensor: t.name.clone(), reason: e.to_string() })?;
        hf_of.push((t.clone(), m.name, m.fix));
    }
    let known: BTreeSet<&str> = hf_of.iter().map(|(_, hf, _)| leaf(module_of(hf))).collect();
    for name in &opts.modules {
        if !known.contains(name.as_str()) {
            return Err(ExtractError::UnknownModule {
                name: name.clone(),
                arch: arch.gguf_arch().into(),
                known: known.iter().copied().collect::<Vec<_>>().join(", "),
            });
        }
    }
    let selected = |hf: &str| opts.modules.is_empty() || opts.modules.iter().any(|m| m == leaf(module_of(hf)));

    let mut jobs = Vec::new();
    // modules_to_save candidates by module path: (GGUF info, HF name, fix)
    let mut save_groups: BTreeMap<String, Vec<(TensorInfo, String, TensorFix)>> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut skipped_undecomposable = BTreeSet::new();
    // mergekit: embeddings are saved at full rank unless --embed-lora.
    let saved_whole = |t: &TensorInfo| (t.name == "token_embd.weight" || t.name == "output.weight") && !opts.embed_lora;
    // Modules decomposed (their biases become lora_B.bias; a saved module's bias is saved).
    let matrix_modules: BTreeSet<String> = hf_of
        .iter()
        .filter(|(t, hf, _)| t.ne.len() == 2 && hf.ends_with(".weight") && !saved_whole(t))
        .map(|(_, hf, _)| module_of(hf).to_string())
        .collect();
    for (t, hf, fix) in &hf_of {
        if !selected(hf) {
            continue;
        }
        let module = module_of(hf);
        let is_embed = t.name == "token_embd.weight";
        if saved_whole(t) {
            save_groups.entry(module.to_string()).or_default().push((t.clone(), hf.clone(), *fix));
        } else if t.ne.len() == 2 && hf.ends_with(".weight") {
            let bias = format!("{module}.bias");
            let bias = hf_of.iter().find(|(_, h, _)| *h == bias).map(|(bt, _, _)| bt.name.clone());
            let kind = if is_embed { FactorKind::Embedding } else { FactorKind::Linear };
            jobs.push(Job { tensor: t.name.clone(), hf: hf.clone(), kind, fix: *fix, bias });
        } else if hf.ends_with(".bias") && matrix_modules.contains(module) {
            // planned with its weight
        } else if opts.skip_undecomposable {
            skipped_undecomposable.insert(leaf(module).to_string());
        } else {
            // mergekit: "unsupported module type - saving at full rank"
            save_groups.entry(module.to_string()).or_default().push((t.clone(), hf.clone(), *fix));
        }
    }
    if !skipped_undecomposable.is_empty() {
        notes.push(format!(
            "left out (not matrices, --skip-undecomposable): {}",
            skipped_undecomposable.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }

    // Rank check before any work: a rank above every module's min(rows, cols) is a mistake.
    let max_dim = hf_of
        .iter()
        .filter(|(t, _, _)| jobs.iter().any(|j| j.tensor == t.name))
        .map(|(t, hf, _)| (t.ne[0].min(t.ne[1]) as usize, module_of(hf).to_string()))
        .max();
    if let Some((max, module)) = max_dim {
        if opts.rank > max {
            return Err(ExtractError::RankTooLarge { rank: opts.rank, max, module });
        }
    }

    let results: Vec<Result<Option<ExtractedLora>, ExtractError>> = jobs
        .par_iter()
        .map(|Job { tensor, hf, kind, fix, bias }| {
            let info = tuned.tensors.tensor_info(tensor).expect("planned from the tuned model's tensors");
            let (cols, rows) = (info.ne[0] as usize, info.ne[1] as usize);
            let d = delta(base, tuned, tensor, *fix)?;
            let bias = match bias {
                Some(bname) => {
                    let bfix = arch
                        .gguf_to_hf_tensor(bname, md)
                        .map_err(|e| ExtractError::Read { tensor: bname.clone(), reason: e.to_string() })?
                        .fix;
                    Some(delta(base, tuned, bname, bfix)?).filter(|b| b.iter().any(|&x| x != 0.0))
                }
                None => None,
            };
            if bias.is_none() && d.iter().all(|&x| x == 0.0) {
                return Ok(None);
            }
            let module = module_of(hf).to_string();
            let f = factor(&module, &d, rows, cols, opts, *kind)?;
            Ok(f.map(|(r, left, right, energy_kept)| ExtractedLora {
                module,
                tensor: tensor.clone(),
                to_gguf: fix.inverse(),
                kind: *kind,
                r,
                rows,
                cols,
                left,
                right,
                energy_kept,
                bias,
            }))
        })
        .collect();
    let mut loras = Vec::new();
    let mut unchanged = 0usize;
    for r in results {
        match r? {
            Some(l) => loras.push(l),
            None => unchanged += 1,
        }
    }
    if unchanged > 0 {
        notes.push(format!(
            "{unchanged} module(s) left out: equal in both models{}",
            if opts.sv_epsilon > 0.0 { " or no singular value above --sv-epsilon" } else { "" }
        ));
    }

    let mut saved = Vec::new();
    let mut saved_modules = Vec::new();
    for (module, group) in save_groups {
        let mut tensors = Vec::with_capacity(group.len());
        let mut changed = false;
        for (t, hf, fix) in &group {
            let data = read_hf(tuned, &t.name, *fix)?;
            changed |= read_hf(base, &t.name, *fix)? != data;
            let mut shape = t.shape();
            if shape.is_empty() {
                shape.push(1);
            }
            tensors.push(FullTensor { name: hf.clone(), shape, data });
        }
        if changed {
            saved.extend(tensors);
            saved_modules.push(module);
        }
    }
    if loras.is_empty() && saved.is_empty() {
        return Err(ExtractError::NothingToExtract);
    }
    Ok(Extraction { arch: arch.gguf_arch(), loras, saved, saved_modules, notes })
}

/// Truncated SVD of `d` (`rows × cols`, row-major) into (r, left `[rows, r]`, right
/// `[r, cols]`, energy kept); `None` when no singular value passes `sv_epsilon`.
#[allow(clippy::type_complexity)]
fn factor(
    module: &str,
    d: &[f32],
    rows: usize,
    cols: usize,
    opts: &ExtractOptions,
    kind: FactorKind,
) -> Result<Option<(usize, Vec<f32>, Vec<f32>, f64)>, ExtractError> {
    // In f64: faer's f32 SVD left errors up to 5e-5 of the largest element in the rank-k
    // product on the test fixtures (LAPACK's, which mergekit uses through torch, ~1e-6); in
    // f64 the factors are exact to f32 rounding, for about twice the time.
    let m = faer::Mat::<f64>::from_fn(rows, cols, |i, j| d[i * cols + j] as f64);
    let svd = m.thin_svd().map_err(|e| ExtractError::Svd { module: module.to_string(), reason: format!("{e:?}") })?;
    let (u, v) = (svd.U(), svd.V());
    let s: Vec<f64> = svd.S().column_vector().iter().copied().collect();
    let mut r = opts.rank.min(s.len());
    if opts.sv_epsilon > 0.0 {
        r = r.min(s.iter().filter(|&&x| x > opts.sv_epsilon as f64).count());
    }
    if r == 0 {
        return Ok(None);
    }
    let total: f64 = s.iter().map(|&x| x * x).sum();
    let kept: f64 = s[..r].iter().map(|&x| x * x).sum();
    // mergekit: distribute_scale → √S on both; otherwise S on A. A is `right` for a linear
    // module and `left` transposed for an embedding (whose SVD mergekit takes of ΔWᵀ).
    let (sl, sr): (Vec<f64>, Vec<f64>) = if opts.distribute_scale {
        let sq: Vec<f64> = s[..r].iter().map(|x| x.sqrt()).collect();
        (sq.clone(), sq)
    } else if kind == FactorKind::Embedding {
        (s[..r].to_vec(), vec![1.0; r])
    } else {
        (vec![1.0; r], s[..r].to_vec())
    };
    let mut left = vec![0f32; rows * r];
    for i in 0..rows {
        for k in 0..r {
            left[i * r + k] = (u[(i, k)] * sl[k]) as f32;
        }
    }
    let mut right = vec![0f32; r * cols];
    for k in 0..r {
        for j in 0..cols {
            right[k * cols + j] = (sr[k] * v[(j, k)]) as f32;
        }
    }
    Ok(Some((r, left, right, if total > 0.0 { kept / total } else { 1.0 })))
}
