//! A model opened from disk in llmtool's internal form: GGUF metadata keys, GGUF tensor
//! names and GGUF layouts (ARCHITECTURE.md, "one internal naming and layout"). HF dirs are
//! mapped at this edge by the architecture registry and the tokenizer metadata converter;
//! nothing is read beyond headers until a tensor is asked for.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use llmtool_formats::gguf::GgufFile;
use llmtool_formats::hf::{BnbTensor, HfDir, HfFiles, HfWeights};
use llmtool_formats::safetensors::Dtype;
use llmtool_formats::{FormatError, GgmlType, MetaValue, Metadata, TensorInfo, TensorSource};

use crate::arch::{self, Arch, TensorFix};
use crate::tokenizer;

/// What a path on disk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    Gguf,
    HfDir,
}

impl ModelFormat {
    /// GGUF for a `.gguf` file or an existing regular file; HF for a directory. Checkpoint
    /// files that are not safetensors are refused with advice.
    pub fn detect(path: &Path) -> Result<Self, ModelError> {
        if path.is_dir() {
            return Ok(ModelFormat::HfDir);
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "bin" | "pt" | "pth" | "ckpt" | "pkl" => Err(ModelError::Pickle(path.to_path_buf())),
            "safetensors" => Err(ModelError::BareSafetensors(path.to_path_buf())),
            _ if path.exists() => Ok(ModelFormat::Gguf),
            _ => Err(ModelError::NotFound(path.to_path_buf())),
        }
    }
}

/// Errors opening a model: format errors plus the mapping from HF to GGUF form.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{path}: {source}")]
    Arch { path: PathBuf, source: arch::ArchError },
    #[error("{path}: {source}")]
    Tokenizer { path: PathBuf, source: tokenizer::TokenizerMetaError },
    #[error("{path}: {source}")]
    Carry { path: PathBuf, source: crate::meta_carry::CarryError },
    #[error("{0}: no such file or directory")]
    NotFound(PathBuf),
    #[error(
        "{0}: pickle checkpoints are not read (they can run arbitrary code); convert to \
         safetensors first, e.g. in Python: model.save_pretrained(dir, safe_serialization=True)"
    )]
    Pickle(PathBuf),
    #[error("{0}: a bare .safetensors file has no config.json; pass the HF model directory that holds it")]
    BareSafetensors(PathBuf),
    #[error("{path}: tensor '{tensor}' has dtype {dtype:?}, which has no GGML equivalent")]
    UnsupportedDtype { path: PathBuf, tensor: String, dtype: Dtype },
    #[error("{path}: tensors '{first}' and '{second}' both map to GGUF tensor '{gguf}'")]
    DuplicateMapping { path: PathBuf, first: String, second: String, gguf: String },
    #[error("{path}: expert tensors missing: '{gguf}' stacks {count} experts, found none for expert(s) {missing:?} (e.g. '{example}' is missing)")]
    MissingExperts { path: PathBuf, gguf: String, count: u32, missing: Vec<u32>, example: String },
    #[error("{path}: expert tensors '{first}' and '{other}' (stacked into '{gguf}') differ in {what}")]
    ExpertMismatch { path: PathBuf, gguf: String, first: String, other: String, what: &'static str },
    #[error("{path}: expert tensors missing: nothing maps to '{gguf}', while its block has '{seen}'")]
    MissingExpertProjection { path: PathBuf, gguf: String, seen: String },
    #[error("{path}: tensor '{tensor}' has shape {shape:?}; stacked experts must be [{count}, {n_parts}·rows, columns] (the config has {count} experts)")]
    FusedExpertShape { path: PathBuf, tensor: String, shape: Vec<u64>, count: u32, n_parts: usize },
}

/// The GGML element type of a safetensors dtype, where one exists.
pub fn ggml_type_of_dtype(dtype: Dtype) -> Option<GgmlType> {
    Some(match dtype {
        Dtype::F32 => GgmlType::F32,
        Dtype::F16 => GgmlType::F16,
        Dtype::BF16 => GgmlType::BF16,
        Dtype::F64 => GgmlType::F64,
        Dtype::I8 => GgmlType::I8,
        Dtype::I16 => GgmlType::I16,
        Dtype::I32 => GgmlType::I32,
        Dtype::I64 => GgmlType::I64,
        _ => return None,
    })
}

