//! `llmtool perplexity MODEL --text FILE`: llama.cpp's perplexity (and, with `--kl-base`,
//! its KL-divergence statistics) on the built-in inference core.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::eval::{self, Base, BaseFile, PplOptions};
use crate::infer::{InferModel, KvPrecision};
use crate::model::Model;
use crate::tokenizer::Tokenizer;

#[derive(clap::Args, Debug)]
pub struct PerplexityArgs {
    /// The model: a GGUF file or an HF model directory.
    pub model: PathBuf,
    /// UTF-8 text to score (e.g. wiki.test.raw). One trailing newline is dropped, like llama.cpp.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["token_ids", "kl_base"])]
    pub text: Option<PathBuf>,
    /// Pre-tokenized input instead of --text: token ids separated by whitespace or commas
    /// (brackets allowed, e.g. the output of `llama-tokenize --ids`).
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    pub token_ids: Option<PathBuf>,
    /// Window (context) length; the second half of each window is scored.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub ctx: usize,
    /// Score at most N windows (default: all).
    #[arg(long, value_name = "N")]
    pub chunks: Option<usize>,
    /// Tokens per forward call (default: the whole window); a multiple of --ctx runs that many
    /// windows in one pass (same numbers; faster on quantized weights, more memory).
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Compare with a base: a second model (GGUF file or HF dir) run on the same windows,
    /// or a log-probability file saved by `--save-logits` or llama.cpp's
    /// `--kl-divergence-base` (then the windows come from that file).
    #[arg(long, value_name = "REF")]
    pub kl_base: Option<PathBuf>,
    /// Save this model's log-probabilities in llama.cpp's `--kl-divergence-base` format.
    #[arg(long, value_name = "FILE", conflicts_with = "kl_base")]
    pub save_logits: Option<PathBuf>,
    /// Round the KV cache to f16 like llama.cpp's default F16 cache (default: f32).
    #[arg(long)]
    pub kv_f16: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The text of `path` ([`crate::eval::validate::read_text`]).
pub(super) fn read_text(path: &Path) -> Result<String> {
    Ok(crate::eval::validate::read_text(path)?)
}

fn read_token_ids(path: &Path) -> Result<Vec<u32>> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    s.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(i, w)| {
            w.parse::<u32>().with_context(|| format!("{}: token {i}: {w:?} is not a token id", path.display()))
        })
        .collect()
}

pub(super) use crate::eval::validate::bos_of;

/// llama.cpp `common_tokenize(ctx, text, add_special = true, parse_special = false)`.
pub(super) fn tokenize(tok: Option<&Tokenizer>, model: &Path, text: &str) -> Result<Vec<u32>> {
    let Some(tok) = tok else {
        bail!("{}: the model has no usable tokenizer metadata; pass --token-ids", model.display())
    };
    Ok(crate::eval::validate::tokenize(tok, text)?)
}

pub(super) struct Bar(pub(super) Option<indicatif::ProgressBar>);

impl Bar {
    pub(super) fn new(n: u64, quiet: bool) -> Self {
        if quiet {
            return Bar(None);
        }
        let b = indicatif::ProgressBar::new(n);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} windows, eta {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        Bar(Some(b))
    }
    pub(super) fn set(&self, pos: u64, msg: String) {
        if let Some(b) = &self.0 {
            b.set_position(pos);
            b.set_message(msg);
        }
    }
    pub(super) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

pub fn run(args: PerplexityArgs) -> Result<()> {
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("setting up the thread pool")?;
    }
    let model = Model::open(&args.model).with_context(|| format!("opening {}", args.model.display()))?;
    let mut im = InferModel::load(&model).with_context(|| format!("loading {}", args.model.display()))?;
    if args.kv_f16 {
        im.set_kv_precision(KvPrecision::F16);
    }
    let tok = match Tokenizer::from_model(&model) {
        Ok(t) => Some(t),
        Err(e) if args.token_ids.is_some() => {
            if !args.quiet {
                eprintln!("warning: {}: tokenizer not loaded ({e}); no BOS is added", args.model.display());
            }
            None
        }
        Err(e) if args.text.is_some() => {
            return Err(e).with_context(|| format!("tokenizer of {}", args.model.display()))
        }
        Err(_) => None,
    };
    let bos = bos_of(tok.as_ref());
    let opts = PplOptions { n_ctx: args.ctx, n_chunks: args.chunks, batch: args.batch.unwrap_or(args.ctx), bos };

