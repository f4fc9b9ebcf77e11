//! `llmtool quantize IN OUT --type T`: a GGUF file or HF dir → a quantized GGUF file, with
//! llama.cpp's per-tensor type rules (`passes::quantize`).
//!
//! `--validate TEXT` runs after the output is committed: perplexity of IN and OUT on the text
//! and OUT's KL divergence from IN, on the inference core through the library
//! (`eval::validate`), IN scored from the model already opened (`--max-ppl-increase` turns it
//! into a gate for pipelines). A measured mix is `pipeline::QuantizeMix`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use llmtool_formats::atomic::check_output_not_input;
#[cfg(feature = "gpu")]
use llmtool_formats::gguf::GgufHeader;
use llmtool_formats::imatrix::Imatrix;
use llmtool_formats::GgmlType;
#[cfg(feature = "gpu")]
use llmtool_formats::TensorSource;

use super::perplexity::read_text;
use super::quantize_mix::MixArgs;
use crate::eval::validate::Windows;
use crate::eval::KldResult;
use crate::model::Model;
#[cfg(feature = "gpu")]
use crate::passes::quantize::GpuRetyped;
use crate::passes::quantize::{on_gpu, FileType, Override, Reason, TensorPlan};
use crate::passes::quantize_weights::check_plan;
use crate::pipeline::{
    check_kernels, write_gguf, MixImatrix, Pass, Quantize, QuantizeMix, QuantizeOptions, Stage, WriteOptions,
};
#[cfg(feature = "gpu")]
use crate::pipeline::{quantized_metadata, write_header_and_tensors};

