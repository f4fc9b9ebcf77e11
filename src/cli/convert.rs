//! `llmtool convert IN OUT`: HF dir → GGUF, GGUF → HF dir, GGUF → GGUF, HF → HF.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indexmap::IndexMap;
use llmtool_formats::atomic::{check_output_not_input, AtomicDir};
use llmtool_formats::gguf::GgufHeader;
use llmtool_formats::hf::{write_hf_files, HfFiles};
use llmtool_formats::safetensors::{parse_size, write_sharded, StTensor};
use llmtool_formats::{FormatError, GgmlType, TensorInfo, TensorSource};

use crate::model::{dtype_of_ggml_type, set_file_type, Model, ModelFormat};
use crate::passes::convert::{gguf_types, hf_model_dtype, hf_types, retype_bytes, OutType, Retyped};
use crate::progress::Progress;
use crate::stream::with_lookahead;
use crate::{arch, tokenizer};

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// Input: a GGUF file or an HF model directory (config.json + *.safetensors).
    pub input: PathBuf,
    /// Output: a `.gguf` file, or a directory for HF output.
    pub output: PathBuf,
    /// Element type of float tensors in the output (default: keep the input's; see README).
    #[arg(long, value_enum)]
    pub outtype: Option<OutType>,
    /// Output format; by default `.gguf` means GGUF and anything else an HF dir.
    #[arg(long, value_enum)]
    pub to: Option<OutFormat>,
    /// Largest safetensors shard for HF output, e.g. 5GB (10^9 bytes), 500MiB.
    #[arg(long, value_name = "SIZE")]
    pub shard_size: Option<String>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    Gguf,
    Hf,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let started = Instant::now();
    let out_format = args.to.unwrap_or_else(|| {
        let is_gguf = args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if is_gguf {
            OutFormat::Gguf
        } else {
            OutFormat::Hf
        }
    });
    if args.shard_size.is_some() && out_format == OutFormat::Gguf {
        bail!("--shard-size applies to HF (safetensors) output only");
    }
    check_output_not_input(&args.output, &[args.input.as_path()])?;
    let model = Model::open(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?;
    let written = match out_format {
        OutFormat::Gguf => to_gguf(&model, &args)?,
        OutFormat::Hf => to_hf(&model, &args)?,
    };
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "wrote {} ({:.1} MB in {:.2} s, {:.0} MB/s)",
            args.output.display(),
            written as f64 / 1e6,
            secs,
            written as f64 / 1e6 / secs.max(1e-9)
        );
    }
    Ok(())
}

fn to_gguf(model: &Model, args: &ConvertArgs) -> Result<u64> {
    let mut metadata = model.metadata.clone();
    let source: Box<dyn TensorSource + '_> = match (&model.gguf, args.outtype) {
        // GGUF → GGUF without re-typing: the same tensors, bytes borrowed from the map.
        (Some(_), None) => Box::new(Retyped::new(model.tensors.as_ref(), &types_of(model.tensors.tensor_infos()))),
        _ => {
            let types = gguf_types(model.tensors.tensor_infos(), args.outtype);
            if let Some(o) = args.outtype {
                set_file_type(&mut metadata, o.ggml());
            } else if model.format == ModelFormat::HfDir {
                set_file_type(&mut metadata, dominant(&types));
            }
            Box::new(Retyped::new(model.tensors.as_ref(), &types))
        }
    };
    let mut header = GgufHeader::new(metadata, source.tensor_infos().to_vec())?;
    if let Some(g) = &model.gguf {
        // Keep the input's version and alignment so an unchanged file is byte-identical.
        header.version = g.version;
        header.alignment = g.alignment;
    }
    super::write_gguf_output(&header, source.as_ref(), &args.output, args.force, args.quiet, "convert")
}

fn types_of(infos: &[TensorInfo]) -> Vec<GgmlType> {
    infos.iter().map(|t| t.ty).collect()
}

/// The most common type among matrices (for `general.file_type`).
fn dominant(types: &[GgmlType]) -> GgmlType {
    let mut best = (0, GgmlType::F32);
    for &t in types {
        let c = types.iter().filter(|&&u| u == t).count();
        if c > best.0 {
            best = (c, t);
        }
    }
    best.1
}

/// One output tensor of an HF target: its safetensors entry and where it comes from.
struct HfPlanEntry {
    st: StTensor,
    source: String,
    fix: arch::TensorFix,
    out_ty: GgmlType,
}

