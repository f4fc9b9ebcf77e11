//! Per-tensor sensitivity for `quantize --target-bpw / --target-size`: an estimate of how much
//! KL divergence (from the unquantized model) each tensor adds at each candidate type.
//!
//! Two measurements, combined as `damage(t, c) = gain(g(t)) · error(t, c)`:
//! - `error(t, c) = Σ_rows Σ_j imp_j · (w_j − deq(quant_c(w))_j)²`, the importance-weighted
//!   squared error of quantizing tensor t to type c (imp: the imatrix column means, i.e.
//!   E[x_j²] of the tensor's inputs, so the sum is the expected squared error of the tensor's
//!   outputs under a diagonal input covariance — the objective llama.cpp's quantizers
//!   themselves minimise per block, `quantize_row_*_impl` with `quant_weights`);
//! - `gain(g)`: how much KLD one unit of that error costs in group g (a tensor, or a tensor
//!   kind over all layers): the inference core runs the calibration text with only group g
//!   quantized to [`CALIB_TYPE`] and measures the mean KLD against the unquantized model;
//!   `gain = KLD_g / Σ_{t∈g} error(t, CALIB_TYPE)`.
//!
//! The estimate assumes damage grows linearly with the weighted error within a tensor and adds
//! up over tensors (second-order view of the KLD around the unquantized weights).

use std::collections::BTreeMap;
use std::path::Path;

use llmtool_formats::{GgmlType, Metadata, TensorInfo, TensorSource};
use llmtool_kernels::{convert, quant};
use rayon::prelude::*;

use super::quantize::allows_quantization;
use super::quantize_mix::{Choice, TensorOptions};
use super::quantize_weights::{ImportanceWeights, WeightedRetyped};
use crate::eval::{kl_divergence, Base, BaseFile, PplOptions};
use crate::infer::InferModel;

/// The type each group is quantized to when its KLD is measured: fits every row length that
/// is a multiple of 32, damaging enough to measure, not so much that the response is far from
/// the small-error regime.
pub const CALIB_TYPE: GgmlType = GgmlType::Q4_0;

/// Types a tensor may get, smallest first (block size must divide the row length; the
/// types that need an imatrix only with one).
pub const CANDIDATES: &[GgmlType] = &[
    GgmlType::IQ1_S,
    GgmlType::IQ1_M,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ2_S,
    GgmlType::Q2_K,
    GgmlType::IQ3_XXS,
    GgmlType::IQ3_S,
    GgmlType::Q3_K,
    GgmlType::IQ4_XS,
    GgmlType::IQ4_NL,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q4_K,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_0,
    GgmlType::F16,
];

#[derive(Debug, thiserror::Error)]
pub enum SensitivityError {
    #[error("tensor '{name}': {why}")]
    Tensor { name: String, why: String },
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Infer(#[from] crate::infer::InferError),
    #[error("sensitivity file {path}: {why}")]
    File { path: std::path::PathBuf, why: String },
}

/// How KLD gains are measured: one core run per tensor, or per tensor kind (all layers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Groups {
    #[default]
    Tensor,
    Kind,
}

/// One tensor's candidates with their weighted errors, and its measured gain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TensorSensitivity {
    pub name: String,
    /// The group whose KLD set the gain.
    pub group: String,
    /// KLD per unit of weighted error.
    pub gain: f64,
    /// (type name, bytes, weighted error).
    pub choices: Vec<(String, u64, f64)>,
}

/// The sensitivity table (saved with `--save-sensitivity`, reused with `--sensitivity`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sensitivity {
    pub groups: Groups,
    pub calib_type: String,
    pub calib_tokens: usize,
    /// Group → mean KLD with only that group at [`CALIB_TYPE`].
    pub group_kld: BTreeMap<String, f64>,
    pub tensors: Vec<TensorSensitivity>,
}