#[derive(clap::Args, Debug)]
pub struct QuantizeArgs {
    /// Input: a GGUF file or an HF model directory.
    pub input: PathBuf,
    /// Output `.gguf` file.
    pub output: PathBuf,
    /// File type (llama.cpp names): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q2_K_S, Q3_K_S/M/L,
    /// Q4_K_S/M, Q5_K_S/M, Q6_K, IQ4_NL, IQ4_XS, IQ3_M, IQ3_S, IQ3_XS, IQ3_XXS, IQ2_M, IQ2_S,
    /// IQ2_XS, IQ2_XXS, IQ1_M, IQ1_S, F16, BF16, F32 (Q3_K, Q4_K, Q5_K mean the _M mixes).
    /// IQ3_XXS and below, and Q2_K_S, need --imatrix.
    #[arg(long = "type", short = 't', value_name = "T", required_unless_present_any = ["target_bpw", "target_size"])]
    pub ty: Option<String>,
    /// Give tensors whose name matches PATTERN (a regex searched in the name, or a glob
    /// such as `blk.*.attn_v.weight`) the tensor type TYPE; the first match wins. Repeatable.
    #[arg(long, value_name = "PATTERN=TYPE")]
    pub keep: Vec<String>,
    /// Read more `PATTERN=TYPE` overrides from FILE, one per line (`#` comments), e.g. a mix
    /// saved by --save-mix; they come after the --keep ones.
    #[arg(long, value_name = "FILE")]
    pub keep_file: Option<PathBuf>,
    #[command(flatten)]
    pub mix: Box<MixArgs>,
    /// Importance matrix (llama.cpp's GGUF or legacy .dat format, e.g. from `llmtool
    /// imatrix`): quantizers weight each column's error by it, as llama-quantize --imatrix.
    #[arg(long, value_name = "FILE")]
    pub imatrix: Option<PathBuf>,
    /// Use imatrix entries only for tensors whose name contains NAME. Repeatable.
    #[arg(long = "include-weights", value_name = "NAME", requires = "imatrix")]
    pub include_weights: Vec<String>,
    /// Do not use imatrix entries for tensors whose name contains NAME. Repeatable.
    #[arg(long = "exclude-weights", value_name = "NAME", requires = "imatrix")]
    pub exclude_weights: Vec<String>,
    /// Every quantized tensor gets the file type's default type (no K-mix rules).
    #[arg(long)]
    pub pure: bool,
    /// Print the per-tensor plan and sizes and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where the quantizers run: `cpu`, or `gpu` (Vulkan through wgpu; the types with GPU
    /// kernels run there, byte-identical to the CPU, the others on the CPU).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar, warnings or summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// After writing, validate on this UTF-8 text: perplexity of IN and OUT (llama.cpp's
    /// method) and OUT's KL divergence from IN.
    #[arg(long, value_name = "TEXT")]
    pub validate: Option<PathBuf>,
    /// Windows scored by --validate.
    #[arg(long, default_value_t = 10, value_name = "N", requires = "validate")]
    pub validate_chunks: usize,
    /// Window length of --validate.
    #[arg(long, default_value_t = 512, value_name = "N", requires = "validate")]
    pub validate_ctx: usize,
    /// With --validate: fail (exit 1, the output is kept) when OUT's perplexity exceeds IN's
    /// by more than PCT percent.
    #[arg(long, value_name = "PCT", requires = "validate")]
    pub max_ppl_increase: Option<f64>,
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let started = Instant::now();
    let use_gpu = match args.device.to_ascii_lowercase().as_str() {
        "cpu" => false,
        "gpu" => true,
        other => bail!("--device {other}: unknown device (expected cpu or gpu)"),
    };
    let mut keeps = args.keep.clone();
    if let Some(f) = &args.keep_file {
        keeps.extend(super::quantize_mix::read_keep_file(f)?);
    }
    let overrides = keeps.iter().map(|k| Override::parse(k)).collect::<Result<Vec<_>, _>>()?;
    let mix = args.mix.active();
    if mix && !overrides.is_empty() {
        bail!("--keep/--keep-file cannot be combined with --target-bpw/--target-size (the mix sets every tensor)");
    }
    if mix {
        super::quantize_mix::check_args(&args.mix)?;
    }
    if mix && use_gpu {
        bail!("--target-bpw/--target-size: the GPU quantizers take no importance weights; use --device cpu");
    }
    if !args.dry_run {
        let is_gguf = args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        if !is_gguf {
            bail!("{}: quantize writes GGUF only; give the output a .gguf extension", args.output.display());
        }
        check_output_not_input(&args.output, &[args.input.as_path()])?;
    }
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("setting up the thread pool")?;
    }

    if let Some(text) = &args.validate {
        if args.dry_run {
            bail!("--validate needs an output: it cannot be combined with --dry-run");
        }
        // Fail before the (long) quantization when the text cannot be used.
        read_text(text)?;
    }
    let model = Model::open(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?;
    let (imatrix_path, imatrix, ftype, overrides) = if mix {
        // Without --imatrix the mix computes one on the calibration text, saved next to the
        // output (the output is quantized with it and records its path, as with --imatrix).
        let im = match &args.imatrix {
            Some(p) => MixImatrix::Given(p.clone(), Imatrix::read(p)?),
            None => {
                let path = args.output.with_extension("imatrix.gguf");
                if !args.dry_run {
                    check_output_not_input(&path, &[args.input.as_path()])?;
                }
                MixImatrix::Computed { path, save: !args.dry_run }
            }
        };
        let mut opts = super::quantize_mix::options(&args.mix, im)?;
        opts.include_weights = args.include_weights.clone();
        opts.exclude_weights = args.exclude_weights.clone();
        opts.pure = args.pure;
        let mixer = QuantizeMix::new(opts);
        let quiet = args.quiet;
        let choice = mixer
            .choose(Stage::of(&model), &mut |e| {
                if !quiet {
                    super::quantize_mix::print_event(e, &mixer.opts)
                }
            })
            .with_context(|| format!("choosing a mix for {}", args.input.display()))?;
        let (path, im) = choice.imatrix.context("internal: a mix without its imatrix")?;
        (Some(path), Some(im), choice.ftype, choice.overrides)
    } else {
        let ty = args.ty.as_deref().unwrap_or_default();
        let ftype = FileType::parse(ty)
            .with_context(|| format!("--type {ty}: unknown type; expected one of {}", FileType::names()))?;
        let imatrix = args.imatrix.as_deref().map(Imatrix::read).transpose()?;
        (args.imatrix.clone(), imatrix, ftype, overrides)
    };
    let quantize = Quantize::new(QuantizeOptions {
        ftype,
        pure: args.pure,
        overrides,
        imatrix: imatrix_path.clone().zip(imatrix),
        include_weights: args.include_weights.clone(),
        exclude_weights: args.exclude_weights.clone(),
    })?;
    if let (Some((path, im)), Some((used, loaded))) = (&quantize.options().imatrix, quantize.imatrix_entries()) {
        if use_gpu {
            bail!("--imatrix: the GPU quantizers take no importance weights yet; use --device cpu");
        }
        // (A mix printed this line as it chose.)
        if !args.quiet && !mix {
            eprintln!("imatrix {}: {used} of {loaded} entries used, {} chunk(s)", path.display(), im.chunk_count);
        }
    }
    let stage = Stage::of(&model);
    let plan = quantize.plan_unchecked(stage)?;

    if args.dry_run {
        print_plan(&plan);
        print_summary(&plan, None, started.elapsed().as_secs_f64());
        if let Err(e) = check_plan(&plan, quantize.weights(), ftype) {
            eprintln!("note: this quantization cannot run as planned: {e}");
        }
        return Ok(());
    }
    check_kernels(&plan, ftype).map_err(|e| anyhow::anyhow!("{e}"))?;
    check_plan(&plan, quantize.weights(), ftype).with_context(|| match &args.imatrix {
        Some(im) => format!("cannot quantize {} with the imatrix {}", args.input.display(), im.display()),
        None => format!("cannot quantize {} to {}", args.input.display(), ftype.name()),
    })?;
    // Opened before anything is written: without an adapter the run fails here.
    let gpu = if use_gpu { Some(open_gpu()?) } else { None };
    if !args.quiet {
        let requant: Vec<&TensorPlan> =
            plan.iter().filter(|p| p.from != p.to && p.from.is_quantized() && p.to.is_quantized()).collect();
        if let Some(first) = requant.first() {
            eprintln!(
                "warning: requantizing {} tensor(s) that are already quantized (e.g. '{}' {} → {}): \
                 quality is lost; quantize from F16/BF16/F32 weights when you have them",
                requant.len(),
                first.name,
                first.from,
                first.to
            );
        }
        let fallbacks = plan.iter().filter(|p| p.fallback_from.is_some()).count();
        if fallbacks > 0 {
            eprintln!(
                "note: {fallbacks} tensor(s) have rows that do not split into the chosen type's blocks and \
                 fell back to another type (llama.cpp's rule; --dry-run lists them)"
            );
        }
    }

    let opts = WriteOptions { force: args.force, quiet: args.quiet, label: "quantize" };
    let written = match &gpu {
        Some(g) => write_on_gpu(stage, &plan, &quantize, g, &args.output, &opts)?,
        // Without an imatrix the pass quantizes with no weights: plain types go through the
        // block quantizers, types with only a row quantizer (IQ4_XS, IQ3_S, …) through
        // `quantize_rows(…, None)`, like ggml's `quantize_<type>(…, NULL)`.
        None => write_gguf(quantize.apply(stage)?.stage(), &args.output, &opts)?,
    };
    if !args.quiet {
        print_summary(&plan, Some(written), started.elapsed().as_secs_f64());
        if let Some(g) = &gpu {
            print_device_split(&plan, &gpu_name(g));
        }
        eprintln!("wrote {} ({:.1} MiB)", args.output.display(), written as f64 / MIB);
    }
    if let Some(text) = &args.validate {
        // The output against the input (already open) on the input's tokenization.
        let r =
            &validate(&model, &args.input, &args.output, text, args.validate_ctx, args.validate_chunks, args.quiet)?;
        let increase = 100.0 * (r.ppl / r.ppl_base - 1.0);
        println!(
            "validation on {} ({} windows of {} tokens, {} scored):",
            text.display(),
            r.n_chunks,
            args.validate_ctx,
            r.n_tokens
        );
        println!("  PPL before (IN):  {:.4} +/- {:.5}", r.ppl_base, r.ppl_base_uncertainty);
        println!("  PPL after (OUT):  {:.4} +/- {:.5}  ({increase:+.3} %)", r.ppl, r.ppl_uncertainty);
        println!(
            "  KLD mean {:.6} ± {:.6}, median {:.6}, 99 % {:.6}",
            r.kld_mean, r.kld_uncertainty, r.kld_median, r.kld_p99
        );
        println!("  same top-1 token: {:.3} %", 100.0 * r.same_top);
        if let Some(max) = args.max_ppl_increase {
            if increase > max {
                bail!(
                    "validation failed: perplexity rose by {increase:.3} % (> --max-ppl-increase {max} %); {} is kept",
                    args.output.display()
                );
            }
        }
    }
    Ok(())
}

