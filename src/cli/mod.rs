//! Command-line interface: one module per subcommand; `anyhow` lives only here and in main.

mod convert;
mod eval;
mod generate;
mod inspect;
mod perplexity;
mod quantize;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "llmtool", version, about = "Convert, quantize, merge and validate LLM weights (GGUF / safetensors)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show architecture, hyper-parameters, tokenizer, tensors and size of a GGUF file or HF dir.
    Inspect(inspect::InspectArgs),
    /// Convert between HF model dirs (safetensors) and GGUF, or re-type / re-shard within one format.
    Convert(convert::ConvertArgs),
    /// Quantize a GGUF file or HF dir to a GGUF file with llama.cpp's per-tensor type rules.
    Quantize(quantize::QuantizeArgs),
    /// Perplexity of a text (llama.cpp's method) and KL divergence against a base model.
    Perplexity(perplexity::PerplexityArgs),
    /// Continue a prompt (greedy or sampled), optionally through the model's chat template.
    Generate(generate::GenerateArgs),
    /// Multiple-choice tasks (JSON lines) scored by log-likelihood like lm-eval's acc / acc_norm.
    Eval(eval::EvalArgs),
}

/// Parses `std::env::args` and runs the chosen subcommand.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Perplexity(args) => perplexity::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Eval(args) => eval::run(args),
    }
}

/// Ctrl-C removes the temp files of outputs still being written, then exits 130: an
/// interrupted run leaves neither a partial target nor temp litter.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        llmtool_formats::atomic::cleanup_temp_outputs();
        std::process::exit(130);
    });
}

/// Streams `source` into a new GGUF file at `output` (temp file, fsync, rename) with a
/// progress bar; the tensors are produced one ahead of the writer. Returns bytes written.
fn write_gguf_output(
    header: &llmtool_formats::gguf::GgufHeader,
    source: &dyn llmtool_formats::TensorSource,
    output: &std::path::Path,
    force: bool,
    quiet: bool,
    label: &str,
) -> anyhow::Result<u64> {
    use anyhow::Context;
    let layout = header.layout()?;
    let mut out = llmtool_formats::atomic::AtomicFile::create(output, force)?;
    let mut progress = crate::progress::Progress::new(layout.file_size, label, quiet);
    let infos = source.tensor_infos().to_vec();
    let written = crate::stream::with_lookahead(
        infos.len(),
        |i| source.tensor_bytes(&infos[i].name),
        |i| source.release(&infos[i].name),
        |next| llmtool_formats::gguf::write_gguf(out.writer(), header, |i, _| next(i), |b| progress.set(b)),
    )
    .with_context(|| format!("writing {}", output.display()))?;
    progress.finish();
    out.commit()?;
    Ok(written)
}
