//! Writing a model held in internal (GGUF) form — metadata plus a [`TensorSource`] of
//! GGUF-named tensors — as a GGUF file or an HF model directory. Every pass that produces a
//! model (convert, quantize, lora, chatvector, merge) ends here; outputs are written to a
//! temp file/dir and renamed into place, so a failure leaves nothing half-written.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Context, Result};
use indexmap::IndexMap;
use llmtool_formats::atomic::AtomicDir;
use llmtool_formats::gguf::GgufHeader;
use llmtool_formats::hf::{write_hf_files, HfFiles};
use llmtool_formats::safetensors::{write_sharded, StTensor};
use llmtool_formats::{FormatError, GgmlType, Metadata, TensorInfo, TensorSource};

use crate::arch::{self, Arch};
use crate::model::{dtype_of_ggml_type, set_file_type};
use crate::passes::convert::{gguf_types, hf_model_dtype, hf_types, retype_bytes, OutType, Retyped};
use crate::progress::Progress;
use crate::stream::with_lookahead;
use crate::tokenizer;

/// What an output path becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    Gguf,
    Hf,
}

impl OutFormat {
    /// `explicit` if given; otherwise GGUF for a `.gguf` path and an HF dir for anything else.
    pub fn for_path(path: &Path, explicit: Option<OutFormat>) -> OutFormat {
        explicit.unwrap_or_else(|| {
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
                OutFormat::Gguf
            } else {
                OutFormat::Hf
            }
        })
    }
}

/// How an output is written.
#[derive(Debug, Clone, Copy)]
pub struct OutputOptions<'a> {
    /// Replace an existing output.
    pub force: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Progress bar label (the command's name).
    pub label: &'a str,
    /// Largest safetensors shard (HF output only).
    pub shard_size: Option<u64>,
}

/// Writes a model in GGUF form to `output` as `format`. `outtype` re-types float tensors
/// (GGUF: [`gguf_types`]; HF: one model dtype); `None` keeps each tensor's type for GGUF
/// and picks the dominant float type for HF. Returns the bytes of tensor data written.
pub fn write_model(
    arch: &'static dyn Arch,
    metadata: &Metadata,
    source: &dyn TensorSource,
    outtype: Option<OutType>,
    output: &Path,
    format: OutFormat,
    opts: &OutputOptions,
) -> Result<u64> {
    match format {
        OutFormat::Hf => write_hf_from_gguf_form(arch, metadata, source, outtype, output, opts),
        OutFormat::Gguf => {
            let mut metadata = metadata.clone();
            let types = match outtype {
                Some(o) => {
                    set_file_type(&mut metadata, o.ggml());
                    gguf_types(source.tensor_infos(), Some(o))
                }
                None => source.tensor_infos().iter().map(|t| t.ty).collect(),
            };
            let retyped = Retyped::new(source, &types);
            let header = GgufHeader::new(metadata, retyped.tensor_infos().to_vec())?;
            write_gguf_output(&header, &retyped, output, opts.force, opts.quiet, opts.label)
        }
    }
}

/// Streams `source` into a new GGUF file at `output` (temp file, fsync, rename) with a
/// progress bar; the tensors are produced one ahead of the writer. Returns bytes written.
pub fn write_gguf_output(
    header: &GgufHeader,
    source: &dyn TensorSource,
    output: &Path,
    force: bool,
    quiet: bool,
    label: &str,
) -> Result<u64> {
    let opts = crate::pipeline::WriteOptions { force, quiet, label };
    Ok(crate::pipeline::write_header_and_tensors(header, source, output, &opts)?)
}

/// One output tensor of an HF target: its safetensors entry and where it comes from.
pub(crate) struct HfPlanEntry {
    pub st: StTensor,
    /// The tensor's name in the source.
    pub source: String,
    pub fix: arch::TensorFix,
    pub out_ty: GgmlType,
    /// Mixture of Experts: this output is expert `.0` of the `.1` experts stacked in the
    /// source tensor (its outermost dimension).
    pub expert: Option<(usize, usize)>,
}

