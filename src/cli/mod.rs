//! Command-line interface: one module per subcommand; `anyhow` lives only here and in main.

mod build;
mod chatvector;
mod convert;
mod eval;
mod eval_candidate;
mod eval_worker;
mod evolve;
mod export;
mod generate;
mod imatrix;
mod inspect;
mod lora;
mod merge;
mod moe;
pub mod output;
pub mod pass_eval;
mod perplexity;
mod quantize;
mod quantize_mix;
mod tokenize;

use clap::{Parser, Subcommand};

/// The merge seed when `--seed` is not given (`merge`, `merge --evolve`, `eval-candidate`).
pub use merge::DEFAULT_SEED as MERGE_DEFAULT_SEED;

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
    /// Run a build recipe: a chain of passes, each validated by perplexity/KLD with quality gates, and a report.
    Build(build::BuildArgs),
    /// Perplexity of a text (llama.cpp's method) and KL divergence against a base model.
    Perplexity(perplexity::PerplexityArgs),
    /// Merge models as a mergekit YAML configuration says (linear, ties, slerp, passthrough slices …).
    Merge(merge::MergeArgs),
    /// Build a Mixture of Experts (Mixtral) from dense models as a mergekit-moe YAML says.
    Moe(moe::MoeArgs),
    /// Continue a prompt (greedy or sampled), optionally through the model's chat template.
    Generate(generate::GenerateArgs),
    /// ChatVector: add Σ ratio·(chat − base) to a target model, or extract the vector.
    Chatvector(Box<chatvector::ChatVectorArgs>),
    /// LoRA adapters: `lora merge` folds PEFT or GGUF LoRA adapters into a base model; `lora
    /// extract` makes one from the difference of two models.
    Lora(lora::LoraArgs),
    /// Multiple-choice tasks (JSON lines) scored by log-likelihood like lm-eval's acc / acc_norm.
    Eval(eval::EvalArgs),
    /// Fitness of one genome of a `merge --evolve` search (a worker for distributed searches).
    EvalCandidate(eval_candidate::EvalCandidateArgs),
    /// Persistent `merge --evolve` worker: loads the inputs once, then scores genomes read as JSON lines on stdin.
    EvalWorker(eval_worker::EvalWorkerArgs),
    /// The `merge --evolve` search driven from outside (ask / tell / finish on a state directory).
    Evolve(evolve::EvolveArgs),
    /// Importance matrix of a model on a text (like llama-imatrix), GGUF or legacy .dat.
    Imatrix(imatrix::ImatrixArgs),
    /// Tokenize a text with a model's tokenizer (GGUF file or HF dir), like llama.cpp's llama-tokenize.
    Tokenize(tokenize::TokenizeArgs),
    /// Lay out a GGUF for Ollama (Modelfile with the chat template translated) or LM Studio, with a model card.
    Export(export::ExportArgs),
}

/// Parses `std::env::args` and runs the chosen subcommand.
pub fn run() -> anyhow::Result<()> {
    dispatch(Cli::parse().command)
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Build(args) => build::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Perplexity(args) => perplexity::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Chatvector(args) => chatvector::run(*args),
        Command::Merge(args) => merge::run(args),
        Command::Moe(args) => moe::run(args),
        Command::Lora(args) => lora::run(args),
        Command::Eval(args) => eval::run(args),
        Command::EvalCandidate(args) => eval_candidate::run(args),
        Command::EvalWorker(args) => eval_worker::run(args),
        Command::Evolve(args) => evolve::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Export(args) => export::run(args),
        Command::Imatrix(args) => imatrix::run(args),
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