impl Sensitivity {
    /// The allocator's input: damage = gain · error, over the `allowed` types (all: None).
    pub fn options(&self, allowed: Option<&[GgmlType]>) -> Result<Vec<TensorOptions>, SensitivityError> {
        self.tensors
            .iter()
            .map(|t| {
                let choices = t
                    .choices
                    .iter()
                    .map(|(ty, bytes, err)| {
                        let ty = GgmlType::from_name(ty).ok_or_else(|| SensitivityError::Tensor {
                            name: t.name.clone(),
                            why: format!("unknown type '{ty}' in the sensitivity table"),
                        })?;
                        Ok(Choice { ty, bytes: *bytes, damage: t.gain * err })
                    })
                    .filter(|c| c.as_ref().map_or(true, |c| allowed.is_none_or(|a| a.contains(&c.ty))))
                    .collect::<Result<Vec<_>, SensitivityError>>()?;
                Ok(TensorOptions { name: t.name.clone(), choices })
            })
            .collect()
    }

    pub fn save(&self, path: &Path) -> Result<(), SensitivityError> {
        let err = |why: String| SensitivityError::File { path: path.to_path_buf(), why };
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.to_string()))?;
        let mut f = llmtool_formats::atomic::AtomicFile::create(path, true).map_err(|e| err(e.to_string()))?;
        std::io::Write::write_all(f.writer(), &json).map_err(|e| err(e.to_string()))?;
        f.commit().map_err(|e| err(e.to_string()))
    }

    /// Loads a table and checks it covers exactly the `mixable` tensors.
    pub fn load(path: &Path, mixable: &[TensorInfo]) -> Result<Self, SensitivityError> {
        let err = |why: String| SensitivityError::File { path: path.to_path_buf(), why };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let s: Sensitivity = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
        let names: Vec<&str> = s.tensors.iter().map(|t| t.name.as_str()).collect();
        let want: Vec<&str> = mixable.iter().map(|t| t.name.as_str()).collect();
        if names != want {
            return Err(err(format!(
                "covers {} tensors, the model has {} quantizable ones (another model?)",
                names.len(),
                want.len()
            )));
        }
        Ok(s)
    }
}

/// One tensor's (type, bytes, weighted error) per candidate.
pub type CandidateErrors = Vec<(GgmlType, u64, f64)>;

/// The tensors the allocator chooses types for (those llama.cpp would quantize), in the
/// source's order.
pub fn mixable(infos: &[TensorInfo]) -> Vec<TensorInfo> {
    infos.iter().filter(|t| allows_quantization(&t.name, &t.ne)).cloned().collect()
}

/// The candidate types for rows of `ncols` values.
pub fn candidates(ncols: u64, has_weights: bool) -> Vec<GgmlType> {
    CANDIDATES
        .iter()
        .copied()
        .filter(|&ty| {
            let fits = ty.block_size() > 0 && ncols.is_multiple_of(ty.block_size() as u64);
            let can = if ty.is_quantized() {
                quant::can_quantize_unweighted(ty) || (has_weights && quant::can_quantize_weighted(ty))
            } else {
                convert::can_encode(ty)
            };
            fits && can && (has_weights || !quant::requires_imatrix(ty))
        })
        .collect()
}

/// The group of a tensor: its name, or its name without the layer (`blk.N.`) for kinds.
pub fn group_of(name: &str, groups: Groups) -> String {
    match groups {
        Groups::Tensor => name.to_string(),
        Groups::Kind => match name.strip_prefix("blk.").and_then(|r| r.split_once('.')) {
            Some((_, rest)) => format!("blk.*.{rest}"),
            None => name.to_string(),
        },
    }
}

fn tensor_err(name: &str, why: impl std::fmt::Display) -> SensitivityError {
    SensitivityError::Tensor { name: name.to_string(), why: why.to_string() }
}

/// Encodes f32 rows as `ty` (with importance weights where given).
fn encode(name: &str, ty: GgmlType, w: &[f32], ncols: usize, imp: Option<&[f32]>) -> Result<Vec<u8>, SensitivityError> {
    let mut out = Vec::new();
    if ty.is_quantized() {
        let imp = imp.filter(|_| quant::can_quantize_weighted(ty));
        quant::quantize_rows(ty, w, ncols, imp, &mut out).map_err(|e| tensor_err(name, e))?;
    } else {
        convert::from_f32(ty, w, &mut out).map_err(|e| tensor_err(name, e))?;
    }
    Ok(out)
}

