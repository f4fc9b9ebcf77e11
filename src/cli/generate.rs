//! `llmtool generate MODEL --prompt P`: greedy or sampled continuation on the inference core,
//! optionally through the model's chat template.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::chat_template::{ChatTemplate, Message};
use crate::generate::{generate, StopReason};
use crate::infer::{InferModel, KvPrecision};
use crate::model::Model;
use crate::sample::{Sampler, SamplerConfig};
use crate::tokenizer::Tokenizer;

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// The model: a GGUF file or an HF model directory.
    pub model: PathBuf,
    /// The prompt text (with --chat: the user's message).
    #[arg(long, short)]
    pub prompt: String,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128, value_name = "N")]
    pub n_predict: usize,
    /// Sampling temperature; 0 is greedy (argmax).
    #[arg(long, default_value_t = 0.0, value_name = "T")]
    pub temp: f32,
    /// Keep the K most likely tokens before sampling (0: all).
    #[arg(long, default_value_t = 40, value_name = "K")]
    pub top_k: usize,
    /// Keep the most likely tokens up to this cumulative probability.
    #[arg(long, default_value_t = 0.95, value_name = "P")]
    pub top_p: f32,
    /// Random seed for sampling (same seed, same output).
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Wrap the prompt as a user message in the model's chat template (GGUF
    /// `tokenizer.chat_template` or the HF dir's template) and open the assistant's turn.
    #[arg(long)]
    pub chat: bool,
    /// Optional system message for --chat.
    #[arg(long, requires = "chat", value_name = "TEXT")]
    pub system: Option<String>,
    /// Context length cap (default: the model's training context).
    #[arg(long, value_name = "N")]
    pub ctx: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "T")]
    pub threads: Option<usize>,
    /// Round the KV cache to f16 like llama.cpp's default F16 cache (default: f32).
    #[arg(long)]
    pub kv_f16: bool,
    /// Print the generated token ids as JSON (`{"prompt_ids":…,"ids":…,"text":…}`) instead of
    /// streaming text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("setting up the thread pool")?;
    }
    let model = Model::open(&args.model).with_context(|| format!("opening {}", args.model.display()))?;
    let tok =
        Tokenizer::from_model(&model).with_context(|| format!("reading the tokenizer of {}", args.model.display()))?;
    let mut infer = InferModel::load(&model).with_context(|| format!("loading {}", args.model.display()))?;
    if args.kv_f16 {
        infer.set_kv_precision(KvPrecision::F16);
    }

    // With a chat template the rendered text already holds the special tokens (and BOS where
    // the template writes it), so they are parsed as specials and no BOS is added again —
    // llama.cpp's common_chat path does the same.
    let prompt_ids = if args.chat {
        let tmpl = ChatTemplate::from_model(&model)
            .with_context(|| format!("reading the chat template of {}", args.model.display()))?;
        let mut messages = Vec::new();
        if let Some(s) = &args.system {
            messages.push(Message::new("system", s.as_str()));
        }
        messages.push(Message::new("user", args.prompt.as_str()));
        let text = tmpl.render(&messages, true).context("rendering the chat template")?;
        tok.encode(&text, false, true)?
    } else {
        tok.encode(&args.prompt, true, false)?
    };

    let cfg = SamplerConfig { temperature: args.temp, top_k: args.top_k, top_p: args.top_p, seed: args.seed };
    let mut sampler = Sampler::new(cfg)?;
    let n_ctx = args.ctx.unwrap_or(usize::MAX);
    let stdout = std::io::stdout();
    let mut pending: Vec<u8> = Vec::new();
    let streaming = !args.json;
    let result = generate(&infer, &tok, &prompt_ids, args.n_predict, n_ctx, &mut sampler, |_, piece| {
        if streaming {
            // Write whole UTF-8 characters as they complete.
            pending.extend_from_slice(piece);
            let valid = match std::str::from_utf8(&pending) {
                Ok(_) => pending.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => pending.len(), // invalid bytes: print them lossily, like llama.cpp
            };
            let mut lock = stdout.lock();
            let _ = lock.write_all(String::from_utf8_lossy(&pending[..valid]).as_bytes());
            let _ = lock.flush();
            pending.drain(..valid);
        }
    })?;
    if args.json {
        let text = tok.decode(&result.tokens)?;
        let stop = match result.stop {
            StopReason::Length => "length",
            StopReason::EndOfGeneration => "eog",
            StopReason::ContextFull => "context",
        };
        let v = serde_json::json!({ "prompt_ids": prompt_ids, "ids": result.tokens, "text": text, "stop": stop });
        println!("{v}");
    } else {
        let mut lock = stdout.lock();
        if !pending.is_empty() {
            lock.write_all(String::from_utf8_lossy(&pending).as_bytes())?;
        }
        writeln!(lock)?;
    }
    Ok(())
}
