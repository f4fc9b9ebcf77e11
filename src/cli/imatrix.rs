//! `llmtool imatrix MODEL --text FILE [-o FILE]`: the importance matrix of a model on a text,
//! computed by the core as `llama-imatrix` computes it (`pipeline::compute_imatrix`), written in
//! llama.cpp's GGUF imatrix format or its legacy `.dat`; `--in-file` adds earlier files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use llmtool_formats::atomic::check_output_not_input;
use llmtool_formats::imatrix::Imatrix;

use super::perplexity::{read_text, Bar};
use crate::model::Model;
use crate::pipeline::{compute_imatrix, ImatrixOptions, Stage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImatrixFormat {
    /// GGUF imatrix (current llama.cpp).
    Gguf,
    /// The legacy `.dat` of llama.cpp releases before the GGUF format.
    Dat,
}

#[derive(clap::Args, Debug)]
pub struct ImatrixArgs {
    /// The model: a GGUF file or an HF model directory. Optional with only --in-file (combine).
    #[arg(required_unless_present = "in_file")]
    pub model: Option<PathBuf>,
    /// UTF-8 calibration text (e.g. wiki.train.raw). One trailing newline is dropped.
    #[arg(long, short = 'f', value_name = "FILE", requires = "model")]
    pub text: Option<PathBuf>,
    /// Window (context) length, as llama-imatrix's -c.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub ctx: usize,
    /// Process at most N windows (default: all).
    #[arg(long, value_name = "N")]
    pub chunks: Option<usize>,
    /// Output file.
    #[arg(long, short = 'o', default_value = "imatrix.gguf", value_name = "FILE")]
    pub output: PathBuf,
    /// Output format (default: `dat` for a `.dat` output, else `gguf`).
    #[arg(long, value_enum)]
    pub output_format: Option<ImatrixFormat>,
    /// Earlier imatrix files (GGUF or legacy) whose statistics are added (repeatable).
    #[arg(long, value_name = "FILE")]
    pub in_file: Vec<PathBuf>,
    /// Keep the KV cache in f32 (default: f16 like llama-imatrix's default cache, so the
    /// statistics are those llama.cpp computes).
    #[arg(long)]
    pub kv_f32: bool,
    /// Also collect the output projection (`output.weight`), like --process-output.
    #[arg(long)]
    pub process_output: bool,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: ImatrixArgs) -> Result<()> {
    let format = args.output_format.unwrap_or_else(|| {
        if args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("dat")) {
            ImatrixFormat::Dat
        } else {
            ImatrixFormat::Gguf
        }
    });
    let mut inputs: Vec<&Path> = args.in_file.iter().map(PathBuf::as_path).collect();
    inputs.extend(args.model.as_deref());
    inputs.extend(args.text.as_deref());
    check_output_not_input(&args.output, &inputs)?;
    if args.output.exists() && !args.force {
        bail!("{} exists (use --force to replace it)", args.output.display());
    }
    // Earlier files first: a legacy file is counted with the GGUF data's chunk size.
    let mut combined: Option<Imatrix> = None;
    for p in &args.in_file {
        let m = Imatrix::read(p)?;
        combined = Some(match combined {
            None => m,
            Some(mut c) => {
                c.combine(&m).with_context(|| format!("adding {}", p.display()))?;
                c
            }
        });
    }
    // The model is opened once; --in-file data must fit it before any window is computed
    // (what is computed from it fits by construction).
    let model = match &args.model {
        Some(p) => Some(Model::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => None,
    };
    if let (Some(model), Some(prev)) = (&model, &combined) {
        prev.check_fits(model.tensors.tensor_infos())
            .with_context(|| format!("the imatrix does not fit {}", model.path.display()))?;
    }
    let result = match (&model, &args.text) {
        (Some(model), Some(text)) => {
            let computed = compute(&args, model, text)?;
            match combined {
                None => computed,
                Some(prev) if prev.is_legacy => {
                    let mut c = computed;
                    c.combine(&prev).context("adding the --in-file data")?;
                    c
                }
                Some(mut prev) => {
                    prev.combine(&computed).context("adding the computed data to the --in-file data")?;
                    prev
                }
            }
        }
        (Some(_), None) if args.in_file.is_empty() => bail!("give --text FILE to compute an imatrix"),
        _ => combined.expect("clap requires a model or --in-file"),
    };
    match format {
        ImatrixFormat::Gguf => result.write_gguf(&args.output, args.force)?,
        ImatrixFormat::Dat => result.write_legacy(&args.output, args.force)?,
    }
    if !args.quiet {
        eprintln!(
            "imatrix: {} entries, {} chunks of {} tokens → {}",
            result.entries.len(),
            result.chunk_count,
            result.chunk_size,
            args.output.display()
        );
    }
    Ok(())
}

fn compute(args: &ImatrixArgs, model: &Model, text_path: &Path) -> Result<Imatrix> {
    let text = read_text(text_path)?;
    let opts =
        ImatrixOptions { ctx: args.ctx, chunks: args.chunks, kv_f32: args.kv_f32, process_output: args.process_output };
    let bar = Bar::new(0, args.quiet);
    let run = compute_imatrix(Stage::of(model), &text, &text_path.display().to_string(), &opts, |s, n| {
        if let Some(b) = &bar.0 {
            b.set_length(n as u64);
        }
        bar.set(s.chunk as u64, format!("imatrix [{}] PPL {:.4}", s.chunk, s.running_ppl))
    })
    .with_context(|| format!("computing the imatrix of {}", model.path.display()))?;
    bar.finish();
    let r = &run.ppl;
    if !args.quiet {
        eprintln!(
            "imatrix: {} windows of {} tokens, PPL {:.4} ± {:.5}, {:.1} tokens/s",
            r.n_chunks, r.n_ctx, r.ppl, r.ppl_uncertainty, r.tokens_per_second
        );
    }
    Ok(run.imatrix)
}
