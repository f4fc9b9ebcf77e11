//! The merge plan: for every output tensor (GGUF name), which input tensors feed it, with
//! which resolved parameters — mergekit's `MergePlanner` (`plan.py`) stated over GGUF names.
//!
//! - `models:` configs become one slice over all layers, the base appended when it is not
//!   listed (`normalize_config`).
//! - Output layers are numbered in slice order; layer `idx` of a slice of `n` layers reads
//!   layer `layer_range.0 + idx` of each source, with `t = idx / (n − 1)` (`t = 1` when
//!   `n = 1`) for gradients.
//! - Non-layer tensors: `token_embd` is planned over the first slice's sources (mergekit's
//!   `pre_weights`), the others (final norm, `output`) over the last slice's (`post_weights`),
//!   both with `t = 0`: mergekit 0.1.5's `plan_module` reads both with a `ConfigReader` whose
//!   `t` is 0 (releases before it used `t = 1` for the post weights). They are merged with the
//!   same method. A source without
//!   `output.weight` (tied embeddings) gives `token_embd.weight` instead (mergekit's
//!   `tied_names`). Tensors with no HF equivalent are copied from the reference model.
//! - Parameters: a model's from its source entry, then the slice's, then the global ones;
//!   global parameters from the slice's, then the global ones (`ConfigReader.parameter`).
//!   Filters match HF names: the input's name for model parameters, the output's for global
//!   ones, as mergekit does.

use std::collections::BTreeSet;

use llmtool_formats::{GgmlType, MetaValue, Metadata, TensorInfo};
use sha2::{Digest, Sha256};

use super::config::{model_param_names, FloatDtype, MergeConfig, OutputSlice, ParamValue, Params, SliceSource};
use super::error::MergeRunError;
use super::inputs::InputTensors;
use super::methods::dtype_exact::{self, Arithmetic, Dtype};
use super::methods::{GlobalParams, MergeMethod, ModelParams};
use crate::arch::{Arch, TensorFix, TensorMap};

/// One input of an output tensor.
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub model: usize,
    /// GGUF name in that model.
    pub tensor: String,
    pub params: ModelParams,
    pub is_base: bool,
    /// Passthrough's `scale`.
    pub scale: Option<f64>,
}

/// How one output tensor is produced.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    /// GGUF name, output type, `ne`.
    pub out: TensorInfo,
    pub hf_name: String,
    /// Row-major (torch) shape of the HF-layout tensor.
    pub shape: Vec<usize>,
    /// Applied to the merged f32 HF-layout tensor to give the GGUF layout.
    pub to_gguf: TensorFix,
    pub inputs: Vec<PlanInput>,
    pub global: GlobalParams,
    pub seed: u64,
    /// Copied byte for byte from this (model, tensor): no HF equivalent.
    pub copy_from: Option<(usize, String)>,
    /// Mixture of Experts: the tensor stacks these experts' HF matrices (outermost dimension),
    /// and is merged expert by expert, as mergekit merges the HF checkpoints' per-expert
    /// tensors (`hf_name` is then the first expert's, for the parameter filters).
    pub experts: Option<Vec<String>>,
}

/// The whole merge.
pub struct MergePlan {
    pub method: MergeMethod,
    pub arch: &'static dyn Arch,
    /// The output's metadata: the reference model's, `<arch>.block_count` updated.
    pub metadata: Metadata,
    pub tensors: Vec<TensorPlan>,
    /// The model whose metadata and tokenizer the output takes: the base, else the first
    /// source of the first slice.
    pub reference: usize,
    /// Round inputs to this type first (`dtype:`).
    pub input_round: Option<GgmlType>,
    /// The config's `dtype:` (what mergekit computes in).
    pub dtype: Option<FloatDtype>,
    /// How tensors are merged: f64 math (default) or mergekit's rounding in `dtype`.
    pub arithmetic: Arithmetic,
}