/// The safetensors dtype of a plain GGML type (quantized types have none).
pub fn dtype_of_ggml_type(ty: GgmlType) -> Option<Dtype> {
    Some(match ty {
        GgmlType::F32 => Dtype::F32,
        GgmlType::F16 => Dtype::F16,
        GgmlType::BF16 => Dtype::BF16,
        GgmlType::F64 => Dtype::F64,
        GgmlType::I8 => Dtype::I8,
        GgmlType::I16 => Dtype::I16,
        GgmlType::I32 => Dtype::I32,
        GgmlType::I64 => Dtype::I64,
        _ => return None,
    })
}

/// A model in internal (GGUF) form.
pub struct Model {
    pub path: PathBuf,
    pub format: ModelFormat,
    pub arch: &'static dyn Arch,
    /// GGUF-form metadata: `general.*`, `<arch>.*`, `tokenizer.*`.
    pub metadata: Metadata,
    /// Tensors under GGUF names and layouts.
    pub tensors: Box<dyn TensorSource>,
    /// Version and alignment of the input, when it is GGUF (kept for byte-identical copies).
    pub gguf: Option<GgufInfo>,
    /// The HF dir's files (config, tokenizer, extras), when the input is an HF dir.
    pub hf: Option<HfDirInfo>,
}

/// Container facts of a GGUF input.
#[derive(Debug, Clone, Copy)]
pub struct GgufInfo {
    pub version: u32,
    pub alignment: u64,
}

/// What is kept of an HF input besides its tensors.
pub struct HfDirInfo {
    /// config.json, generation_config.json and the tokenizer files.
    pub files: HfFiles,
    pub extra_files: Vec<PathBuf>,
    /// Module prefixes whose tensors the family leaves out (e.g. a vision tower), sorted.
    pub skipped_prefixes: Vec<String>,
    /// The bitsandbytes-quantized weights, under their GGUF names, in tensor order (they
    /// are dequantized on read; empty for an ordinary checkpoint).
    pub bnb: Vec<(String, BnbTensor)>,
}

/// The distinct [`Arch::skipped_prefix`] values of the HF tensors, sorted.
fn skipped_prefixes(arch: &dyn Arch, weights: &HfWeights) -> Vec<String> {
    let set: std::collections::BTreeSet<String> =
        weights.tensors().iter().filter_map(|t| arch.skipped_prefix(&t.name)).collect();
    set.into_iter().collect()
}

impl Model {
    /// Opens a GGUF file or an HF model directory.
    pub fn open(path: &Path) -> Result<Model, ModelError> {
        match ModelFormat::detect(path)? {
            ModelFormat::Gguf => Self::open_gguf(path),
            ModelFormat::HfDir => Self::open_hf(path),
        }
    }

    fn open_gguf(path: &Path) -> Result<Model, ModelError> {
        let file = GgufFile::open(path).map_err(FormatError::from)?;
        let arch = arch::from_gguf_metadata(&file.metadata)
            .map_err(|source| ModelError::Arch { path: path.to_path_buf(), source })?;
        let metadata = file.metadata.clone();
        let gguf = GgufInfo { version: file.version, alignment: file.alignment };
        let tensors: Box<dyn TensorSource> = Box::new(file);
        Ok(Model {
            path: path.to_path_buf(),
            format: ModelFormat::Gguf,
            arch,
            metadata,
            tensors,
            gguf: Some(gguf),
            hf: None,
        })
    }