/// The KL divergence of the written `output` from the opened input `model` (and both
/// perplexities) on `text`, `ctx`-token windows, at most `chunks` (`Scored::kld_of`).
fn validate(
    model: &Model,
    input: &Path,
    output: &Path,
    text: &Path,
    ctx: usize,
    chunks: usize,
    quiet: bool,
) -> Result<KldResult> {
    let text = read_text(text)?;
    super::pass_eval::kld_of_opened(model, input, output, &text, Windows { ctx, chunks }, "--validate-ctx", quiet)
}

/// The planned tensors quantized on the GPU (the types without a GPU kernel on the CPU),
/// written to `output`.
#[cfg(feature = "gpu")]
fn write_on_gpu(
    stage: Stage<'_>,
    plan: &[TensorPlan],
    quantize: &Quantize,
    gpu: &Gpu,
    output: &Path,
    opts: &WriteOptions,
) -> Result<u64> {
    let o = quantize.options();
    let path = o.imatrix.as_ref().map(|(p, _)| p.as_path());
    let metadata = quantized_metadata(stage.metadata, o.ftype, quantize.weights(), path);
    let infos: Vec<_> = plan.iter().map(TensorPlan::info).collect();
    let source = GpuRetyped::new(stage.tensors, infos, gpu);
    let header = GgufHeader::new(metadata, source.tensor_infos().to_vec())?;
    Ok(write_header_and_tensors(&header, &source, output, opts)?)
}