impl MergePlan {
    /// Chooses the arithmetic; `Dtype` needs the config's `dtype` and a method whose torch
    /// computation [`dtype_exact`] reproduces.
    pub fn set_arithmetic(&mut self, arithmetic: Arithmetic) -> Result<(), MergeRunError> {
        if arithmetic == Arithmetic::Dtype {
            if self.dtype.is_none() {
                return Err(MergeRunError::Plan(
                    "--arithmetic dtype follows mergekit's rounding in the config's `dtype`, and the config sets \
                     none (add `dtype: float16`, `bfloat16` or `float32`)"
                        .into(),
                ));
            }
            if let Some(why) = dtype_exact::unsupported(self.method) {
                return Err(MergeRunError::Plan(format!(
                    "--arithmetic dtype cannot reproduce mergekit's {} bit for bit: {why}; use the default \
                     --arithmetic f32",
                    self.method.name()
                )));
            }
        }
        self.arithmetic = arithmetic;
        Ok(())
    }

    /// The merge dtype of `--arithmetic dtype`.
    pub fn merge_dtype(&self) -> Option<Dtype> {
        self.dtype.map(|d| match d {
            FloatDtype::F32 => Dtype::F32,
            FloatDtype::F16 => Dtype::F16,
            FloatDtype::Bf16 => Dtype::Bf16,
        })
    }
}

/// `blk.N.rest` → (N, rest).
pub fn split_layer(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (n, tail) = rest.split_once('.')?;
    Some((n.parse().ok()?, tail))
}

fn n_layers<I: InputTensors + ?Sized>(inputs: &I, model: usize) -> usize {
    let arch = inputs.arch(model).gguf_arch();
    match inputs.metadata(model).get(&format!("{arch}.block_count")) {
        Some(MetaValue::U32(n)) => *n as usize,
        Some(MetaValue::U64(n)) => *n as usize,
        Some(MetaValue::I32(n)) if *n >= 0 => *n as usize,
        _ => inputs
            .tensor_infos(model)
            .iter()
            .filter_map(|t| split_layer(&t.name))
            .map(|(n, _)| n + 1)
            .max()
            .unwrap_or(0),
    }
}

/// The per-tensor seed: SHA-256 of the run seed and the output tensor name.
pub fn tensor_seed(seed: u64, name: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

struct Resolver<'a> {
    config: &'a MergeConfig,
    slice: &'a OutputSlice,
    t: f64,
}

impl Resolver<'_> {
    /// mergekit `ConfigReader.parameter`: source (for `model`) → slice → global.
    fn lookup(&self, key: &str, tensor: &str, source: Option<&SliceSource>) -> Option<ParamValue> {
        let levels: [Option<&Params>; 3] =
            [source.map(|s| &s.parameters), Some(&self.slice.parameters), Some(&self.config.parameters)];
        levels.into_iter().flatten().find_map(|p| p.get(key).and_then(|s| s.evaluate(tensor, self.t)))
    }

    fn num(&self, key: &str, tensor: &str, source: Option<&SliceSource>) -> Result<Option<f64>, MergeRunError> {
        match self.lookup(key, tensor, source) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                MergeRunError::Plan(format!(
                    "parameter '{key}' for tensor '{tensor}': expected a number, found {}",
                    v.describe()
                ))
            }),
        }
    }

    fn flag(&self, key: &str, tensor: &str) -> Result<Option<bool>, MergeRunError> {
        match self.lookup(key, tensor, None) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| {
                MergeRunError::Plan(format!(
                    "parameter '{key}' for tensor '{tensor}': expected a boolean, found {}",
                    v.describe()
                ))
            }),
        }
    }

    fn global(&self, method: MergeMethod, tensor: &str) -> Result<GlobalParams, MergeRunError> {
        let mut g = GlobalParams::default();
        for &key in method.global_params() {
            match key {
                "normalize" => g.normalize = self.flag(key, tensor)?,
                "rescale" => g.rescale = self.flag(key, tensor)?,
                "int8_mask" => g.int8_mask = self.flag(key, tensor)?,
                "nuslerp_flatten" => g.nuslerp_flatten = self.flag(key, tensor)?,
                "nuslerp_row_wise" => g.nuslerp_row_wise = self.flag(key, tensor)?,
                "filter_wise" => g.filter_wise = self.flag(key, tensor)?,
                "dare_rescale_legacy" => g.dare_rescale_legacy = self.flag(key, tensor)?,
                "lambda" => g.lambda = self.num(key, tensor, None)?,
                "t" => g.t = self.num(key, tensor, None)?,
                _ => {}
            }
        }
        Ok(g)
    }

    fn model(
        &self,
        method: MergeMethod,
        tensor: &str,
        src: &SliceSource,
    ) -> Result<(ModelParams, Option<f64>), MergeRunError> {
        let mut p = ModelParams::default();
        let mut scale = None;
        for key in model_param_names(method) {
            let v = self.num(key, tensor, Some(src))?;
            match key {
                "weight" => p.weight = v,
                "density" => p.density = v,
                "gamma" => p.gamma = v,
                "epsilon" => p.epsilon = v,
                "scale" => scale = v,
                _ => {}
            }
        }
        Ok((p, scale))
    }
}