    fn open_hf(path: &Path) -> Result<Model, ModelError> {
        let dir = HfDir::open(path).map_err(FormatError::from)?;
        let arch_err = |source| ModelError::Arch { path: path.to_path_buf(), source };
        let arch = arch::from_hf_config(&dir.config).map_err(arch_err)?;
        let mut metadata = Metadata::new();
        arch.config_to_metadata(&dir.config, &mut metadata).map_err(arch_err)?;
        if let Some(tok) = &dir.tokenizer_json {
            tokenizer::hf_to_gguf_metadata(tok, dir.tokenizer_config.as_ref(), Some(&dir.config), &mut metadata)
                .map_err(|source| ModelError::Tokenizer { path: path.join("tokenizer.json"), source })?;
            if dir.tokenizer_config.is_some() {
                let jinja = path.join(crate::chat_template::CHAT_TEMPLATE_JINJA);
                tokenizer::apply_chat_template_file(&jinja, &mut metadata)
                    .map_err(|source| ModelError::Tokenizer { path: jinja, source })?;
            }
            // SentencePiece scores, as llama.cpp's converter takes them (tokenizer/spm_model.rs).
            let spm = path.join("tokenizer.model");
            if spm.is_file() {
                tokenizer::apply_spm_model_scores(&spm, &mut metadata)
                    .map_err(|source| ModelError::Tokenizer { path: spm, source })?;
            }
        }
        let extra_files = dir.extra_files;
        let files = HfFiles {
            config: dir.config,
            generation_config: dir.generation_config,
            tokenizer_json: dir.tokenizer_json,
            tokenizer_config: dir.tokenizer_config,
            special_tokens_map: dir.special_tokens_map,
        };
        if let Some(carried) = dir.weights.metadata().get(crate::meta_carry::CARRY_KEY) {
            let fp = crate::meta_carry::fingerprint(&files.json_values());
            metadata = crate::meta_carry::merge(metadata, carried, &fp)
                .map_err(|source| ModelError::Carry { path: path.to_path_buf(), source })?;
        }
        if !metadata.contains_key("general.name") {
            // llama.cpp names a model after its directory when config.json does not.
            if let Some(name) = path.canonicalize().ok().as_deref().and_then(Path::file_name).and_then(|n| n.to_str()) {
                let at = ["general.type", "general.architecture"]
                    .iter()
                    .find_map(|k| metadata.index_of(k))
                    .map_or(0, |i| i + 1);
                metadata.insert_at(at, "general.name", MetaValue::String(name.to_string()));
            }
        }
        let weights = HfWeights::new(dir.weights).map_err(FormatError::from)?;
        let skipped_prefixes = skipped_prefixes(arch, &weights);
        let view = HfTensorView::new(path, weights, arch, &files.config)?;
        let bnb = view.bnb_by_gguf_name();
        let hf = HfDirInfo { files, extra_files, skipped_prefixes, bnb };
        Ok(Model {
            path: path.to_path_buf(),
            format: ModelFormat::HfDir,
            arch,
            metadata,
            tensors: Box::new(view),
            gguf: None,
            hf: Some(hf),
        })
    }

    /// Total parameters (elements of all tensors).
    pub fn n_params(&self) -> u64 {
        self.tensors.tensor_infos().iter().filter_map(|t| t.n_elements()).sum()
    }

    /// Total bytes of tensor data.
    pub fn n_tensor_bytes(&self) -> u64 {
        self.tensors.tensor_infos().iter().filter_map(|t| t.n_bytes()).sum()
    }
}

/// The tensors of an HF dir seen under GGUF names and layouts: each GGUF tensor is one HF
/// tensor with a layout fix (row permutation, Gemma's +1) applied when its bytes are asked for,
/// or (Mixture of Experts) the experts' HF matrices stacked, after the tensors the
/// architecture computes from config.json (rope factors, F32).
pub struct HfTensorView {
    weights: HfWeights,
    infos: Vec<TensorInfo>,
    /// The bytes of the computed tensors, which are `infos[..computed.len()]`.
    computed: Vec<Vec<u8>>,
    /// Per HF-backed GGUF tensor (`infos[computed.len()..]`): where it comes from.
    plan: Vec<Planned>,
}

/// Where one HF-backed GGUF tensor comes from.
enum Planned {
    /// One HF tensor (its info there) and the fix to apply.
    One(TensorInfo, TensorFix),
    /// The experts' HF tensors, in expert order, stacked on a new outermost dimension.
    Stacked(Vec<TensorInfo>),
    /// Row part of every expert of an HF tensor that holds them stacked (transformers 5).
    Part(RowPart),
}

/// Row part `part` of `n_parts` of every expert of an HF tensor that holds them stacked
/// (transformers 5's `mlp.experts.gate_up_proj`: gate rows, then up rows; `down_proj`: the
/// one part).
struct RowPart {
    hf: TensorInfo,
    part: usize,
    n_parts: usize,
}

/// What one projection of a layer's experts has been given so far.
enum Slot {
    /// One HF matrix per expert (the classic layout), in expert order.
    Experts(Vec<Option<TensorInfo>>),
    /// Part of an HF tensor holding every expert (transformers 5).
    Part(RowPart),
}

