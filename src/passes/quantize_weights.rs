//! Importance weights for `quantize --imatrix`: which imatrix entry each tensor gets, and a
//! tensor source that quantizes with them.
//!
//! llama.cpp (`tools/quantize/quantize.cpp` `load_imatrix` / `prepare_imatrix`, and
//! `llama-quant.cpp`, commit 0c1e570):
//! - the weights of an entry are its per-column means (`Imatrix::importance`);
//! - `--exclude-weights S` drops entries whose name contains S; `--include-weights S` keeps only
//!   those (the two cannot be combined);
//! - a non-finite value anywhere is an error;
//! - a tensor gets the entry of its own name; an entry whose size is not `ne[0]·ne[2]` is an
//!   error, except for the token embeddings (then quantized without weights);
//! - a tensor without an entry is quantized without weights, unless its type requires an
//!   imatrix (`requires_imatrix`), which is an error.
//!
//! Rows of expert `e` (3-D tensors) use values `e·ne[0] .. (e+1)·ne[0]` of the entry
//! (`llama_tensor_quantize_impl`'s `imatrix_for_row`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use llmtool_formats::imatrix::Imatrix;
use llmtool_formats::{FormatError, GgmlType, TensorInfo, TensorSource};
use llmtool_kernels::{convert, quant};

use super::quantize::{requires_imatrix, FileType, TensorPlan};

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("--include-weights and --exclude-weights cannot be used together (as in llama-quantize)")]
    IncludeAndExclude,
    #[error("imatrix entry '{name}' holds a non-finite value ({value}) at {index}")]
    NonFinite { name: String, index: usize, value: f32 },
    #[error(
        "imatrix entry '{name}' has {found} values but the tensor needs {expected} (ne[0]·experts); \
         is the imatrix for another model?"
    )]
    Size { name: String, found: usize, expected: usize },
    #[error(
        "tensor '{name}' is quantized to {ty}, a very low-bit type that needs an importance matrix{why}; \
         give one with --imatrix FILE (llmtool imatrix computes it), or choose another type"
    )]
    Missing { name: String, ty: GgmlType, why: &'static str },
    #[error(
        "no imatrix entry names a tensor this quantization writes (the imatrix has e.g. '{example}'); \
         is the imatrix for another model?"
    )]
    NoneMatch { example: String },
}

/// Per-tensor importance weights (column means), after `--include/--exclude-weights`.
#[derive(Debug, Default, Clone)]
pub struct ImportanceWeights {
    by_name: BTreeMap<String, Vec<f32>>,
    /// Entries in the file before filtering.
    pub n_loaded: usize,
    /// `quantize.imatrix.*` facts llama-quantize records in the output.
    pub datasets: Vec<String>,
    pub chunk_count: u32,
}

impl ImportanceWeights {
    /// The weights of `imatrix` with llama-quantize's filters applied.
    pub fn new(imatrix: &Imatrix, include: &[String], exclude: &[String]) -> Result<Self, WeightsError> {
        if !include.is_empty() && !exclude.is_empty() {
            return Err(WeightsError::IncludeAndExclude);
        }
        let mut by_name = BTreeMap::new();
        for (name, values) in imatrix.importance() {
            if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(WeightsError::NonFinite { name: name.to_string(), index, value });
            }
            let excluded = exclude.iter().any(|s| name.contains(s.as_str()));
            let included = include.is_empty() || include.iter().any(|s| name.contains(s.as_str()));
            if included && !excluded {
                by_name.insert(name.to_string(), values);
            }
        }
        Ok(ImportanceWeights {
            by_name,
            n_loaded: imatrix.entries.len(),
            datasets: imatrix.datasets.clone(),
            chunk_count: imatrix.chunk_count,
        })
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The weights a tensor is quantized with (`None`: without), checked against its shape.
    pub fn for_tensor(&self, info: &TensorInfo) -> Result<Option<&[f32]>, WeightsError> {
        let Some(w) = self.by_name.get(&info.name) else { return Ok(None) };
        let ne0 = info.ne.first().copied().unwrap_or(0) as usize;
        let experts = info.ne.get(2).copied().unwrap_or(1) as usize;
        let expected = ne0.saturating_mul(experts);
        if w.len() == expected {
            Ok(Some(w))
        } else if is_token_embd(&info.name) {
            // llama.cpp: "tok_embd should be ignored in this case, since it always causes this warning".
            Ok(None)
        } else {
            Err(WeightsError::Size { name: info.name.clone(), found: w.len(), expected })
        }
    }
}

