//! The input models of a merge, seen as f32 tensors in HF layout (the layout mergekit merges
//! in: llama.cpp's Q/K row permutation and Gemma's norm `w + 1` undone), under their GGUF
//! names. Two providers: [`StageInputs`] reads one tensor at a time from stages (opened
//! files and a pipeline's input: the streaming `llmtool merge`); [`InputCache`] holds every tensor in memory so that many
//! candidate merges (the evolve search) share one load and need no file I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use llmtool_formats::{GgmlType, Metadata, TensorInfo};
use llmtool_kernels::convert;
use rayon::prelude::*;

use super::config::{resolve_model, MergeConfig};
use super::error::MergeRunError;
use crate::arch::{self, Arch, TensorFix};
use crate::model::Model;
use crate::pipeline::Input;

/// One input tensor as f32 in HF layout; shared (cache) or owned (file).
pub type F32Tensor = Arc<Vec<f32>>;

/// What a merge reads from its inputs.
pub trait InputTensors: Send + Sync {
    /// Model references (as written in the config) → model index.
    fn index_of(&self, reference: &str) -> Option<usize>;
    fn n_models(&self) -> usize;
    fn path(&self, model: usize) -> &Path;
    fn arch(&self, model: usize) -> &'static dyn Arch;
    fn metadata(&self, model: usize) -> &Metadata;
    /// Tensor descriptions in GGUF form (types as stored).
    fn tensor_infos(&self, model: usize) -> &[TensorInfo];
    /// One tensor, dequantized to f32, in HF layout.
    fn tensor_f32(&self, model: usize, name: &str) -> Result<F32Tensor, MergeRunError>;
    /// The tensor's bytes are not needed again soon.
    fn release(&self, _model: usize, _name: &str) {}
    /// The raw GGUF-form bytes of a tensor copied as it is (no HF equivalent).
    fn raw_bytes(&self, model: usize, name: &str) -> Result<Vec<u8>, MergeRunError>;
}

/// Reference → model index map for a config: each referenced model resolved to a path;
/// two references naming the same file (after canonicalization) share one index.
/// `current`: the path the pipeline's input stands for (it may exist only in memory): a
/// reference written as that path, or naming the same file, gets its index (returned too).
pub(crate) fn resolve_all(config: &MergeConfig, current: Option<&Path>) -> Result<Resolved, MergeRunError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut canon: Vec<PathBuf> = Vec::new();
    let mut index = HashMap::new();
    let mut slot = None;
    let current_canon = current.map(|c| c.canonicalize().unwrap_or_else(|_| c.to_path_buf()));
    for r in config.referenced_models() {
        let (p, c) = match current {
            Some(cur) if Path::new(&r) == cur => (cur.to_path_buf(), current_canon.clone().expect("with current")),
            _ => {
                let p = resolve_model(&r, config.dir.as_deref())?;
                let c = p.canonicalize().unwrap_or_else(|_| p.clone());
                (p, c)
            }
        };
        let i = match canon.iter().position(|x| *x == c) {
            Some(i) => i,
            None => {
                paths.push(p);
                canon.push(c.clone());
                paths.len() - 1
            }
        };
        if current_canon.as_ref() == Some(&c) {
            slot = Some(i);
        }
        index.insert(r, i);
    }
    Ok(Resolved { paths, index, current: slot })
}

/// A config's models resolved ([`resolve_all`]).
pub(crate) struct Resolved {
    /// By model index.
    pub paths: Vec<PathBuf>,
    /// Reference → model index.
    pub index: HashMap<String, usize>,
    /// The index of the pipeline's input, when a reference names it.
    pub current: Option<usize>,
}

/// Bytes of one GGUF-form tensor → f32 in HF layout.
fn to_hf_f32(model: Input<'_>, name: &str) -> Result<Vec<f32>, MergeRunError> {
    let (path, stage) = (model.path, model.stage);
    let info = stage
        .tensors
        .tensor_info(name)
        .ok_or_else(|| MergeRunError::Plan(format!("{}: no tensor '{name}'", path.display())))?
        .clone();
    let bytes = stage.tensors.tensor_bytes(name).map_err(|e| MergeRunError::Read {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        reason: e.to_string(),
    })?;
    let fix = arch_fix(stage.arch, stage.metadata, name)?;
    decode(path, &info, &bytes, fix)
}