/// The expert tensors of one layer seen so far (llama.cpp's converter writes a layer's
/// stacked tensors once all of them are there, `Qwen2MoeModel.modify_tensors`).
struct PendingLayer {
    /// Per projection (in the family's order): the GGUF name, what was given for it.
    slots: Vec<(String, Option<Slot>)>,
}

impl PendingLayer {
    fn new(layer_tensors: &[String]) -> Self {
        PendingLayer { slots: layer_tensors.iter().map(|g| (g.clone(), None)).collect() }
    }

    fn complete(&self) -> bool {
        self.slots.iter().all(|(_, s)| match s {
            Some(Slot::Experts(m)) => m.iter().all(Option::is_some),
            Some(Slot::Part(_)) => true,
            None => false,
        })
    }

    /// The HF name of a tensor already given for a slot (for duplicate errors).
    fn first_name(slot: &Slot) -> Option<&str> {
        match slot {
            Slot::Experts(m) => m.iter().flatten().next().map(|t| t.name.as_str()),
            Slot::Part(p) => Some(&p.hf.name),
        }
    }

    /// The error for a layer left incomplete: the first projection with something missing.
    fn missing_error(&self, path: &Path) -> ModelError {
        let count = self.slots.iter().find_map(|(_, s)| match s {
            Some(Slot::Experts(m)) => Some(m.len() as u32),
            Some(Slot::Part(p)) => p.hf.ne.last().map(|&n| n as u32),
            None => None,
        });
        let seen_any = self.slots.iter().find_map(|(_, s)| s.as_ref().and_then(Self::first_name)).unwrap_or("");
        for (gguf, slot) in &self.slots {
            let (missing, example) = match slot {
                Some(Slot::Experts(m)) if m.iter().any(Option::is_none) => {
                    let missing: Vec<u32> =
                        m.iter().enumerate().filter(|(_, t)| t.is_none()).map(|(i, _)| i as u32).collect();
                    // A slot of experts is made with its first one, so there is one to name.
                    let seen = m.iter().flatten().next().expect("a slot of experts holds one");
                    let example = expert_name_like(&seen.name, missing[0]);
                    (missing, example)
                }
                None => {
                    return ModelError::MissingExpertProjection {
                        path: path.to_path_buf(),
                        gguf: gguf.clone(),
                        seen: seen_any.to_string(),
                    }
                }
                _ => continue,
            };
            let gguf = gguf.clone();
            return ModelError::MissingExperts {
                path: path.to_path_buf(),
                gguf,
                count: count.unwrap_or(0),
                missing,
                example,
            };
        }
        unreachable!("missing_error is only called on an incomplete layer")
    }
}