#[cfg(not(feature = "gpu"))]
fn write_on_gpu(_: Stage<'_>, _: &[TensorPlan], _: &Quantize, gpu: &Gpu, _: &Path, _: &WriteOptions) -> Result<u64> {
    match *gpu {}
}

#[cfg(feature = "gpu")]
type Gpu = llmtool_kernels::gpu::GpuContext;
#[cfg(not(feature = "gpu"))]
type Gpu = std::convert::Infallible;

/// The GPU for `--device gpu`, or an error naming what is missing.
fn open_gpu() -> Result<Gpu> {
    #[cfg(feature = "gpu")]
    {
        Gpu::new().map_err(|e| {
            anyhow::anyhow!(
                "--device gpu: {e}\n(a Vulkan driver is needed, e.g. the GPU vendor's driver or Mesa's \
                 `mesa-vulkan-drivers`; or use --device cpu)"
            )
        })
    }
    #[cfg(not(feature = "gpu"))]
    {
        bail!("--device gpu: this llmtool was built without the `gpu` feature; use --device cpu")
    }
}

#[cfg(feature = "gpu")]
fn gpu_name(g: &Gpu) -> String {
    g.describe()
}

#[cfg(not(feature = "gpu"))]
fn gpu_name(g: &Gpu) -> String {
    match *g {}
}

/// One line: which tensors were quantized on the GPU, and which types stayed on the CPU.
fn print_device_split(plan: &[TensorPlan], adapter: &str) {
    let changed = plan.iter().filter(|p| p.from != p.to);
    let (gpu, cpu): (Vec<&TensorPlan>, Vec<&TensorPlan>) = changed.partition(|p| on_gpu(p.from, p.to));
    let types = |v: &[&TensorPlan]| {
        let set: std::collections::BTreeSet<&str> = v.iter().map(|p| p.to.name()).collect();
        set.into_iter().collect::<Vec<_>>().join(", ")
    };
    let mut line = format!("device: GPU {adapter}: {} tensor(s) quantized on the GPU ({})", gpu.len(), types(&gpu));
    if !cpu.is_empty() {
        line += &format!("; {} tensor(s) on the CPU ({}: no GPU kernel)", cpu.len(), types(&cpu));
    }
    eprintln!("{line}");
}

const MIB: f64 = 1024.0 * 1024.0;

fn print_plan(plan: &[TensorPlan]) {
    for p in plan {
        let ne: Vec<String> = p.ne.iter().map(u64::to_string).collect();
        let why = match (p.reason, p.fallback_from) {
            (_, Some(f)) => format!(" (fallback from {f})"),
            (Reason::Override, None) => " (--keep)".to_string(),
            _ => String::new(),
        };
        println!("{:<40} [{:>14}] {:>6} -> {}{}", p.name, ne.join(", "), p.from.name(), p.to.name(), why);
    }
}

/// Per-type counts and sizes, then totals, bits per weight and time, on stderr.
fn print_summary(plan: &[TensorPlan], written: Option<u64>, secs: f64) {
    let bytes = |ty: GgmlType, ne: &[u64]| {
        llmtool_formats::TensorInfo { name: String::new(), ty, ne: ne.to_vec() }.n_bytes().unwrap_or(0)
    };
    let elems = |ne: &[u64]| ne.iter().product::<u64>();
    let mut by_type: BTreeMap<&'static str, (usize, u64, u64)> = BTreeMap::new();
    let (mut before, mut after, mut n) = (0u64, 0u64, 0u64);
    for p in plan {
        let e = by_type.entry(p.to.name()).or_default();
        e.0 += 1;
        e.1 += elems(&p.ne);
        e.2 += bytes(p.to, &p.ne);
        before += bytes(p.from, &p.ne);
        after += bytes(p.to, &p.ne);
        n += elems(&p.ne);
    }
    let bpw = |b: u64| if n > 0 { b as f64 * 8.0 / n as f64 } else { 0.0 };
    eprintln!("{:<8} {:>8} {:>14} {:>11} {:>6}", "type", "tensors", "weights", "MiB", "bpw");
    for (ty, (count, e, b)) in &by_type {
        let tbpw = if *e > 0 { *b as f64 * 8.0 / *e as f64 } else { 0.0 };
        eprintln!("{ty:<8} {count:>8} {e:>14} {:>11.2} {tbpw:>6.2}", *b as f64 / MIB);
    }
    eprintln!(
        "tensor data: {:.2} MiB ({:.2} bpw) -> {:.2} MiB ({:.2} bpw){}; {:.2} s",
        before as f64 / MIB,
        bpw(before),
        after as f64 / MIB,
        bpw(after),
        written.map(|w| format!("; file {:.2} MiB", w as f64 / MIB)).unwrap_or_default(),
        secs
    );
}
