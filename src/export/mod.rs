//! Deployment layouts for a GGUF file: an Ollama directory (`Modelfile` with the chat template
//! translated to Ollama's Go template, the GGUF beside it) and LM Studio's models tree
//! (`publisher/model-GGUF/model-Q4_K_M.gguf`), each with a model card.
//!
//! - [`template`]: Jinja chat template → Ollama `TEMPLATE` (recognised families, checked by rendering).
//! - [`modelfile`]: the `Modelfile` text, stop texts.
//! - [`card`]: the model card (`README.md`).
//! - [`layout`]: the two layouts written from an opened GGUF (`llmtool export`, a build's outputs).

pub mod card;
pub mod layout;
pub mod modelfile;
pub mod template;

use std::io;
use std::path::Path;

use llmtool_formats::Metadata;

/// llama.cpp's `llama_ftype` names (include/llama.h), the quantization type of a file as
/// `general.file_type` gives it. Ids llama.cpp removed are absent.
pub fn file_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// The quantization type name of a GGUF's metadata (`general.file_type`), if it has a known one.
pub fn quant_name(md: &Metadata) -> Option<&'static str> {
    md.get("general.file_type").and_then(|v| v.as_u64()).and_then(|id| file_type_name(id as u32))
}

/// A name usable in file names and in Ollama's `FROM` without quoting: letters, digits, `.`,
/// `_`, `-`; anything else becomes `-` (runs collapsed, ends trimmed).
pub fn safe_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(['-', '.']).to_string()
}

/// How an exported file was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    HardLink,
    Copy,
}

/// Puts `src` at `dst` (a new path): a hard link where the file system allows it (no second copy
/// of a multi-GB file; llmtool's writers replace files by rename, never in place, so the link
/// does not change under a later rewrite of `src`), else — or with `copy` — a copy.
pub fn place_file(src: &Path, dst: &Path, copy: bool) -> io::Result<Placed> {
    if !copy && std::fs::hard_link(src, dst).is_ok() {
        return Ok(Placed::HardLink);
    }
    std::fs::copy(src, dst)?;
    Ok(Placed::Copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(safe_name("SmolLM2 135M Instruct"), "SmolLM2-135M-Instruct");
        assert_eq!(safe_name("../a b/c"), "a-b-c");
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
        assert_eq!(file_type_name(4), None);
    }
}
