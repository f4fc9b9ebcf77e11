//! `llmtool export ollama|lmstudio`: a GGUF file laid out for a local runtime, with a model
//! card (`export::layout`: every output directory is written whole to a temp beside it and
//! renamed into place); this module parses, measures the card's figures when asked, prints.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::pass_eval::{measure_kld, score_model};
use super::perplexity::read_text;
use crate::export::card::{Quality, QualityRow};
use crate::export::layout::{LmStudioOptions, LmStudioPlan, OllamaOptions, OllamaPlan, Source};
use crate::export::Placed;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    target: Target,
}

#[derive(clap::Subcommand, Debug)]
enum Target {
    /// An Ollama directory: Modelfile (FROM, the chat TEMPLATE translated from the GGUF's Jinja
    /// template, PARAMETER stop, SYSTEM), the GGUF beside it, and a model card README.md.
    Ollama(OllamaArgs),
    /// LM Studio's models layout: ROOT/PUBLISHER/NAME-GGUF/NAME-TYPE.gguf and a model card README.md.
    Lmstudio(LmStudioArgs),
}

/// What the model card may add.
#[derive(clap::Args, Debug)]
struct CardArgs {
    /// A `llmtool build` report (report.json): its table of steps (quant type, size, PPL, KLD)
    /// goes into the model card.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Measure the file's perplexity on this UTF-8 text for the model card.
    #[arg(long, value_name = "FILE", conflicts_with = "report")]
    eval_text: Option<PathBuf>,
    /// Windows scored by --eval-text.
    #[arg(long, default_value_t = 4, value_name = "N", requires = "eval_text")]
    eval_chunks: usize,
    /// Window length of --eval-text.
    #[arg(long, default_value_t = 512, value_name = "N", requires = "eval_text")]
    eval_ctx: usize,
    /// With --eval-text: also the KL divergence of the file from this model (e.g. the F16 original).
    #[arg(long, value_name = "MODEL", requires = "eval_text")]
    kl_base: Option<PathBuf>,
}

/// What both layouts take.
#[derive(clap::Args, Debug)]
struct Common {
    /// Copy the GGUF (default: a hard link where the file system allows one).
    #[arg(long)]
    copy: bool,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    card: CardArgs,
}