/// GGUF form → HF dir: config.json from the metadata, tokenizer files from
/// `tokenizer.ggml.*`, tensors renamed and re-laid-out by the architecture, the GGUF
/// metadata carried in the safetensors `__metadata__` so a round trip is lossless.
pub fn write_hf_from_gguf_form(
    arch: &'static dyn Arch,
    metadata: &Metadata,
    source: &dyn TensorSource,
    outtype: Option<OutType>,
    output: &Path,
    opts: &OutputOptions,
) -> Result<u64> {
    let infos = source.tensor_infos();
    let model_dtype = hf_model_dtype(infos, outtype);
    let mut config = arch.metadata_to_config(metadata, infos, torch_dtype_name(model_dtype))?;
    arch.config_from_tensors(metadata, source, &mut config)?;
    let (tokenizer_json, tokenizer_config, special_tokens_map) = if metadata.contains_key("tokenizer.ggml.model") {
        let t = tokenizer::gguf_metadata_to_hf(metadata)?;
        (Some(t.tokenizer_json), Some(t.tokenizer_config), Some(t.special_tokens_map))
    } else {
        (None, None, None)
    };
    let generation_config = generation_config_from(&config);
    let files = HfFiles { config, generation_config, tokenizer_json, tokenizer_config, special_tokens_map };
    let mut plan = Vec::with_capacity(infos.len());
    for (info, out_ty) in infos.iter().zip(hf_types(infos, model_dtype)) {
        if arch::is_rope_factor_tensor(&info.name) {
            continue; // config.json's rope_scaling holds their parameters
        }
        let dtype = dtype_of_ggml_type(out_ty)
            .with_context(|| format!("tensor '{}': no safetensors dtype for {out_ty}", info.name))?;
        if let Some(names) = arch.gguf_expert_names(&info.name, metadata)? {
            // unstack: one HF matrix per expert (the outermost dimension)
            let shape = info.shape();
            if shape.len() != 3 || shape[0] != names.len() as u64 {
                anyhow::bail!(
                    "tensor '{}': expected {} experts stacked in a 3-D tensor, found shape {shape:?}",
                    info.name,
                    names.len()
                );
            }
            let count = names.len();
            for (e, name) in names.into_iter().enumerate() {
                plan.push(HfPlanEntry {
                    st: StTensor { name, dtype, shape: shape[1..].to_vec() },
                    source: info.name.clone(),
                    fix: arch::TensorFix::Copy,
                    out_ty,
                    expert: Some((e, count)),
                });
            }
            continue;
        }
        let map = arch.gguf_to_hf_tensor(&info.name, metadata)?;
        plan.push(HfPlanEntry {
            st: StTensor { name: map.name, dtype, shape: info.shape() },
            source: info.name.clone(),
            fix: map.fix,
            out_ty,
            expert: None,
        });
    }
    let dir = AtomicDir::create(output, opts.force)?;
    write_hf_files(dir.path(), &files)?;
    let mut st_metadata = IndexMap::new();
    st_metadata.insert("format".to_string(), "pt".to_string());
    let fp = crate::meta_carry::fingerprint(&files.json_values());
    st_metadata.insert(crate::meta_carry::CARRY_KEY.to_string(), crate::meta_carry::encode(metadata, &fp));
    let total = write_hf_tensors(&dir, source, &plan, &st_metadata, opts)
        .with_context(|| format!("writing {}", output.display()))?;
    dir.commit()?;
    Ok(total)
}

/// Streams the tensors of `plan` from `source` into (sharded) safetensors files in `dir`.
pub(crate) fn write_hf_tensors(
    dir: &AtomicDir,
    source: &dyn TensorSource,
    plan: &[HfPlanEntry],
    st_metadata: &IndexMap<String, String>,
    opts: &OutputOptions,
) -> Result<u64, FormatError> {
    let total: u64 = plan.iter().filter_map(|p| TensorInfo::from_shape("", p.out_ty, &p.st.shape).n_bytes()).sum();
    let mut progress = Progress::new(total, opts.label, opts.quiet);
    let sts: Vec<StTensor> = plan.iter().map(|p| p.st.clone()).collect();
    let mut done = 0u64;
    with_lookahead(
        plan.len(),
        |i| hf_tensor_bytes(source, &plan[i]),
        |i| source.release(&plan[i].source),
        |next| {
            write_sharded(
                dir.path(),
                &sts,
                Some(st_metadata),
                opts.shard_size,
                |i, _| next(i),
                |b| {
                    done += b;
                    progress.set(done)
                },
            )
        },
    )?;
    progress.finish();
    Ok(total)
}

/// The bytes of one HF output tensor: read in the source's form, dequantized to F32 when a
/// layout fix needs float math on a block type, fixed, then re-typed to the output dtype.
fn hf_tensor_bytes<'a>(source: &'a dyn TensorSource, entry: &HfPlanEntry) -> Result<Cow<'a, [u8]>, FormatError> {
    let info = source.tensor_info(&entry.source).ok_or_else(|| FormatError::NoSuchTensor(entry.source.clone()))?;
    let bytes = source.tensor_bytes(&entry.source)?;
    if let Some((e, count)) = entry.expert {
        // one expert's contiguous block of the stacked tensor (whole rows, so block types
        // split cleanly), re-typed on its own
        let len = bytes.len() / count;
        if len * count != bytes.len() {
            return Err(FormatError::Other(format!(
                "tensor '{}': {} bytes do not split into {count} experts",
                info.name,
                bytes.len()
            )));
        }
        let part = bytes[e * len..(e + 1) * len].to_vec();
        return Ok(Cow::Owned(retype_bytes(&info.name, info.ty, entry.out_ty, Cow::Owned(part))?.into_owned()));
    }
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

/// config.json's `torch_dtype` for a model dtype.
pub(crate) fn torch_dtype_name(ty: GgmlType) -> &'static str {
    match ty {
        GgmlType::F16 => "float16",
        GgmlType::BF16 => "bfloat16",
        _ => "float32",
    }
}