/// Output element type of a tensor: `out_dtype`, else `dtype`, else the reference input's
/// float type (F16 for a quantized one); 1-D tensors F32 (GGUF's convention, llama.cpp).
fn output_type(config: &MergeConfig, input_ty: GgmlType, n_dims: usize) -> GgmlType {
    if n_dims <= 1 {
        return GgmlType::F32;
    }
    if let Some(d) = config.out_dtype.or(config.dtype) {
        return d.ggml();
    }
    match input_ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => input_ty,
        _ => GgmlType::F16,
    }
}

/// Builds the plan of `config` over `inputs`.
pub fn plan<I: InputTensors + ?Sized>(config: &MergeConfig, inputs: &I, seed: u64) -> Result<MergePlan, MergeRunError> {
    let method = config.merge_method;
    let idx = |r: &str| {
        inputs.index_of(r).ok_or_else(|| MergeRunError::Plan(format!("model '{r}' is not among the loaded inputs")))
    };
    // Same architecture everywhere.
    let refs = config.referenced_models();
    let first = idx(&refs[0])?;
    let arch = inputs.arch(first);
    for r in &refs {
        let m = idx(r)?;
        if inputs.arch(m).gguf_arch() != arch.gguf_arch() {
            return Err(MergeRunError::Plan(format!(
                "{} is a {} model but {} is a {} model: models of different architectures cannot be merged",
                inputs.path(m).display(),
                inputs.arch(m).gguf_arch(),
                inputs.path(first).display(),
                arch.gguf_arch()
            )));
        }
    }
    let layers_of = |r: &str| inputs.index_of(r).map(|m| n_layers(inputs, m)).unwrap_or(0);
    let slices = config.normalized_slices(layers_of);
    let reference = match &config.base_model {
        Some(b) => idx(b)?,
        None => idx(&slices[0].sources[0].model)?,
    };

    // Check slices: same length per slice, ranges inside the models, base present if needed.
    let mut total_layers = 0usize;
    for (i, s) in slices.iter().enumerate() {
        let len = s.sources[0].layer_range.1 - s.sources[0].layer_range.0;
        for (j, src) in s.sources.iter().enumerate() {
            let (a, b) = src.layer_range;
            if b - a != len {
                return Err(MergeRunError::Plan(format!(
                    "slices[{i}]: all sources of a slice must span the same number of layers ({len} in sources[0], {} in sources[{j}])",
                    b - a
                )));
            }
            let m = idx(&src.model)?;
            let n = n_layers(inputs, m);
            if b > n {
                return Err(MergeRunError::Plan(format!(
                    "slices[{i}].sources[{j}]: layer_range [{a}, {b}] exceeds the {n} layers of {}",
                    inputs.path(m).display()
                )));
            }
        }
        if method == MergeMethod::Passthrough && s.sources.len() != 1 {
            return Err(MergeRunError::Plan(format!(
                "slices[{i}]: passthrough takes exactly one source per slice, found {}",
                s.sources.len()
            )));
        }
        if method.needs_base() {
            let base = s
                .base_model
                .as_ref()
                .or(config.base_model.as_ref())
                .ok_or_else(|| MergeRunError::Plan(format!("merge_method {} needs base_model", method.name())))?;
            let b = idx(base)?;
            if !s.sources.iter().any(|src| inputs.index_of(&src.model) == Some(b)) {
                return Err(MergeRunError::Plan(format!(
                    "slices[{i}]: the base model '{base}' must be one of the slice's sources for {}",
                    method.name()
                )));
            }
        }
        total_layers += len;
    }

    let mut metadata = inputs.metadata(reference).clone();
    let bc_key = format!("{}.block_count", arch.gguf_arch());
    metadata.insert(&bc_key, MetaValue::U32(total_layers as u32));

    let mut tensors = Vec::new();
    let ref_infos = inputs.tensor_infos(reference);
    let is_pre = |name: &str| name.starts_with("token_embd");
    // Non-layer tensors: the reference's, then any other source's, in order.
    let mut non_layer: Vec<String> = Vec::new();
    for m in std::iter::once(reference).chain(refs.iter().filter_map(|r| inputs.index_of(r))) {
        for t in inputs.tensor_infos(m) {
            if split_layer(&t.name).is_none() && !non_layer.contains(&t.name) {
                non_layer.push(t.name.clone());
            }
        }
    }
    let _ = ref_infos;
    let ctx = PlanCtx { config, inputs, method, arch, out_md: &metadata, seed };
    for name in non_layer.iter().filter(|n| is_pre(n)) {
        tensors.push(ctx.plan_tensor(&slices[0], 0.0, name, |_src| name.clone(), reference)?);
    }
    let mut out_layer = 0usize;
    for s in &slices {
        let len = s.sources[0].layer_range.1 - s.sources[0].layer_range.0;
        let first_model = idx(&s.sources[0].model)?;
        for l in 0..len {
            let t = if len > 1 { l as f64 / (len - 1) as f64 } else { 1.0 };
            let in_layer0 = s.sources[0].layer_range.0 + l;
            let suffixes: Vec<String> = inputs
                .tensor_infos(first_model)
                .iter()
                .filter_map(|ti| {
                    split_layer(&ti.name).filter(|(n, _)| *n == in_layer0).map(|(_, rest)| rest.to_string())
                })
                .collect();
            for suffix in &suffixes {
                let out_name = format!("blk.{out_layer}.{suffix}");
                tensors.push(ctx.plan_tensor(
                    s,
                    t,
                    &out_name,
                    |src| format!("blk.{}.{suffix}", src.layer_range.0 + l),
                    reference,
                )?);
            }
            out_layer += 1;
        }
    }
    let last = slices.last().expect("at least one slice");
    for name in non_layer.iter().filter(|n| !is_pre(n)) {
        tensors.push(ctx.plan_tensor(last, 0.0, name, |_src| name.clone(), reference)?);
    }

    // general.file_type from the dominant matrix type; no quantization version for float outputs.
    let types: BTreeSet<GgmlType> = tensors.iter().filter(|t| t.out.ne.len() >= 2).map(|t| t.out.ty).collect();
    if types.iter().all(|t| !t.is_quantized()) {
        metadata.remove("general.quantization_version");
    }
    let dominant =
        crate::passes::convert::hf_model_dtype(&tensors.iter().map(|t| t.out.clone()).collect::<Vec<_>>(), None);
    crate::model::set_file_type(&mut metadata, dominant);
    Ok(MergePlan {
        method,
        arch,
        metadata,
        tensors,
        reference,
        input_round: config.dtype.map(|d| d.ggml()).filter(|t| *t != GgmlType::F32),
        dtype: config.dtype,
        arithmetic: Arithmetic::F32,
    })
}