fn to_hf(model: &Model, args: &ConvertArgs) -> Result<u64> {
    let infos = model.tensors.tensor_infos();
    let model_dtype = hf_model_dtype(infos, args.outtype);
    let dtype_name = torch_dtype_name(model_dtype);
    let out_types = hf_types(infos, model_dtype);

    // HF → HF reads the weights in HF form (no renames, no layout fixes); the others read
    // the model's GGUF-form tensors.
    let hf_form = match &model.hf {
        Some(_) => Some(HfFormSource::open(&model.path)?),
        None => None,
    };
    let (files, plan, extra_files) = match &model.hf {
        Some(hf) => {
            // HF → HF: same names and layouts, re-typed and re-sharded.
            let mut files = hf.files.clone();
            if args.outtype.is_some() {
                if let Some(obj) = files.config.as_object_mut() {
                    obj.insert("torch_dtype".into(), dtype_name.into());
                }
            }
            let view = hf_form.as_ref().expect("opened above");
            (files, hf_passthrough_plan(model, view, args.outtype)?, hf.extra_files.clone())
        }
        None => {
            let arch = model.arch;
            let config = arch.metadata_to_config(&model.metadata, infos, dtype_name)?;
            let (tokenizer_json, tokenizer_config, special_tokens_map) =
                if model.metadata.contains_key("tokenizer.ggml.model") {
                    let t = tokenizer::gguf_metadata_to_hf(&model.metadata)?;
                    (Some(t.tokenizer_json), Some(t.tokenizer_config), Some(t.special_tokens_map))
                } else {
                    (None, None, None)
                };
            let generation_config = generation_config_from(&config);
            let files = HfFiles { config, generation_config, tokenizer_json, tokenizer_config, special_tokens_map };
            let mut plan = Vec::with_capacity(infos.len());
            for (info, &out_ty) in infos.iter().zip(&out_types) {
                let map = arch.gguf_to_hf_tensor(&info.name, &model.metadata)?;
                let dtype = dtype_of_ggml_type(out_ty)
                    .with_context(|| format!("tensor '{}': no safetensors dtype for {out_ty}", info.name))?;
                plan.push(HfPlanEntry {
                    st: StTensor { name: map.name, dtype, shape: info.shape() },
                    source: info.name.clone(),
                    fix: map.fix,
                    out_ty,
                });
            }
            (files, plan, Vec::new())
        }
    };

    let shard_size = args.shard_size.as_deref().map(parse_size).transpose()?;
    let dir = AtomicDir::create(&args.output, args.force)?;
    write_hf_files(dir.path(), &files)?;
    let total: u64 = plan.iter().filter_map(|p| TensorInfo::from_shape("", p.out_ty, &p.st.shape).n_bytes()).sum();
    let mut progress = Progress::new(total, "convert", args.quiet);
    let sts: Vec<StTensor> = plan.iter().map(|p| p.st.clone()).collect();
    let mut st_metadata = IndexMap::new();
    match &hf_form {
        // HF → HF keeps the input's __metadata__ (including carried GGUF metadata).
        Some(view) => st_metadata.extend(view.weights.metadata().iter().map(|(k, v)| (k.clone(), v.clone()))),
        None => {
            st_metadata.insert("format".to_string(), "pt".to_string());
            let fp = crate::meta_carry::fingerprint(&files.json_values());
            st_metadata
                .insert(crate::meta_carry::CARRY_KEY.to_string(), crate::meta_carry::encode(&model.metadata, &fp));
        }
    }
    let source: &dyn TensorSource = match &hf_form {
        Some(view) => view,
        None => model.tensors.as_ref(),
    };
    let mut done = 0u64;
    with_lookahead(
        plan.len(),
        |i| hf_tensor_bytes(source, &plan[i]),
        |i| source.release(&plan[i].source),
        |next| {
            write_sharded(
                dir.path(),
                &sts,
                Some(&st_metadata),
                shard_size,
                |i, _| next(i),
                |b| {
                    done += b;
                    progress.set(done)
                },
            )
        },
    )
    .with_context(|| format!("writing {}", args.output.display()))?;
    progress.finish();
    for extra in &extra_files {
        copy_extra(model.path.as_path(), extra, dir.path())?;
    }
    dir.commit()?;
    Ok(total)
}

