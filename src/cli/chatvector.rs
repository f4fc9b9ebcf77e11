//! `llmtool chatvector`: T' = T + Σ ratioᵢ·(Cᵢ − Bᵢ) (`passes::chatvector`), and
//! `llmtool chatvector extract`, which saves C − B as safetensors for later use.
//!
//! Vectors: `--base B --chat C` pairs (the i-th `--base` goes with the i-th `--chat`) and
//! saved `--vector V.safetensors` files; `--ratio` is given once (every vector) or once per
//! vector, pairs first then files, each in command-line order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indexmap::IndexMap;
use llmtool_formats::atomic::{check_output_not_input, AtomicFile};
use llmtool_formats::safetensors::{dtype_for_ggml, write_safetensors, StTensor};
use llmtool_formats::TensorSource;

use super::output::{write_model, OutFormat, OutputOptions};
use crate::model::Model;
use crate::passes::chatvector::{self as cv, parse_token_map, Extracted, SkipRules};
use crate::passes::convert::OutType;
use crate::pipeline::{hf_namer, ChatVector, ChatVectorOptions};
use crate::progress::Progress;
use crate::stream::with_lookahead;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ChatVectorArgs {
    #[command(subcommand)]
    pub command: Option<ChatVectorCommand>,
    #[command(flatten)]
    pub apply: ApplyArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum ChatVectorCommand {
    /// Save the vector C − B (GGUF tensor names) as a .safetensors file for `--vector`.
    Extract(ExtractArgs),
}

/// Which tensors the vector touches (shared by apply and extract).
#[derive(clap::Args, Debug, Clone)]
pub struct SkipArgs {
    /// Leave tensors whose GGUF name (`blk.*.attn_q.weight`) or HF name
    /// (`model.layers.*.self_attn.q_proj.weight`) matches this glob as the target's. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub skip: Vec<String>,
    /// Apply the vector to the token embeddings and output head too (skipped by default).
    #[arg(long)]
    pub no_default_skips: bool,
    /// Leave every normalization tensor (`*norm*`) as the target's.
    #[arg(long)]
    pub skip_norms: bool,
}

impl SkipArgs {
    fn rules(&self) -> SkipRules {
        SkipRules { globs: self.skip.clone(), default_skips: !self.no_default_skips, skip_norms: self.skip_norms }
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateFrom {
    /// The (first) --chat model.
    Chat,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Base model of a vector (GGUF or HF dir); pairs with the --chat at the same position.
    #[arg(long, value_name = "B")]
    pub base: Vec<PathBuf>,
    /// Chat fine-tune of the --base at the same position.
    #[arg(long, value_name = "C")]
    pub chat: Vec<PathBuf>,
    /// A saved vector (`chatvector extract`). Repeatable, mixable with --base/--chat pairs.
    #[arg(long, value_name = "V.safetensors")]
    pub vector: Vec<PathBuf>,
    /// Ratio of the vectors: once for all, or once per vector (pairs first, then --vector
    /// files, each in command-line order). Default 1 (the paper's T + (C − B)).
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub ratio: Vec<f32>,
    /// The model the vectors are added to (GGUF or HF dir).
    #[arg(long, value_name = "T", required = true)]
    pub target: Option<PathBuf>,
    /// Output: a `.gguf` file, or a directory for an HF model.
    #[arg(required = true)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub skips: SkipArgs,
    /// Row TARGET_ID of the vocabulary tensors of T gets row CHAT_ID of each vector
    /// (instead of row TARGET_ID). Only affects tensors that are not skipped. Repeatable.
    #[arg(long, value_name = "TARGET_ID=CHAT_ID")]
    pub token_map: Vec<String>,
    /// Copy the chat template and the EOS/EOT/EOM ids from the chat model.
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub template_from: Option<TemplateFrom>,
    /// Element type of float tensors in the output (default: each tensor keeps T's type;
    /// quantized tensors are re-quantized to their type).
    #[arg(long, value_enum)]
    pub outtype: Option<OutType>,
    /// Output format; by default `.gguf` means GGUF and anything else an HF dir.
    #[arg(long, value_enum)]
    pub to: Option<OutFormat>,
    /// Largest safetensors shard for HF output, e.g. 5GB.
    #[arg(long, value_name = "SIZE")]
    pub shard_size: Option<String>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub eval: crate::cli::pass_eval::PassEvalArgs,
}

#[derive(clap::Args, Debug)]
pub struct ExtractArgs {
    /// Base model (GGUF or HF dir).
    #[arg(long, value_name = "B")]
    pub base: PathBuf,
    /// Chat fine-tune of the base.
    #[arg(long, value_name = "C")]
    pub chat: PathBuf,
    /// Output `.safetensors` file.
    pub output: PathBuf,
    #[command(flatten)]
    pub skips: SkipArgs,
    /// Element type of the stored vector.
    #[arg(long, value_enum, default_value = "f32")]
    pub outtype: OutType,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: ChatVectorArgs) -> Result<()> {
    match args.command {
        Some(ChatVectorCommand::Extract(e)) => extract(e),
        None => apply(args.apply),
    }
}

fn open(path: &Path) -> Result<Model> {
    Model::open(path).with_context(|| format!("cannot open {}", path.display()))
}

fn apply(args: ApplyArgs) -> Result<()> {
    let started = Instant::now();
    let target_path = args.target.clone().expect("required by clap");
    let output = args.output.clone().expect("required by clap");
    if args.base.len() != args.chat.len() {
        bail!(
            "{} --base and {} --chat given: each vector needs one of each (the i-th --base pairs with the i-th --chat)",
            args.base.len(),
            args.chat.len()
        );
    }
    let n_vectors = args.base.len() + args.vector.len();
    if n_vectors == 0 {
        bail!("no vector: give --base B --chat C, or --vector V.safetensors");
    }
    let ratios: Vec<f32> = match args.ratio.len() {
        0 => vec![1.0; n_vectors],
        1 => vec![args.ratio[0]; n_vectors],
        n if n == n_vectors => args.ratio.clone(),
        n => bail!("{n} --ratio values for {n_vectors} vectors: give one for all, or one per vector"),
    };
    if let Some(r) = ratios.iter().find(|r| !r.is_finite()) {
        bail!("--ratio {r}: not a finite number");
    }
    let format = OutFormat::for_path(&output, args.to);
    if args.shard_size.is_some() && format == OutFormat::Gguf {
        bail!("--shard-size applies to HF (safetensors) output only");
    }
    let shard_size = args.shard_size.as_deref().map(llmtool_formats::safetensors::parse_size).transpose()?;
    if args.template_from.is_some() && args.chat.is_empty() {
        bail!("--template-from chat needs a --chat model");
    }
    let token_map = parse_token_map(&args.token_map)?;
    let mut inputs: Vec<&Path> = vec![target_path.as_path()];
    inputs.extend(args.base.iter().chain(&args.chat).chain(&args.vector).map(PathBuf::as_path));
    check_output_not_input(&output, &inputs)?;
    if let Some(text) = &args.eval.eval_text {
        super::perplexity::read_text(text)?; // fail before the pass when the text is unusable
    }

    let pairs: Vec<(&Path, &Path)> =
        args.base.iter().map(PathBuf::as_path).zip(args.chat.iter().map(PathBuf::as_path)).collect();
    let vectors: Vec<&Path> = args.vector.iter().map(PathBuf::as_path).collect();
    let opts = ChatVectorOptions {
        ratios,
        skips: args.skips.rules(),
        token_map,
        template_from_chat: args.template_from == Some(TemplateFrom::Chat),
        outtype: args.outtype,
        hf_output: format == OutFormat::Hf,
    };
    let pass = ChatVector::open(Some(&target_path), &pairs, &vectors, opts)?;
    let built = pass.build(None)?;
    if let (Some(TemplateFrom::Chat), false, Some(chat)) = (args.template_from, args.quiet, pass.chat_path()) {
        eprintln!("from {}: {}", chat.display(), built.template_keys.join(", "));
    }
    let out = &built.output;
    let opts = OutputOptions { force: args.force, quiet: args.quiet, label: "chatvector", shard_size };
    let written = write_model(out.arch, &out.metadata, out.tensors.as_ref(), args.outtype, &output, format, &opts)?;
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        let read = pass.read_bytes();
        eprintln!(
            "wrote {}: {} of {} tensors changed by {n_vectors} vector(s) ({:.1} MB read, {:.1} MB written \
             in {:.2} s, {:.0} MB/s read)",
            output.display(),
            built.applied,
            built.n_tensors,
            read as f64 / 1e6,
            written as f64 / 1e6,
            secs,
            read as f64 / 1e6 / secs.max(1e-9)
        );
    }
    drop(built);
    drop(pass);

    let mut roles: Vec<(String, &Path)> = vec![("target".into(), target_path.as_path())];
    let several = args.chat.len() > 1;
    for (i, (b, c)) in args.base.iter().zip(&args.chat).enumerate() {
        let n = if several { format!(" {}", i + 1) } else { String::new() };
        roles.push((format!("chat{n}"), c.as_path()));
        roles.push((format!("base{n}"), b.as_path()));
    }
    let roles: Vec<(&str, &Path)> = roles.iter().map(|(r, p)| (r.as_str(), *p)).collect();
    crate::cli::pass_eval::evaluate_pass("chatvector", &args.eval, &roles, 0, &output, args.quiet)?;
    Ok(())
}

fn extract(args: ExtractArgs) -> Result<()> {
    let started = Instant::now();
    if !args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) {
        bail!("{}: a vector is written as .safetensors; give the output that extension", args.output.display());
    }
    check_output_not_input(&args.output, &[args.base.as_path(), args.chat.as_path()])?;
    let base = open(&args.base)?;
    let chat = open(&args.chat)?;
    if base.arch.gguf_arch() != chat.arch.gguf_arch() {
        bail!(
            "{} is a '{}' model, {} a '{}' one",
            base.path.display(),
            base.arch.gguf_arch(),
            chat.path.display(),
            chat.arch.gguf_arch()
        );
    }
    let namer = hf_namer(base.arch, &base.metadata);
    let vector =
        Extracted::new(base.tensors.as_ref(), chat.tensors.as_ref(), &args.skips.rules(), &namer, args.outtype.ggml())?;
    let dtype = dtype_for_ggml(args.outtype.ggml()).expect("plain float type");
    let sts: Vec<StTensor> =
        vector.tensor_infos().iter().map(|t| StTensor::new(t.name.clone(), dtype, t.shape())).collect();
    let mut md = IndexMap::new();
    md.insert("format".to_string(), "pt".to_string());
    md.insert(cv::META_KIND.to_string(), cv::META_KIND_VALUE.to_string());
    md.insert(cv::META_ARCH.to_string(), base.arch.gguf_arch().to_string());
    md.insert(cv::META_BASE.to_string(), args.base.display().to_string());
    md.insert(cv::META_CHAT.to_string(), args.chat.display().to_string());
    let skipped: HashMap<&str, &str> = vector.skipped.iter().map(|(n, r)| (n.as_str(), r.as_str())).collect();
    md.insert(cv::META_SKIPPED.to_string(), serde_json::to_string(&skipped)?);

    let total: u64 = sts.iter().filter_map(StTensor::n_bytes).sum();
    let mut out = AtomicFile::create(&args.output, args.force)?;
    let mut progress = Progress::new(total, "chatvector extract", args.quiet);
    let mut done = 0u64;
    let infos = vector.tensor_infos().to_vec();
    with_lookahead(
        infos.len(),
        |i| vector.tensor_bytes(&infos[i].name),
        |i| vector.release(&infos[i].name),
        |next| {
            write_safetensors(
                out.writer(),
                &sts,
                Some(&md),
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
    out.commit()?;
    if !args.quiet {
        eprintln!(
            "wrote {}: {} tensors ({} skipped), {:.1} MB in {:.2} s",
            args.output.display(),
            sts.len(),
            vector.skipped.len(),
            total as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