#[derive(clap::Args, Debug)]
struct OllamaArgs {
    /// The GGUF file.
    model: PathBuf,
    /// The directory to write (must not exist unless --force).
    dir: PathBuf,
    /// The system message (Modelfile SYSTEM).
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// The model's name: the GGUF's file name in DIR and the name in `ollama create NAME`
    /// (default: the input's file name).
    #[arg(long)]
    name: Option<String>,
    /// An Ollama template (Go text/template) to use instead of translating the GGUF's chat template.
    #[arg(long, value_name = "FILE")]
    template: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
struct LmStudioArgs {
    /// The GGUF file.
    model: PathBuf,
    /// LM Studio's models directory (or any root to copy from).
    root: PathBuf,
    /// The publisher directory (LM Studio shows models as PUBLISHER/NAME-GGUF; default: the
    /// GGUF's general.organization).
    #[arg(long)]
    publisher: Option<String>,
    /// The model's name (default: the input's file name without its quantization suffix).
    #[arg(long = "model", value_name = "NAME")]
    model_name: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub fn run(args: ExportArgs) -> Result<()> {
    match args.target {
        Target::Ollama(a) => ollama(a),
        Target::Lmstudio(a) => lmstudio(a),
    }
}

/// The model card's quality table, from `--report` or measured with `--eval-text`.
fn quality(args: &CardArgs, src: &Source, quiet: bool) -> Result<Option<Quality>> {
    if let Some(report) = &args.report {
        return Ok(Some(quality_from_report(src, report, quiet)?));
    }
    let Some(text_path) = &args.eval_text else { return Ok(None) };
    let (ctx, chunks) = (args.eval_ctx, args.eval_chunks);
    let how = format!(
        "Measured by llmtool at export: perplexity on `{}`, {chunks} windows of {ctx} tokens{}.",
        text_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        if args.kl_base.is_some() { "; KLD is the mean KL divergence of this file from the reference" } else { "" }
    );
    let this = |ppl, unc, kld| QualityRow {
        label: format!("`{}`", src.path.file_name().unwrap_or_default().to_string_lossy()),
        quant: src.quant.clone(),
        size_bytes: src.size,
        ppl: Some(ppl),
        ppl_uncertainty: Some(unc),
        kld_mean: kld,
        this_file: true,
    };
    let rows = match &args.kl_base {
        Some(base) => {
            let k = measure_kld(base, &src.path, text_path, ctx, chunks, quiet)?;
            let reference = Source::open(base).ok();
            vec![
                QualityRow {
                    label: format!("reference `{}`", base.file_name().unwrap_or_default().to_string_lossy()),
                    quant: reference.as_ref().map_or("–".into(), |r| r.quant.clone()),
                    size_bytes: reference.as_ref().map_or_else(|| crate::build::cache::path_size(base), |r| r.size),
                    ppl: Some(k.ppl_base),
                    ppl_uncertainty: Some(k.ppl_base_uncertainty),
                    kld_mean: None,
                    this_file: false,
                },
                this(k.ppl, k.ppl_uncertainty, Some(k.kld_mean)),
            ]
        }
        None => {
            let text = read_text(text_path)?;
            let s = score_model("this file", &src.path, &text, ctx, chunks, quiet)?;
            vec![this(s.ppl, s.ppl_uncertainty, None)]
        }
    };
    Ok(Some(Quality { how, rows }))
}

/// The card's table from a build report, with a note when it does not describe `src`.
pub(super) fn quality_from_report(src: &Source, report: &Path, quiet: bool) -> Result<Quality> {
    let (q, this_file) = src.quality_from_report(report)?;
    if !quiet && !this_file {
        eprintln!(
            "note: {} did not pass or its last step is not this file's size; the card's table describes that build",
            report.display()
        );
    }
    Ok(q)
}

fn placed_word(p: Placed) -> &'static str {
    match p {
        Placed::HardLink => "hard link",
        Placed::Copy => "copy",
    }
}

fn ollama(a: OllamaArgs) -> Result<()> {
    let src = Source::open(&a.model)?;
    let o = OllamaOptions {
        dir: a.dir.clone(),
        system: a.system.clone(),
        name: a.name.clone(),
        template: a.template.clone(),
        copy: a.common.copy,
        force: a.common.force,
    };
    let plan = OllamaPlan::new(&src, &o)?;
    if !a.common.quiet {
        for n in &plan.notes {
            eprintln!("note: {n}");
        }
    }
    let quality = quality(&a.common.card, &src, a.common.quiet)?;
    let placed = plan.write(&src, &o, quality.as_ref())?;
    if !a.common.quiet {
        eprintln!(
            "wrote {}: Modelfile ({} stop texts; chat format {}), {} ({}), README.md",
            a.dir.display(),
            plan.stops.len(),
            plan.chat_format.clone().unwrap_or_default(),
            plan.gguf_file,
            placed_word(placed)
        );
        eprintln!("next: cd {} && ollama create {} -f Modelfile", a.dir.display(), plan.name);
    }
    Ok(())
}

fn lmstudio(a: LmStudioArgs) -> Result<()> {
    let src = Source::open(&a.model)?;
    let o = LmStudioOptions {
        root: a.root.clone(),
        publisher: a.publisher.clone(),
        model: a.model_name.clone(),
        copy: a.common.copy,
        force: a.common.force,
    };
    let plan = LmStudioPlan::new(&src, &o)?;
    let quality = quality(&a.common.card, &src, a.common.quiet)?;
    let placed = plan.write(&src, &o, quality.as_ref())?;
    if !a.common.quiet {
        eprintln!("wrote {}: {} ({}), README.md", plan.dir.display(), plan.gguf_file, placed_word(placed));
    }
    Ok(())
}
