//! Command-line interface: one module per subcommand; `anyhow` lives only here and in main.

mod convert;
mod generate;
mod inspect;
mod lora;
pub mod output;
pub mod pass_eval;
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
    /// LoRA adapters: `lora merge` folds PEFT or GGUF LoRA adapters into a base model.
    Lora(lora::LoraArgs),
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
        Command::Lora(args) => lora::run(args),
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
