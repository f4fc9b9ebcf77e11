//! `llmtool export ollama|lmstudio`: a GGUF file laid out for a local runtime, with a model
//! card. Every output directory is written whole to a temp beside it and renamed into place.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use llmtool_formats::atomic::{check_output_not_input, AtomicDir};

use super::pass_eval::{measure_kld, score_model};
use super::perplexity::read_text;
use crate::build::report::{BuildReport, StepRecord};
use crate::chat_template::{ChatTemplate, ChatTemplateError};
use crate::export::card::{model_card, CardFacts, Quality, QualityRow};
use crate::export::modelfile::{eog_texts, merge_stops, Modelfile};
use crate::export::template::{family_display, probes, recognise};
use crate::export::{place_file, quant_name, safe_name, Placed};
use crate::model::{Model, ModelFormat};
use crate::passes::quantize::FileType;
use crate::tokenizer::Tokenizer;

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
pub(crate) struct CardArgs {
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
pub(crate) struct Common {
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
pub(crate) struct OllamaArgs {
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
pub(crate) struct LmStudioArgs {
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

impl Common {
    /// Hard link, no card measurement: what a build's deployment output asks for, the model
    /// card's table from the build's `report`.
    pub(crate) fn with_report(report: PathBuf, force: bool, quiet: bool) -> Self {
        let card = CardArgs { report: Some(report), eval_text: None, eval_chunks: 4, eval_ctx: 512, kl_base: None };
        Common { copy: false, force, quiet, card }
    }
}

impl OllamaArgs {
    pub(crate) fn new(
        model: PathBuf,
        dir: PathBuf,
        name: Option<String>,
        system: Option<String>,
        common: Common,
    ) -> Self {
        OllamaArgs { model, dir, system, name, template: None, common }
    }
}

impl LmStudioArgs {
    pub(crate) fn new(
        model: PathBuf,
        root: PathBuf,
        publisher: Option<String>,
        model_name: Option<String>,
        common: Common,
    ) -> Self {
        LmStudioArgs { model, root, publisher, model_name, common }
    }
}

pub fn run(args: ExportArgs) -> Result<()> {
    match args.target {
        Target::Ollama(a) => ollama(a),
        Target::Lmstudio(a) => lmstudio(a),
    }
}

/// An opened GGUF input.
struct Source {
    path: PathBuf,
    model: Model,
    size: u64,
    quant: String,
}

fn open_gguf(path: &Path) -> Result<Source> {
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    if f.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        bail!("{}: not a GGUF file (it does not start with the GGUF magic)", path.display());
    }
    let model = Model::open(path).with_context(|| format!("opening {}", path.display()))?;
    if model.format != ModelFormat::Gguf {
        bail!("{}: not a GGUF file", path.display());
    }
    let size = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?.len();
    let quant = match quant_name(&model.metadata) {
        Some(q) => q.to_string(),
        None => dominant_type(&model).with_context(|| {
            format!("{}: no general.file_type and no weight tensors to name its type", path.display())
        })?,
    };
    Ok(Source { path: path.to_path_buf(), model, size, quant })
}

/// The ggml type holding most bytes of the 2-D tensors, for a file without
/// `general.file_type` (llama.cpp guesses the file type the same way, `LLAMA_FTYPE_GUESSED`).
fn dominant_type(model: &Model) -> Option<String> {
    let mut bytes: HashMap<&'static str, u64> = HashMap::new();
    for t in model.tensors.tensor_infos().iter().filter(|t| t.ne.len() >= 2) {
        let n: u64 = t.ne.iter().product();
        *bytes.entry(t.ty.name()).or_default() += t.ty.row_bytes(n).unwrap_or(0);
    }
    bytes.into_iter().max_by_key(|&(name, b)| (b, name)).map(|(name, _)| name.to_string())
}

fn card_facts(src: &Source, title: &str, file_name: &str, chat_format: Option<String>) -> CardFacts {
    let md = &src.model.metadata;
    CardFacts {
        title: title.to_string(),
        general_name: md.get_str("general.name").map(str::to_string),
        arch: md.get_str("general.architecture").unwrap_or("?").to_string(),
        n_params: src.model.n_params(),
        quant: src.quant.clone(),
        file_name: file_name.to_string(),
        size_bytes: src.size,
        license: md.get_str("general.license").map(str::to_string),
        chat_format,
    }
}

/// The model card's quality table, from `--report` or measured with `--eval-text`.
fn quality(args: &CardArgs, src: &Source, quiet: bool) -> Result<Option<Quality>> {
    if let Some(report) = &args.report {
        let text = std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
        let r: BuildReport = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a llmtool build report (report.json)", report.display()))?;
        let q = Quality::from_build_report(&r, step_quant, src.size);
        if !quiet && !q.rows.iter().any(|row| row.this_file) {
            eprintln!(
                "note: {} did not pass or its last step is not this file's size; the card's table describes that build",
                report.display()
            );
        }
        return Ok(Some(q));
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
            let reference = open_gguf(base).ok();
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

/// A build step's quantization type: its artifact's when that GGUF is still there, else the
/// type its description names (`quantize Q8_0`, `convert f16`).
fn step_quant(r: &StepRecord) -> String {
    if let Ok(m) = Model::open(&r.artifact) {
        if let Some(q) = quant_name(&m.metadata) {
            return q.to_string();
        }
    }
    r.description.split_whitespace().last().and_then(FileType::parse).map_or("–".into(), |t| t.name().to_string())
}

fn input_stem(path: &Path) -> String {
    safe_name(&path.file_stem().unwrap_or_default().to_string_lossy())
}

/// `stem` without a trailing `.TYPE`, `-TYPE` or `_TYPE` naming `quant` (`SmolLM2-135M-Instruct.Q4_1`
/// → `SmolLM2-135M-Instruct`): LM Studio's file name adds the type again.
fn without_quant_suffix(stem: &str, quant: &str) -> String {
    let (lower, q) = (stem.to_ascii_lowercase(), quant.to_ascii_lowercase());
    for sep in ['.', '-', '_'] {
        if lower.ends_with(&format!("{sep}{q}")) && stem.len() > q.len() + 1 {
            return stem[..stem.len() - q.len() - 1].to_string();
        }
    }
    stem.to_string()
}

fn placed_word(p: Placed) -> &'static str {
    match p {
        Placed::HardLink => "hard link",
        Placed::Copy => "copy",
    }
}

pub(crate) fn ollama(a: OllamaArgs) -> Result<()> {
    let src = open_gguf(&a.model)?;
    let name = safe_name(&a.name.clone().unwrap_or_else(|| input_stem(&a.model)));
    if name.is_empty() {
        bail!("--name: give a name with letters or digits");
    }
    let gguf_file = format!("{name}.gguf");
    let md = &src.model.metadata;

    // The chat template: the user's, or the GGUF's translated.
    let (template, family_stops, chat_format, note) = match &a.template {
        Some(p) => {
            let t = std::fs::read_to_string(p).with_context(|| format!("reading --template {}", p.display()))?;
            (t, Vec::new(), Some("custom (--template)".to_string()), format!("TEMPLATE from {}", p.display()))
        }
        None => {
            let tmpl = ChatTemplate::from_gguf_metadata(md).map_err(|e| match e {
                ChatTemplateError::Missing(_) => {
                    anyhow::anyhow!("{}: {e}; pass an Ollama template with --template FILE", a.model.display())
                }
                e => anyhow::Error::new(e).context(format!("{}: tokenizer.chat_template", a.model.display())),
            })?;
            let jinja = md.get_str(crate::tokenizer::keys::CHAT_TEMPLATE).unwrap_or_default();
            let add_bos = Tokenizer::from_gguf_metadata(md).map(|t| t.add_bos()).unwrap_or(false);
            let r = recognise(jinja, tmpl.bos_token(), tmpl.eos_token(), add_bos)
                .with_context(|| format!("{}: translating tokenizer.chat_template", a.model.display()))?;
            if r.system_rejected && !a.common.quiet {
                eprintln!(
                    "note: the chat template rejects system messages; the Ollama template writes one at the head of the first user message"
                );
            }
            if r.dated && !a.common.quiet {
                eprintln!(
                    "note: the chat template writes today's date into its system message; the Modelfile keeps the date of this export"
                );
            }
            let note = format!(
                "TEMPLATE: the GGUF's chat template ({}), translated; it renders as the Jinja template does on {} probe conversations",
                r.format.family,
                probes().len() + 1
            );
            let format = format!("{} (translated to the Modelfile's TEMPLATE)", family_display(r.format.family));
            (r.format.go_template(), r.format.stops.clone(), Some(format), note)
        }
    };
    let stops = merge_stops(&family_stops, &eog_texts(md));
    let system = a.system.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let modelfile = Modelfile {
        comments: vec![
            format!("Written by llmtool {} from {}.", env!("CARGO_PKG_VERSION"), a.model.display()),
            format!("ollama create {name} -f Modelfile"),
            note,
        ],
        gguf_file: gguf_file.clone(),
        template: Some(template),
        stops: stops.clone(),
        system,
    }
    .text()?;

    let quality = quality(&a.common.card, &src, a.common.quiet)?;
    let usage = format!(
        "```sh\nollama create {name} -f Modelfile   # in this directory: FROM ./{gguf_file} is read from beside the Modelfile\nollama run {name}\n```"
    );
    let card = model_card(&card_facts(&src, &name, &gguf_file, chat_format.clone()), quality.as_ref(), &usage);

    check_output_not_input(&a.dir, &[&a.model])?;
    let out = AtomicDir::create(&a.dir, a.common.force)?;
    let placed = place_file(&a.model, &out.path().join(&gguf_file), a.common.copy)
        .with_context(|| format!("placing {} in {}", a.model.display(), a.dir.display()))?;
    write(out.path(), "Modelfile", &modelfile)?;
    write(out.path(), "README.md", &card)?;
    out.commit()?;
    if !a.common.quiet {
        eprintln!(
            "wrote {}: Modelfile ({} stop texts; chat format {}), {gguf_file} ({}), README.md",
            a.dir.display(),
            stops.len(),
            chat_format.unwrap_or_default(),
            placed_word(placed)
        );
        eprintln!("next: cd {} && ollama create {name} -f Modelfile", a.dir.display());
    }
    Ok(())
}

pub(crate) fn lmstudio(a: LmStudioArgs) -> Result<()> {
    let src = open_gguf(&a.model)?;
    let org = src.model.metadata.get_str("general.organization");
    let publisher = safe_name(a.publisher.as_deref().or(org).unwrap_or_default());
    if publisher.is_empty() {
        bail!("--publisher: give a name with letters or digits (the GGUF has no general.organization)");
    }
    let name = match &a.model_name {
        Some(n) => safe_name(n),
        None => without_quant_suffix(&input_stem(&a.model), &src.quant),
    };
    if name.is_empty() {
        bail!("--model: give a name with letters or digits");
    }
    let gguf_file = format!("{name}-{}.gguf", src.quant);
    let pub_dir = a.root.join(&publisher);
    let dir = pub_dir.join(format!("{name}-GGUF"));

    let quality = quality(&a.common.card, &src, a.common.quiet)?;
    let usage = format!(
        "This directory is laid out as LM Studio's models folder expects (`{publisher}/{name}-GGUF/{gguf_file}`): \
         put `{publisher}/` under LM Studio's models directory (by default `~/.lmstudio/models`) and the model \
         appears as `{publisher}/{name}-GGUF`."
    );
    let card = model_card(&card_facts(&src, &name, &gguf_file, None), quality.as_ref(), &usage);

    std::fs::create_dir_all(&pub_dir).with_context(|| format!("creating {}", pub_dir.display()))?;
    check_output_not_input(&dir, &[&a.model])?;
    let out = AtomicDir::create(&dir, a.common.force)?;
    let placed = place_file(&a.model, &out.path().join(&gguf_file), a.common.copy)
        .with_context(|| format!("placing {} in {}", a.model.display(), dir.display()))?;
    write(out.path(), "README.md", &card)?;
    out.commit()?;
    if !a.common.quiet {
        eprintln!("wrote {}: {gguf_file} ({}), README.md", dir.display(), placed_word(placed));
    }
    Ok(())
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}