impl HfTensorView {
    fn new(
        path: &Path,
        weights: HfWeights,
        arch: &'static dyn Arch,
        config: &serde_json::Value,
    ) -> Result<Self, ModelError> {
        let arch_err = |source| ModelError::Arch { path: path.to_path_buf(), source };
        let mut infos = Vec::new();
        let mut plan = Vec::new();
        let mut computed = Vec::new();
        let extra = arch.extra_tensors(config).map_err(arch_err)?;
        for (name, values) in extra {
            infos.push(TensorInfo::new(name, GgmlType::F32, vec![values.len() as u64]));
            computed.push(values.iter().flat_map(|x| x.to_le_bytes()).collect());
        }
        let mut seen: std::collections::HashMap<String, String> =
            infos.iter().map(|t| (t.name.clone(), "(computed from config.json)".to_string())).collect();
        let mut pending: std::collections::BTreeMap<u32, PendingLayer> = Default::default();
        for st in weights.tensors() {
            let slice = arch.hf_expert_slice(&st.name, config).map_err(arch_err)?;
            let fused = match &slice {
                Some(_) => None,
                None => arch.hf_fused_experts(&st.name, config).map_err(arch_err)?,
            };
            let map = match (&slice, &fused) {
                (None, None) => match arch.hf_to_gguf_tensor(&st.name, config).map_err(arch_err)? {
                    Some(map) => Some(map),
                    None => continue,
                },
                _ => None,
            };
            let ty = ggml_type_of_dtype(st.dtype).ok_or_else(|| ModelError::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor: st.name.clone(),
                dtype: st.dtype,
            })?;
            let hf_info = TensorInfo::from_shape(st.name.clone(), ty, &st.shape);
            let duplicate = |first: &str, gguf: &str| ModelError::DuplicateMapping {
                path: path.to_path_buf(),
                first: first.to_string(),
                second: st.name.clone(),
                gguf: gguf.to_string(),
            };
            let layer_id = if let Some(sl) = slice {
                let layer = pending.entry(sl.layer).or_insert_with(|| PendingLayer::new(&sl.layer_tensors));
                let slot = &mut layer.slots[sl.order];
                let members = match slot.1.get_or_insert_with(|| Slot::Experts(vec![None; sl.count as usize])) {
                    Slot::Experts(m) => m,
                    part @ Slot::Part(_) => {
                        return Err(duplicate(PendingLayer::first_name(part).unwrap_or(""), &sl.gguf));
                    }
                };
                if let Some(first) = &members[sl.index as usize] {
                    return Err(duplicate(&first.name, &format!("{} (expert {})", sl.gguf, sl.index)));
                }
                members[sl.index as usize] = Some(hf_info);
                sl.layer
            } else if let Some(f) = fused {
                let n_parts = f.parts.len();
                let shape_ok = hf_info.ne.len() == 3
                    && hf_info.ne[2] == u64::from(f.count)
                    && hf_info.ne[1].is_multiple_of(n_parts as u64);
                if !shape_ok {
                    return Err(ModelError::FusedExpertShape {
                        path: path.to_path_buf(),
                        tensor: st.name.clone(),
                        shape: st.shape.clone(),
                        count: f.count,
                        n_parts,
                    });
                }
                let layer = pending.entry(f.layer).or_insert_with(|| PendingLayer::new(&f.layer_tensors));
                for (part, (order, gguf)) in f.parts.iter().enumerate() {
                    let slot = &mut layer.slots[*order];
                    if let Some(given) = &slot.1 {
                        return Err(duplicate(PendingLayer::first_name(given).unwrap_or(""), gguf));
                    }
                    slot.1 = Some(Slot::Part(RowPart { hf: hf_info.clone(), part, n_parts }));
                }
                f.layer
            } else {
                let map = map.expect("neither an expert slice nor fused experts");
                if let Some(first) = seen.insert(map.name.clone(), st.name.clone()) {
                    return Err(duplicate(&first, &map.name));
                }
                let out_ty = map.fix.output_type(ty);
                infos.push(TensorInfo { name: map.name, ty: out_ty, ne: hf_info.ne.clone() });
                plan.push(Planned::One(hf_info, map.fix));
                continue;
            };
            if pending[&layer_id].complete() {
                let layer = pending.remove(&layer_id).expect("present");
                for (gguf, slot) in layer.slots {
                    let (info, planned, first) = match slot.expect("complete") {
                        Slot::Experts(members) => {
                            let members: Vec<TensorInfo> = members.into_iter().map(|m| m.expect("all seen")).collect();
                            let info = stacked_info(path, &gguf, &members)?;
                            let first = members[0].name.clone();
                            (info, Planned::Stacked(members), first)
                        }
                        Slot::Part(p) => {
                            let mut ne = p.hf.ne.clone();
                            ne[1] /= p.n_parts as u64;
                            let info = TensorInfo { name: gguf.clone(), ty: p.hf.ty, ne };
                            let first = p.hf.name.clone();
                            (info, Planned::Part(p), first)
                        }
                    };
                    seen.insert(gguf, first);
                    infos.push(info);
                    plan.push(planned);
                }
            }
        }
        if let Some((_, layer)) = pending.into_iter().next() {
            return Err(layer.missing_error(path));
        }
        Ok(HfTensorView { weights, infos, computed, plan })
    }

    /// The bitsandbytes weights under the GGUF names they map to, in tensor order.
    fn bnb_by_gguf_name(&self) -> Vec<(String, BnbTensor)> {
        let by_hf: std::collections::HashMap<&str, &BnbTensor> =
            self.weights.bnb_tensors().iter().map(|b| (b.name.as_str(), b)).collect();
        let hf_backed = &self.infos[self.computed.len()..];
        hf_backed
            .iter()
            .zip(&self.plan)
            .filter_map(|(info, p)| match p {
                Planned::One(hf, _) => by_hf.get(hf.name.as_str()).map(|b| (info.name.clone(), (*b).clone())),
                Planned::Stacked(_) | Planned::Part(_) => None,
            })
            .collect()
    }
}