/// `Σ_rows Σ_j imp_j (w − deq(quant_ty(w)))²` for one tensor (imp ≡ 1 without weights).
pub fn weighted_error(
    name: &str,
    ty: GgmlType,
    w: &[f32],
    ncols: usize,
    imp: Option<&[f32]>,
) -> Result<f64, SensitivityError> {
    let bytes = encode(name, ty, w, ncols, imp)?;
    let mut back = vec![0f32; w.len()];
    convert::to_f32(ty, &bytes, &mut back).map_err(|e| tensor_err(name, e))?;
    let err = w
        .par_chunks(ncols)
        .zip(back.par_chunks(ncols))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .enumerate()
                .map(|(j, (&x, &y))| {
                    let d = (x - y) as f64;
                    imp.map_or(1.0, |i| i[j] as f64) * d * d
                })
                .sum::<f64>()
        })
        .sum();
    Ok(err)
}

/// The whole tensor decoded to f32.
fn decode(src: &dyn TensorSource, info: &TensorInfo) -> Result<Vec<f32>, SensitivityError> {
    let bytes = src.tensor_bytes(&info.name).map_err(|e| tensor_err(&info.name, e))?;
    let n = info.ne.iter().product::<u64>() as usize;
    let mut out = vec![0f32; n];
    convert::to_f32(info.ty, &bytes, &mut out).map_err(|e| tensor_err(&info.name, e))?;
    src.release(&info.name);
    Ok(out)
}