fn is_token_embd(name: &str) -> bool {
    name == "token_embd.weight" || name == "per_layer_token_embd.weight"
}

/// Checks the whole plan before anything is written: every tensor that is re-quantized gets
/// weights of the right size or none, and the types that need weights have them.
pub fn check_plan(
    plan: &[TensorPlan],
    weights: Option<&ImportanceWeights>,
    ftype: FileType,
) -> Result<(), WeightsError> {
    let mut matched = false;
    for p in plan.iter().filter(|p| p.from != p.to && p.to.is_quantized()) {
        let w = match weights {
            Some(w) => w.for_tensor(&p.info())?,
            None => None,
        };
        matched |= w.is_some();
        if w.is_none() && (requires_imatrix(&p.name, p.to, ftype) || quant::requires_imatrix(p.to)) {
            let why = match weights {
                None => "",
                Some(_) => " and the imatrix has no entry for it (or --include/--exclude-weights removed it)",
            };
            return Err(WeightsError::Missing { name: p.name.clone(), ty: p.to, why });
        }
    }
    // llama-quantize goes on without weights here; a user who gave an imatrix wants it used.
    match weights.and_then(|w| w.by_name.keys().next()) {
        Some(example) if !matched && plan.iter().any(|p| p.from != p.to && p.to.is_quantized()) => {
            Err(WeightsError::NoneMatch { example: example.clone() })
        }
        _ => Ok(()),
    }
}

/// `inner`'s tensors re-typed as `infos` says, quantized with importance weights where given.
pub struct WeightedRetyped<'a> {
    inner: &'a dyn TensorSource,
    infos: Vec<TensorInfo>,
    /// Borrowed from a quantize pass that outlives the source, or owned by it (a pass that
    /// computes its weights while it is applied).
    weights: Cow<'a, ImportanceWeights>,
}

impl<'a> WeightedRetyped<'a> {
    pub fn new(inner: &'a dyn TensorSource, infos: Vec<TensorInfo>, weights: &'a ImportanceWeights) -> Self {
        WeightedRetyped { inner, infos, weights: Cow::Borrowed(weights) }
    }

    /// Like [`Self::new`], the source owning its weights.
    pub fn owning(inner: &'a dyn TensorSource, infos: Vec<TensorInfo>, weights: ImportanceWeights) -> Self {
        WeightedRetyped { inner, infos, weights: Cow::Owned(weights) }
    }
}

/// Rows decoded to f32 at a time (about 4 Mi values), so a large tensor never needs a whole
/// f32 copy besides its output.
const SLAB_VALUES: usize = 1 << 22;

impl TensorSource for WeightedRetyped<'_> {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let from = self.inner.tensor_info(name).ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))?.ty;
        let info = self.tensor_info(name).expect("same names as inner");
        let bytes = self.inner.tensor_bytes(name)?;
        let fail = |e: String| FormatError::Other(format!("tensor '{name}': {e}"));
        let weights = self.weights.for_tensor(info).map_err(|e| fail(e.to_string()))?;
        let (to, n_per_row) = (info.ty, info.ne.first().copied().unwrap_or(1).max(1) as usize);
        if from == to || !to.is_quantized() || (weights.is_none() && quant::can_quantize(to)) {
            return super::convert::retype_bytes(name, from, to, bytes);
        }
        let rows_per_matrix = info.ne.get(1).copied().unwrap_or(1) as usize;
        let src_row = from
            .row_bytes(n_per_row as u64)
            .ok_or_else(|| fail(format!("rows of {n_per_row} do not split into {from} blocks")))?
            as usize;
        let mut out = Vec::with_capacity(info.n_bytes().unwrap_or(0) as usize);
        let slab_rows = (SLAB_VALUES / n_per_row).clamp(1, rows_per_matrix.max(1));
        let mut f32s = vec![0f32; slab_rows * n_per_row];
        for (m, matrix) in bytes.chunks(src_row * rows_per_matrix.max(1)).enumerate() {
            let w = weights.map(|w| &w[m * n_per_row..(m + 1) * n_per_row]);
            for slab in matrix.chunks(src_row * slab_rows) {
                let n = slab.len() / src_row * n_per_row;
                convert::to_f32(from, slab, &mut f32s[..n]).map_err(|e| fail(e.to_string()))?;
                quant::quantize_rows(to, &f32s[..n], n_per_row, w, &mut out).map_err(|e| fail(e.to_string()))?;
            }
        }
        Ok(Cow::Owned(out))
    }

    fn release(&self, name: &str) {
        self.inner.release(name)
    }
}