/// HF → HF: every tensor under its own name, re-typed when asked.
fn hf_passthrough_plan(model: &Model, view: &HfFormSource, outtype: Option<OutType>) -> Result<Vec<HfPlanEntry>> {
    let mut plan = Vec::new();
    for st in view.weights.tensors() {
        let ty = crate::model::ggml_type_of_dtype(st.dtype);
        let out_ty = match (ty, outtype) {
            (Some(t), Some(o)) if t.is_float() => o.ggml(),
            (Some(t), _) => t,
            (None, _) => bail!(
                "{}: tensor '{}' has dtype {:?}, which llmtool cannot convert",
                model.path.display(),
                st.name,
                st.dtype
            ),
        };
        let dtype = dtype_of_ggml_type(out_ty).expect("plain type");
        plan.push(HfPlanEntry {
            st: StTensor { name: st.name.clone(), dtype, shape: st.shape.clone() },
            source: st.name.clone(),
            fix: arch::TensorFix::Copy,
            out_ty,
        });
    }
    Ok(plan)
}

/// The bytes of one HF output tensor: read in the source's form, dequantized to F32 when a
/// layout fix needs float math on a block type, fixed, then re-typed to the output dtype.
fn hf_tensor_bytes<'a>(source: &'a dyn TensorSource, entry: &HfPlanEntry) -> Result<Cow<'a, [u8]>, FormatError> {
    let info = source.tensor_info(&entry.source).ok_or_else(|| FormatError::NoSuchTensor(entry.source.clone()))?;
    let bytes = source.tensor_bytes(&entry.source)?;
    if matches!(entry.fix, arch::TensorFix::Copy) {
        return retype_bytes(&info.name, info.ty, entry.out_ty, bytes);
    }
    let work_ty = if info.ty.is_quantized() { GgmlType::F32 } else { info.ty };
    let bytes = retype_bytes(&info.name, info.ty, work_ty, bytes)?;
    let work_info = TensorInfo { name: info.name.clone(), ty: work_ty, ne: info.ne.clone() };
    let (fixed_info, fixed) = arch::apply_fix(&entry.fix, &work_info, &bytes)
        .map_err(|e| FormatError::Other(format!("tensor '{}': {e}", info.name)))?;
    Ok(Cow::Owned(retype_bytes(&info.name, fixed_info.ty, entry.out_ty, Cow::Owned(fixed))?.into_owned()))
}

fn generation_config_from(config: &serde_json::Value) -> Option<serde_json::Value> {
    let mut g = serde_json::Map::new();
    g.insert("_from_model_config".into(), true.into());
    for key in ["bos_token_id", "eos_token_id", "pad_token_id"] {
        if let Some(v) = config.get(key) {
            g.insert(key.into(), v.clone());
        }
    }
    Some(serde_json::Value::Object(g))
}

fn torch_dtype_name(ty: GgmlType) -> &'static str {
    match ty {
        GgmlType::F16 => "float16",
        GgmlType::BF16 => "bfloat16",
        _ => "float32",
    }
}

fn copy_extra(input_root: &Path, extra: &Path, out_dir: &Path) -> Result<()> {
    let rel = extra.strip_prefix(input_root).unwrap_or(extra);
    let dst = out_dir.join(rel.file_name().unwrap_or(rel.as_os_str()));
    std::fs::copy(extra, &dst).with_context(|| format!("copying {} to {}", extra.display(), dst.display()))?;
    Ok(())
}

/// An HF dir's weights under their own names, as a tensor source.
struct HfFormSource {
    weights: llmtool_formats::safetensors::SafetensorsSet,
    infos: Vec<TensorInfo>,
}

impl HfFormSource {
    fn open(path: &Path) -> Result<Self> {
        let dir = llmtool_formats::hf::HfDir::open(path)?;
        let mut infos = Vec::new();
        for st in dir.weights.tensors() {
            let ty = crate::model::ggml_type_of_dtype(st.dtype).with_context(|| {
                format!(
                    "{}: tensor '{}' has dtype {:?}, which llmtool cannot convert",
                    path.display(),
                    st.name,
                    st.dtype
                )
            })?;
            infos.push(TensorInfo::from_shape(st.name.clone(), ty, &st.shape));
        }
        Ok(HfFormSource { weights: dir.weights, infos })
    }
}

impl TensorSource for HfFormSource {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        self.weights.tensor_data(name).map(Cow::Borrowed).ok_or_else(|| FormatError::NoSuchTensor(name.to_string()))
    }

    fn release(&self, name: &str) {
        self.weights.release(name)
    }
}