    // A saved base file brings its own windows.
    let base_file = match &args.kl_base {
        Some(p) if p.is_file() && !is_model_file(p) => Some(BaseFile::read(p)?),
        _ => None,
    };
    // Geometry errors before the (possibly long) tokenization; a base file brings its n_ctx.
    if base_file.is_none() && args.ctx > im.cfg.n_ctx_train {
        return Err(eval::EvalError::ContextTooLarge { n_ctx: args.ctx, n_ctx_train: im.cfg.n_ctx_train }.into());
    }
    let tokens = if base_file.is_some() {
        Vec::new()
    } else if let Some(p) = &args.token_ids {
        read_token_ids(p)?
    } else {
        let path = args.text.as_ref().expect("clap requires --text");
        let text = read_text(path)?;
        tokenize(tok.as_ref(), &args.model, &text)?
    };

    if let Some(base_path) = &args.kl_base {
        let base_model;
        let base_im;
        let base = match &base_file {
            Some(f) => Base::File(f),
            None => {
                base_model = Model::open(base_path).with_context(|| format!("opening {}", base_path.display()))?;
                let mut b =
                    InferModel::load(&base_model).with_context(|| format!("loading {}", base_path.display()))?;
                if args.kv_f16 {
                    b.set_kv_precision(KvPrecision::F16);
                }
                base_im = b;
                Base::Model(&base_im)
            }
        };
        let bar = Bar::new(0, args.quiet);
        let r = eval::kl_divergence(&im, base, &tokens, &opts, |i, n, kld| {
            if let Some(b) = &bar.0 {
                b.set_length(n as u64);
            }
            bar.set(i as u64, format!("mean KLD {kld:.6}"));
        })?;
        bar.finish();
        if args.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!("chunks: {}, tokens scored: {}", r.n_chunks, r.n_tokens);
            println!("Mean PPL(Q)           : {:10.6} ± {:10.6}", r.ppl, r.ppl_uncertainty);
            println!("Mean PPL(base)        : {:10.6} ± {:10.6}", r.ppl_base, r.ppl_base_uncertainty);
            println!("Mean ln(PPL(Q)/PPL(b)): {:10.6}", r.ln_ppl_ratio);
            println!("Mean PPL(Q)/PPL(base) : {:10.6}", r.ln_ppl_ratio.exp());
            println!("Mean PPL(Q)-PPL(base) : {:10.6}", r.ppl_diff);
            println!("Mean    KLD: {:10.6} ± {:10.6}", r.kld_mean, r.kld_uncertainty);
            println!("Maximum KLD: {:10.6}", r.kld_max);
            println!("99.0%   KLD: {:10.6}", r.kld_p99);
            println!("90.0%   KLD: {:10.6}", r.kld_p90);
            println!("Median  KLD: {:10.6}", r.kld_median);
            println!("Minimum KLD: {:10.6}", r.kld_min);
            println!("RMS Δp    : {:6.3} %", 100.0 * r.p_diff_rms);
            println!("Same top p: {:6.3} %", 100.0 * r.same_top);
        }
        return Ok(());
    }

    if let Some(out) = &args.save_logits {
        let sums = eval::save_base(&im, &tokens, &opts, out)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"ppl": sums.ppl(), "ppl_uncertainty": sums.ppl_uncertainty(), "saved": out})
            );
        } else {
            println!("Final estimate: PPL = {:.4} +/- {:.5}", sums.ppl(), sums.ppl_uncertainty());
            eprintln!("saved log-probabilities to {}", out.display());
        }
        return Ok(());
    }

    let n_chunks = eval::perplexity::plan(&im, tokens.len(), &opts)?;
    let bar = Bar::new(n_chunks as u64, args.quiet || !args.json);
    let mut stdout = std::io::stdout();
    let r = eval::perplexity(&im, &tokens, &opts, |c| {
        if !args.json {
            print!("[{}]{:.4},", c.chunk, c.running_ppl);
            let _ = stdout.flush();
        }
        bar.set(c.chunk as u64, format!("PPL {:.4}", c.running_ppl));
    })?;
    bar.finish();
    crate::infer::timing::report(r.seconds);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!();
        println!("Final estimate: PPL = {:.4} +/- {:.5}", r.ppl, r.ppl_uncertainty);
        eprintln!(
            "{} windows of {} tokens ({} scored) in {:.2} s: {:.1} tokens/s",
            r.n_chunks, r.n_ctx, r.n_scored, r.seconds, r.tokens_per_second
        );
    }
    Ok(())
}

/// A GGUF file (by its magic) or a directory: a base model rather than a saved base file.
fn is_model_file(p: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(p).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok() && &magic == b"GGUF"
}