/// Weighted errors of every candidate (of the `allowed` ones, plus [`CALIB_TYPE`] which the
/// gains need) of every mixable tensor: (bytes, error) per type. Tensors of several matrices
/// (experts) use each matrix's slice of the weights.
pub fn candidate_errors(
    src: &dyn TensorSource,
    mixable: &[TensorInfo],
    weights: Option<&ImportanceWeights>,
    allowed: Option<&[GgmlType]>,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Vec<CandidateErrors>, SensitivityError> {
    let mut all = Vec::with_capacity(mixable.len());
    for (i, info) in mixable.iter().enumerate() {
        progress(i, mixable.len(), &info.name);
        let ncols = info.ne.first().copied().unwrap_or(1) as usize;
        let imp = match weights {
            Some(w) => w.for_tensor(info).map_err(|e| tensor_err(&info.name, e))?,
            None => None,
        };
        let w = decode(src, info)?;
        let per_matrix = ncols * info.ne.get(1).copied().unwrap_or(1) as usize;
        let types: Vec<GgmlType> = candidates(ncols as u64, imp.is_some())
            .into_iter()
            .filter(|t| *t == CALIB_TYPE || allowed.is_none_or(|a| a.contains(t)))
            .collect();
        let rows: Vec<(GgmlType, u64, f64)> = types
            .par_iter()
            .map(|&ty| {
                let mut err = 0.0;
                for (m, matrix) in w.chunks(per_matrix.max(1)).enumerate() {
                    let imp_m = imp.map(|v| &v[m * ncols..(m + 1) * ncols]);
                    err += weighted_error(&info.name, ty, matrix, ncols, imp_m)?;
                }
                let bytes = TensorInfo { name: String::new(), ty, ne: info.ne.clone() }.n_bytes().unwrap_or(u64::MAX);
                Ok((ty, bytes, err))
            })
            .collect::<Result<_, SensitivityError>>()?;
        all.push(rows);
    }
    Ok(all)
}

/// Measures each group's KLD gain on the core (see the module docs) and returns the table.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    metadata: &Metadata,
    src: &dyn TensorSource,
    mixable: &[TensorInfo],
    errors: Vec<CandidateErrors>,
    weights: Option<&ImportanceWeights>,
    tokens: &[u32],
    opts: &PplOptions,
    groups: Groups,
    mut progress: impl FnMut(usize, usize, &str, f64),
) -> Result<Sensitivity, SensitivityError> {
    // The base's log-probabilities once (llama.cpp's base format, in memory).
    let base_model = InferModel::from_source(metadata, src)?;
    let base = BaseFile::compute(&base_model, tokens, opts)?;
    drop(base_model);

    let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, t) in mixable.iter().enumerate() {
        members.entry(group_of(&t.name, groups)).or_default().push(i);
    }
    let calib_err = |i: usize| errors[i].iter().find(|c| c.0 == CALIB_TYPE).map(|c| c.2);
    let mut group_kld = BTreeMap::new();
    let mut gains = vec![0.0f64; mixable.len()];
    let n_groups = members.len();
    for (gi, (group, idx)) in members.iter().enumerate() {
        let measured: Vec<usize> = idx.iter().copied().filter(|&i| calib_err(i).is_some()).collect();
        if measured.is_empty() {
            continue; // no calibration type fits: these tensors have (almost) no choice
        }
        let infos: Vec<TensorInfo> = src
            .tensor_infos()
            .iter()
            .map(|t| {
                let ty = if measured.iter().any(|&i| mixable[i].name == t.name) { CALIB_TYPE } else { t.ty };
                TensorInfo { name: t.name.clone(), ty, ne: t.ne.clone() }
            })
            .collect();
        let no_weights = ImportanceWeights::default();
        let perturbed = WeightedRetyped::new(src, infos, weights.unwrap_or(&no_weights));
        let model = InferModel::from_source(metadata, &perturbed)?;
        let r = kl_divergence(&model, Base::File(&base), tokens, opts, |_, _, _| {})?;
        // KLD ≥ 0 in exact arithmetic; keep a floor so a group never looks free.
        let kld = r.kld_mean.max(1e-9);
        let err_sum: f64 = measured.iter().filter_map(|&i| calib_err(i)).sum();
        let gain = if err_sum > 0.0 { kld / err_sum } else { 0.0 };
        for &i in idx {
            gains[i] = gain;
        }
        group_kld.insert(group.clone(), kld);
        progress(gi + 1, n_groups, group, kld);
    }
    // Groups without a measurement take the largest gain seen (cautious).
    let max_gain = gains.iter().copied().fold(0.0, f64::max);
    let tensors = mixable
        .iter()
        .zip(errors)
        .enumerate()
        .map(|(i, (t, errs))| {
            let group = group_of(&t.name, groups);
            let gain = if group_kld.contains_key(&group) { gains[i] } else { max_gain };
            TensorSensitivity {
                name: t.name.clone(),
                group,
                gain,
                choices: errs.into_iter().map(|(ty, b, e)| (ty.name().to_string(), b, e)).collect(),
            }
        })
        .collect();
    Ok(Sensitivity {
        groups,
        calib_type: CALIB_TYPE.name().to_string(),
        calib_tokens: base.n_chunk * (base.n_ctx - 1 - base.n_ctx / 2),
        group_kld,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_respect_row_length() {
        let c576 = candidates(576, true);
        assert!(c576.iter().all(|t| 576 % t.block_size() == 0), "{c576:?}");
        assert!(c576.contains(&GgmlType::Q4_0) && c576.contains(&GgmlType::IQ4_NL) && c576.contains(&GgmlType::F16));
        assert!(!c576.contains(&GgmlType::Q4_K));
        let c1536 = candidates(1536, true);
        assert!(c1536.contains(&GgmlType::Q4_K) && c1536.contains(&GgmlType::IQ2_XXS));
        // the types that need an imatrix only with one
        assert!(!candidates(1536, false).contains(&GgmlType::IQ2_XXS));
    }

    #[test]
    fn kinds_group_layers() {
        assert_eq!(group_of("blk.12.attn_q.weight", Groups::Kind), "blk.*.attn_q.weight");
        assert_eq!(group_of("token_embd.weight", Groups::Kind), "token_embd.weight");
        assert_eq!(group_of("blk.12.attn_q.weight", Groups::Tensor), "blk.12.attn_q.weight");
    }

    #[test]
    fn weighted_error_falls_with_bits_and_follows_importance() {
        let ncols = 256;
        let w: Vec<f32> = (0..ncols * 8).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.05).collect();
        let e = |ty| weighted_error("t", ty, &w, ncols, None).unwrap();
        let (q4, q5, q8, f16) = (e(GgmlType::Q4_0), e(GgmlType::Q5_0), e(GgmlType::Q8_0), e(GgmlType::F16));
        assert!(q4 > q5 && q5 > q8 && q8 > f16 && f16 >= 0.0, "{q4} {q5} {q8} {f16}");
        // doubling every importance doubles the error of an unweighted type (Q8_0 ignores it)
        let two = vec![2.0f32; ncols];
        let e2 = weighted_error("t", GgmlType::Q8_0, &w, ncols, Some(&two)).unwrap();
        assert!((e2 / q8 - 2.0).abs() < 1e-9, "{e2} vs 2·{q8}");
    }
}