struct PlanCtx<'a, I: InputTensors + ?Sized> {
    config: &'a MergeConfig,
    inputs: &'a I,
    method: MergeMethod,
    arch: &'static dyn Arch,
    out_md: &'a Metadata,
    seed: u64,
}

impl<I: InputTensors + ?Sized> PlanCtx<'_, I> {
    fn info(&self, model: usize, name: &str) -> Option<&TensorInfo> {
        self.inputs.tensor_infos(model).iter().find(|t| t.name == name)
    }

    fn plan_tensor(
        &self,
        slice: &OutputSlice,
        t: f64,
        out_name: &str,
        in_name: impl Fn(&SliceSource) -> String,
        reference: usize,
    ) -> Result<TensorPlan, MergeRunError> {
        let inputs = self.inputs;
        let base_ref = slice.base_model.as_ref().or(self.config.base_model.as_ref());
        let base_idx = base_ref.and_then(|b| inputs.index_of(b));
        let resolver = Resolver { config: self.config, slice, t };

        // Tensors without an HF equivalent are copied from the reference (or first source);
        // stacked experts are merged expert by expert under their HF names.
        let experts = self.arch.gguf_expert_names(out_name, self.out_md).ok().flatten();
        let expert_map = |names: &Vec<String>| TensorMap { name: names[0].clone(), fix: TensorFix::Copy };
        let out_map = match &experts {
            Some(names) => Ok(expert_map(names)),
            None => self.arch.gguf_to_hf_tensor(out_name, self.out_md),
        };
        let mut plan_inputs = Vec::with_capacity(slice.sources.len());
        let mut shapes: Vec<(usize, Vec<u64>)> = Vec::new();
        for src in &slice.sources {
            let m = inputs.index_of(&src.model).expect("checked");
            let mut name = in_name(src);
            if self.info(m, &name).is_none() && name == "output.weight" && self.info(m, "token_embd.weight").is_some() {
                name = "token_embd.weight".into(); // tied embeddings (mergekit tied_names)
            }
            let Some(info) = self.info(m, &name) else {
                return Err(MergeRunError::Plan(format!(
                    "{} has no tensor '{name}' (needed for output tensor '{out_name}')",
                    inputs.path(m).display()
                )));
            };
            shapes.push((m, info.ne.clone()));
            let hf_in = match self.arch.gguf_expert_names(&name, inputs.metadata(m)).ok().flatten() {
                Some(names) => expert_map(&names).name,
                None => self
                    .arch
                    .gguf_to_hf_tensor(&name, inputs.metadata(m))
                    .map(|map| map.name)
                    .unwrap_or_else(|_| name.clone()),
            };
            let (params, scale) = resolver.model(self.method, &hf_in, src)?;
            plan_inputs.push(PlanInput { model: m, tensor: name, params, is_base: Some(m) == base_idx, scale });
        }
        // Same shape everywhere.
        let (m0, ne0) = &shapes[0];
        for (m, ne) in &shapes[1..] {
            if ne != ne0 {
                let what = if out_name.starts_with("token_embd") || out_name.starts_with("output.") {
                    " (the vocabularies differ: merging models with different tokenizers — mergekit's \
                     tokenizer_source: union — is not supported)"
                } else {
                    ""
                };
                return Err(MergeRunError::Plan(format!(
                    "tensor '{out_name}': shape {:?} in {} but {:?} in {}{what}",
                    ne0.iter().rev().collect::<Vec<_>>(),
                    inputs.path(*m0).display(),
                    ne.iter().rev().collect::<Vec<_>>(),
                    inputs.path(*m).display()
                )));
            }
        }
        let ref_input = plan_inputs.iter().find(|p| p.is_base).unwrap_or(&plan_inputs[0]);
        let in_info = self.info(ref_input.model, &ref_input.tensor).expect("checked").clone();
        let seed = tensor_seed(self.seed, out_name);
        let Ok(out_map) = out_map else {
            let from = if self.info(reference, out_name).is_some() { reference } else { ref_input.model };
            let ty = self.info(from, out_name).map(|i| i.ty).unwrap_or(in_info.ty);
            return Ok(TensorPlan {
                out: TensorInfo { name: out_name.into(), ty, ne: in_info.ne.clone() },
                hf_name: out_name.into(),
                shape: in_info.shape().iter().map(|&d| d as usize).collect(),
                to_gguf: TensorFix::Copy,
                inputs: plan_inputs,
                global: GlobalParams::default(),
                seed,
                copy_from: Some((from, out_name.into())),
                experts: None,
            });
        };
        let global = resolver.global(self.method, &out_map.name)?;
        let out_ty = output_type(self.config, in_info.ty, in_info.ne.len());
        Ok(TensorPlan {
            out: TensorInfo { name: out_name.into(), ty: out_ty, ne: in_info.ne.clone() },
            hf_name: out_map.name,
            shape: in_info.shape().iter().map(|&d| d as usize).collect(),
            to_gguf: out_map.fix.inverse(),
            inputs: plan_inputs,
            global,
            seed,
            copy_from: None,
            experts,
        })
    }
}