/// The GGUF → HF layout fix of a tensor (`None`: the tensor has no HF equivalent).
pub(crate) fn arch_fix(arch: &dyn Arch, md: &Metadata, name: &str) -> Result<TensorFix, MergeRunError> {
    if arch.gguf_expert_names(name, md).ok().flatten().is_some() {
        return Ok(TensorFix::Copy); // stacked experts: each expert's matrix is in HF layout
    }
    arch.gguf_to_hf_tensor(name, md).map(|m| m.fix).map_err(|e| MergeRunError::Plan(format!("tensor '{name}': {e}")))
}

/// Dequantizes `bytes` (laid out as `info`) to f32 and applies `fix`.
pub(crate) fn decode(path: &Path, info: &TensorInfo, bytes: &[u8], fix: TensorFix) -> Result<Vec<f32>, MergeRunError> {
    let bad = |reason: String| MergeRunError::Read { path: path.to_path_buf(), tensor: info.name.clone(), reason };
    let n = info.n_elements().ok_or_else(|| bad("element count overflows".into()))? as usize;
    let mut out = vec![0f32; n];
    if info.ty.is_quantized() {
        llmtool_kernels::dequant::dequantize_parallel(info.ty, bytes, &mut out, 256).map_err(|e| bad(e.to_string()))?;
    } else {
        convert::to_f32(info.ty, bytes, &mut out).map_err(|e| bad(e.to_string()))?;
    }
    apply_fix_f32(info, out, fix).map_err(|e| bad(e.to_string()))
}

/// Applies a layout fix to an f32 tensor whose GGUF-form description is `info`.
pub(crate) fn apply_fix_f32(info: &TensorInfo, data: Vec<f32>, fix: TensorFix) -> Result<Vec<f32>, arch::ArchError> {
    if matches!(fix, TensorFix::Copy) {
        return Ok(data);
    }
    let f32_info = TensorInfo { name: info.name.clone(), ty: GgmlType::F32, ne: info.ne.clone() };
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    drop(data);
    let (out_info, fixed) = arch::apply_fix(&fix, &f32_info, &bytes)?;
    debug_assert_eq!(out_info.ty, GgmlType::F32);
    Ok(fixed.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Inputs read one tensor at a time from stages: opened files, and the pipeline's input
/// (the streaming merge, `crate::pipeline::Merge`).
pub struct StageInputs<'a> {
    models: Vec<Input<'a>>,
    index: &'a HashMap<String, usize>,
}

impl<'a> StageInputs<'a> {
    /// `models[i]` is model index `i` of `index` (reference → index).
    pub fn new(models: Vec<Input<'a>>, index: &'a HashMap<String, usize>) -> Self {
        StageInputs { models, index }
    }
}

impl InputTensors for StageInputs<'_> {
    fn index_of(&self, reference: &str) -> Option<usize> {
        self.index.get(reference).copied()
    }
    fn n_models(&self) -> usize {
        self.models.len()
    }
    fn path(&self, model: usize) -> &Path {
        self.models[model].path
    }
    fn arch(&self, model: usize) -> &'static dyn Arch {
        self.models[model].stage.arch
    }
    fn metadata(&self, model: usize) -> &Metadata {
        self.models[model].stage.metadata
    }
    fn tensor_infos(&self, model: usize) -> &[TensorInfo] {
        self.models[model].stage.tensors.tensor_infos()
    }
    fn tensor_f32(&self, model: usize, name: &str) -> Result<F32Tensor, MergeRunError> {
        let m = self.models[model];
        let out = to_hf_f32(m, name)?;
        // The f32 copy is made: the mapped pages can go (keeps RSS to the f32 working set).
        m.stage.tensors.release(name);
        Ok(Arc::new(out))
    }
    fn release(&self, model: usize, name: &str) {
        self.models[model].stage.tensors.release(name)
    }
    fn raw_bytes(&self, model: usize, name: &str) -> Result<Vec<u8>, MergeRunError> {
        let m = self.models[model];
        m.stage.tensors.tensor_bytes(name).map(|b| b.into_owned()).map_err(|e| MergeRunError::Read {
            path: m.path.to_path_buf(),
            tensor: name.to_string(),
            reason: e.to_string(),
        })
    }
}

