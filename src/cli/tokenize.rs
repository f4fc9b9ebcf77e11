//! `llmtool tokenize MODEL (--text S | --file F) [--ids] [--json] [--no-bos]`: a text's tokens
//! under a model's tokenizer, printed like llama.cpp's `llama-tokenize` (tools/tokenize), to
//! check a conversion against the original tokenizer.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::tokenizer::load_tokenizer;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["text", "file"])))]
pub struct TokenizeArgs {
    /// A GGUF file or an HF directory with a tokenizer.json (weights are not needed).
    pub model: PathBuf,
    /// The text to tokenize, taken verbatim (no escape processing).
    #[arg(long)]
    pub text: Option<String>,
    /// A UTF-8 file whose bytes are tokenized verbatim (a trailing newline is kept).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Print only the id list, `[1, 2, 3]`.
    #[arg(long, conflicts_with = "json")]
    pub ids: bool,
    /// Print one JSON object: {"ids": [...], "pieces": [...]}.
    #[arg(long)]
    pub json: bool,
    /// Do not add the BOS token even if the model adds one.
    #[arg(long)]
    pub no_bos: bool,
    /// Do not turn special-token texts (`<|im_end|>`, …) into those tokens.
    #[arg(long)]
    pub no_parse_special: bool,
    /// Print the number of tokens after the list.
    #[arg(long)]
    pub show_count: bool,
}

pub fn run(args: TokenizeArgs) -> Result<()> {
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => {
            let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
            match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => bail!(
                    "{}: not valid UTF-8 (first bad byte at offset {})",
                    f.display(),
                    e.utf8_error().valid_up_to()
                ),
            }
        }
        (None, None) => bail!("give the text with --text or --file"),
    };
    let tok = load_tokenizer(&args.model)?;
    // llama-tokenize: add_special = the model's add_bos && !--no-bos (EOS follows the same switch).
    let add_special = tok.add_bos() && !args.no_bos;
    let ids = tok.encode(&text, add_special, !args.no_parse_special)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed pipe (`| head`) ends the listing quietly.
    match print(&mut out, &tok, &ids, &args).and_then(|()| out.flush().map_err(Into::into)) {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(())
        }
        other => other,
    }
}

fn print(out: &mut impl Write, tok: &crate::tokenizer::Tokenizer, ids: &[u32], args: &TokenizeArgs) -> Result<()> {
    if args.json {
        let pieces = ids
            .iter()
            .map(|&id| Ok(String::from_utf8_lossy(&tok.token_to_piece(id)?).into_owned()))
            .collect::<Result<Vec<_>>>()?;
        let v = json!({"ids": ids, "pieces": pieces, "n_tokens": ids.len()});
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        return Ok(());
    }
    if args.ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "[{}]", list.join(", "))?;
    } else {
        for &id in ids {
            // `%6d -> '<piece>'`, the piece's bytes as they are (like llama-tokenize's printf).
            write!(out, "{id:6} -> '")?;
            out.write_all(&tok.token_to_piece(id)?)?;
            writeln!(out, "'")?;
        }
    }
    if args.show_count {
        writeln!(out, "Total number of tokens: {}", ids.len())?;
    }
    Ok(())
}
