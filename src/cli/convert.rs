//! `llmtool convert IN OUT`: HF dir → GGUF, GGUF → HF dir, GGUF → GGUF, HF → HF.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indexmap::IndexMap;
use llmtool_formats::atomic::{check_output_not_input, AtomicDir};
use llmtool_formats::hf::write_hf_files;
use llmtool_formats::safetensors::{parse_size, StTensor};
use llmtool_formats::{FormatError, TensorInfo, TensorSource};

use super::output::{
    torch_dtype_name, write_hf_from_gguf_form, write_hf_tensors, HfPlanEntry, OutFormat, OutputOptions,
};
use crate::arch;
use crate::model::{dtype_of_ggml_type, Model};
use crate::passes::convert::{hf_model_dtype, OutType};
use crate::pipeline::{write_gguf, Convert, Pass, Stage, WriteOptions};

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

pub fn run(args: ConvertArgs) -> Result<()> {
    let started = Instant::now();
    let out_format = OutFormat::for_path(&args.output, args.to);
    if args.shard_size.is_some() && out_format == OutFormat::Gguf {
        bail!("--shard-size applies to HF (safetensors) output only");
    }
    check_output_not_input(&args.output, &[args.input.as_path()])?;
    let model = Model::open(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?;
    if let Some(hf) = model.hf.as_ref().filter(|hf| !hf.skipped_prefixes.is_empty()) {
        eprintln!(
            "note: skipped the tensors under {} (not part of the {} text model, as in llama.cpp's conversion)",
            hf.skipped_prefixes.join(", "),
            model.arch.gguf_arch()
        );
    }
    let written = match out_format {
        OutFormat::Gguf => to_gguf(&model, &args)?,
        OutFormat::Hf => to_hf(&model, &args)?,
    };
    if !args.quiet {
        print_written(&args.output, written, started);
    }
    Ok(())
}

/// The summary of a conversion: `written` bytes to `output` since `started`.
pub(super) fn print_written(output: &Path, written: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} ({:.1} MB in {:.2} s, {:.0} MB/s)",
        output.display(),
        written as f64 / 1e6,
        secs,
        written as f64 / 1e6 / secs.max(1e-9)
    );
}

fn to_gguf(model: &Model, args: &ConvertArgs) -> Result<u64> {
    let convert = Convert { outtype: args.outtype };
    let converted = convert.apply(Stage::of(model))?;
    let opts = WriteOptions { force: args.force, quiet: args.quiet, label: "convert" };
    Ok(write_gguf(converted.stage(), &args.output, &opts)?)
}

fn to_hf(model: &Model, args: &ConvertArgs) -> Result<u64> {
    let shard_size = args.shard_size.as_deref().map(parse_size).transpose()?;
    let Some(hf) = &model.hf else {
        // GGUF form → HF: config, tokenizer files and tensors mapped back by the architecture.
        let opts = OutputOptions { force: args.force, quiet: args.quiet, label: "convert", shard_size };
        return write_hf_from_gguf_form(
            model.arch,
            &model.metadata,
            model.tensors.as_ref(),
            args.outtype,
            &args.output,
            &opts,
        );
    };
    // HF → HF: same names and layouts, re-typed and re-sharded; reads the weights in HF form
    // (no renames, no layout fixes).
    let view = HfFormSource::open(&model.path)?;
    let dtype_name = torch_dtype_name(hf_model_dtype(model.tensors.tensor_infos(), args.outtype));
    let mut files = hf.files.clone();
    if args.outtype.is_some() {
        if let Some(obj) = files.config.as_object_mut() {
            obj.insert("torch_dtype".into(), dtype_name.into());
        }
    }
    if !view.weights.bnb_tensors().is_empty() {
        drop_bnb_quantization_config(&mut files.config, view.weights.bnb_tensors().len());
    }
    let plan = hf_passthrough_plan(model, &view, args.outtype)?;
    let dir = AtomicDir::create(&args.output, args.force)?;
    write_hf_files(dir.path(), &files)?;
    // HF → HF keeps the input's __metadata__ (including carried GGUF metadata).
    let st_metadata: IndexMap<String, String> =
        view.weights.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let opts = OutputOptions { force: args.force, quiet: args.quiet, label: "convert", shard_size };
    let total = write_hf_tensors(&dir, &view, &plan, &st_metadata, &opts)
        .with_context(|| format!("writing {}", args.output.display()))?;
    for extra in &hf.extra_files {
        copy_extra(model.path.as_path(), extra, dir.path())?;
    }
    dir.commit()?;
    Ok(total)
}

/// A bitsandbytes input is written dequantized: its config.json loses `quantization_config`
/// (transformers would otherwise look for the packed weights), said on stderr.
fn drop_bnb_quantization_config(config: &mut serde_json::Value, n_tensors: usize) {
    let removed = config.as_object_mut().and_then(|o| o.shift_remove("quantization_config"));
    eprintln!(
        "note: {n_tensors} bitsandbytes-quantized weights written dequantized{}",
        if removed.is_some() { "; quantization_config removed from config.json" } else { "" }
    );
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
            expert: None,
        });
    }
    Ok(plan)
}

fn copy_extra(input_root: &Path, extra: &Path, out_dir: &Path) -> Result<()> {
    let rel = extra.strip_prefix(input_root).unwrap_or(extra);
    let dst = out_dir.join(rel.file_name().unwrap_or(rel.as_os_str()));
    std::fs::copy(extra, &dst).with_context(|| format!("copying {} to {}", extra.display(), dst.display()))?;
    Ok(())
}

/// An HF dir's weights under their own names, as a tensor source (bitsandbytes weights
/// dequantized, their companion tensors left out).
struct HfFormSource {
    weights: llmtool_formats::hf::HfWeights,
    infos: Vec<TensorInfo>,
}

impl HfFormSource {
    fn open(path: &Path) -> Result<Self> {
        let dir = llmtool_formats::hf::HfDir::open(path)?;
        let weights = llmtool_formats::hf::HfWeights::new(dir.weights)?;
        let mut infos = Vec::new();
        for st in weights.tensors() {
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
        Ok(HfFormSource { weights, infos })
    }
}

impl TensorSource for HfFormSource {
    fn tensor_infos(&self) -> &[TensorInfo] {
        &self.infos
    }

    fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, FormatError> {
        self.weights.tensor_data(name)
    }

    fn release(&self, name: &str) {
        self.weights.release(name)
    }
}