/// The GGUF info of experts stacked into `gguf`: their common type and shape, plus the
/// expert count as the outermost dimension.
fn stacked_info(path: &Path, gguf: &str, members: &[TensorInfo]) -> Result<TensorInfo, ModelError> {
    let first = &members[0];
    for m in &members[1..] {
        let what = if m.ty != first.ty {
            "dtype"
        } else if m.ne != first.ne {
            "shape"
        } else {
            continue;
        };
        return Err(ModelError::ExpertMismatch {
            path: path.to_path_buf(),
            gguf: gguf.into(),
            first: first.name.clone(),
            other: m.name.clone(),
            what,
        });
    }
    let mut ne = first.ne.clone();
    ne.push(members.len() as u64);
    Ok(TensorInfo { name: gguf.into(), ty: first.ty, ne })
}

impl RowPart {
    /// This part of every expert of `bytes` (the HF tensor, shape [experts, n_parts·rows,
    /// columns]: `hf.ne` reversed), concatenated in expert order; the tensor itself, not a
    /// copy, when it is the one part (`down_proj`).
    fn of<'b>(&self, bytes: Cow<'b, [u8]>) -> Cow<'b, [u8]> {
        if self.n_parts == 1 {
            return bytes;
        }
        let per_expert = bytes.len() / (self.hf.ne[2] as usize).max(1);
        let part_len = per_expert / self.n_parts;
        if part_len == 0 {
            return Cow::Owned(Vec::new());
        }
        let range = self.part * part_len..(self.part + 1) * part_len;
        Cow::Owned(bytes.chunks_exact(per_expert).flat_map(|e| &e[range.clone()]).copied().collect())
    }
}

/// `name` (an expert's HF tensor, `...experts.E.leaf`) with expert `e` in place of E.
fn expert_name_like(name: &str, e: u32) -> String {
    let Some(at) = name.find(".experts.") else {
        return name.to_string();
    };
    let (head, tail) = name.split_at(at + ".experts.".len());
    let rest = tail.split_once('.').map_or("", |(_, r)| r);
    format!("{head}{e}.{rest}")
}

impl TensorSource for HfTensorView {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        let i = self
            .infos
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))?;
        let Some(i) = i.checked_sub(self.computed.len()) else {
            return Ok(Cow::Borrowed(&self.computed[i]));
        };
        let (hf_info, fix) = match &self.plan[i] {
            Planned::One(hf_info, fix) => (hf_info, fix),
            Planned::Stacked(members) => {
                let mut out = Vec::new();
                for m in members {
                    out.extend_from_slice(&self.weights.tensor_data(&m.name)?);
                }
                return Ok(Cow::Owned(out));
            }
            Planned::Part(p) => return Ok(p.of(self.weights.tensor_data(&p.hf.name)?)),
        };
        let bytes = self.weights.tensor_data(&hf_info.name)?;
        if matches!(fix, TensorFix::Copy) {
            return Ok(bytes);
        }
        let (_, fixed) =
            arch::apply_fix(fix, hf_info, &bytes).map_err(|e| FormatError::Other(format!("{}: {e}", hf_info.name)))?;
        Ok(Cow::Owned(fixed))
    }

    fn release(&self, name: &str) {
        if let Some(i) = self.infos.iter().position(|t| t.name == name).and_then(|i| i.checked_sub(self.computed.len()))
        {
            match &self.plan[i] {
                Planned::One(hf, _) => self.weights.release(&hf.name),
                Planned::Stacked(members) => members.iter().for_each(|m| self.weights.release(&m.name)),
                Planned::Part(p) => self.weights.release(&p.hf.name),
            }
        }
    }
}

/// `general.file_type` value (llama.cpp `llama_ftype`) for a plain output type.
pub fn file_type_of(ty: GgmlType) -> Option<u32> {
    Some(match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::BF16 => 32,
        _ => return None,
    })
}

/// Sets `general.file_type`, keeping its position when present.
pub fn set_file_type(md: &mut Metadata, ty: GgmlType) {
    if let Some(ft) = file_type_of(ty) {
        md.insert("general.file_type", MetaValue::U32(ft));
    }
}