/// A borrowed provider is one too (the merged source owns its provider or a reference).
impl<T: InputTensors + ?Sized> InputTensors for &T {
    fn index_of(&self, reference: &str) -> Option<usize> {
        (**self).index_of(reference)
    }
    fn n_models(&self) -> usize {
        (**self).n_models()
    }
    fn path(&self, model: usize) -> &Path {
        (**self).path(model)
    }
    fn arch(&self, model: usize) -> &'static dyn Arch {
        (**self).arch(model)
    }
    fn metadata(&self, model: usize) -> &Metadata {
        (**self).metadata(model)
    }
    fn tensor_infos(&self, model: usize) -> &[TensorInfo] {
        (**self).tensor_infos(model)
    }
    fn tensor_f32(&self, model: usize, name: &str) -> Result<F32Tensor, MergeRunError> {
        (**self).tensor_f32(model, name)
    }
    fn release(&self, model: usize, name: &str) {
        (**self).release(model, name)
    }
    fn raw_bytes(&self, model: usize, name: &str) -> Result<Vec<u8>, MergeRunError> {
        (**self).raw_bytes(model, name)
    }
}

/// Every tensor of every input, dequantized once and kept in memory (HF layout, f32), for
/// merging many candidate configurations over the same models without file I/O.
pub struct InputCache {
    paths: Vec<PathBuf>,
    archs: Vec<&'static dyn Arch>,
    metadata: Vec<Metadata>,
    infos: Vec<Vec<TensorInfo>>,
    /// Per model: GGUF name → f32 HF-layout data, or the raw bytes of tensors without an
    /// HF equivalent.
    tensors: Vec<HashMap<String, Cached>>,
    index: HashMap<String, usize>,
}

enum Cached {
    F32(F32Tensor),
    Raw(Vec<u8>),
}

impl InputCache {
    /// Loads every model the config references (tensors decoded in parallel). Later
    /// configurations may use any subset of these references.
    pub fn load(config: &MergeConfig) -> Result<Self, MergeRunError> {
        let Resolved { paths, index, .. } = resolve_all(config, None)?;
        let mut cache = InputCache {
            paths: Vec::new(),
            archs: Vec::new(),
            metadata: Vec::new(),
            infos: Vec::new(),
            tensors: Vec::new(),
            index,
        };
        for p in paths {
            let model =
                Model::open(&p).map_err(|source| MergeRunError::Open { path: p.clone(), source: Box::new(source) })?;
            let infos = model.tensors.tensor_infos().to_vec();
            let loaded = infos
                .par_iter()
                .map(|t| {
                    let c = match arch_fix(model.arch, &model.metadata, &t.name) {
                        Ok(_) => Cached::F32(Arc::new(to_hf_f32(Input::of(&model), &t.name)?)),
                        Err(_) => Cached::Raw(
                            model
                                .tensors
                                .tensor_bytes(&t.name)
                                .map_err(|e| MergeRunError::Read {
                                    path: p.clone(),
                                    tensor: t.name.clone(),
                                    reason: e.to_string(),
                                })?
                                .into_owned(),
                        ),
                    };
                    Ok((t.name.clone(), c))
                })
                .collect::<Result<HashMap<_, _>, MergeRunError>>()?;
            cache.paths.push(p);
            cache.archs.push(model.arch);
            cache.metadata.push(model.metadata.clone());
            cache.infos.push(infos);
            cache.tensors.push(loaded);
        }
        Ok(cache)
    }

    /// Bytes of f32 data held.
    pub fn resident_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .flat_map(|m| m.values())
            .map(|c| match c {
                Cached::F32(v) => v.len() as u64 * 4,
                Cached::Raw(b) => b.len() as u64,
            })
            .sum()
    }
}

impl InputTensors for InputCache {
    fn index_of(&self, reference: &str) -> Option<usize> {
        self.index.get(reference).copied()
    }
    fn n_models(&self) -> usize {
        self.paths.len()
    }
    fn path(&self, model: usize) -> &Path {
        &self.paths[model]
    }
    fn arch(&self, model: usize) -> &'static dyn Arch {
        self.archs[model]
    }
    fn metadata(&self, model: usize) -> &Metadata {
        &self.metadata[model]
    }
    fn tensor_infos(&self, model: usize) -> &[TensorInfo] {
        &self.infos[model]
    }
    fn tensor_f32(&self, model: usize, name: &str) -> Result<F32Tensor, MergeRunError> {
        match self.tensors[model].get(name) {
            Some(Cached::F32(v)) => Ok(Arc::clone(v)),
            _ => Err(MergeRunError::Plan(format!(
                "{}: no f32 tensor '{name}' in the cache",
                self.paths[model].display()
            ))),
        }
    }
    fn raw_bytes(&self, model: usize, name: &str) -> Result<Vec<u8>, MergeRunError> {
        match self.tensors[model].get(name) {
            Some(Cached::Raw(b)) => Ok(b.clone()),
            _ => Err(MergeRunError::Plan(format!(
                "{}: no raw tensor '{name}' in the cache",
                self.paths[model].display()
            ))),
        }
    }
}
