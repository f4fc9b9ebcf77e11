//! An Ollama `Modelfile` (ollama/docs/modelfile.md; parsed by ollama/parser/parser.go): `FROM`
//! the GGUF beside it, the chat `TEMPLATE`, a `PARAMETER stop` per end-of-turn text, `SYSTEM`.
//!
//! Ollama's parser reads a value up to the first space unless it is quoted; a `"""…"""` value
//! may span lines and ends at the first `"""`; the value is trimmed of surrounding white space;
//! unprintable characters are dropped. What llmtool writes respects each rule, and a value
//! that cannot be written so (a system message holding `"""`) is an error.

use llmtool_formats::{MetaArray, Metadata};

#[derive(Debug, thiserror::Error)]
pub enum ModelfileError {
    #[error("{what} contains \"\"\" which ends a Modelfile string early; Ollama's Modelfile has no escape for it")]
    TripleQuote { what: &'static str },
    #[error("{what} {value:?}: a quoted Modelfile value cannot hold a double quote or a line break")]
    BadQuoted { what: &'static str, value: String },
    #[error("the GGUF file name {0:?} needs quoting in FROM; use a name of letters, digits, '.', '_' and '-'")]
    BadFileName(String),
}

/// What a Modelfile says.
#[derive(Debug, Clone, Default)]
pub struct Modelfile {
    /// Comment lines written first (without the `#`).
    pub comments: Vec<String>,
    /// The GGUF's file name, in the Modelfile's directory (`FROM ./NAME`: Ollama resolves a
    /// relative path against the Modelfile's directory, `expandPath` in parser.go).
    pub gguf_file: String,
    pub template: Option<String>,
    pub stops: Vec<String>,
    pub system: Option<String>,
}

impl Modelfile {
    /// The Modelfile's text.
    pub fn text(&self) -> Result<String, ModelfileError> {
        let f = &self.gguf_file;
        if f.is_empty() || !f.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(ModelfileError::BadFileName(f.clone()));
        }
        let mut out = String::new();
        for c in &self.comments {
            for line in c.lines() {
                out += &format!("# {line}\n");
            }
        }
        out += &format!("FROM ./{f}\n");
        if let Some(t) = &self.template {
            out += &format!("TEMPLATE {}\n", triple_quoted("the template", t)?);
        }
        for s in &self.stops {
            if s.contains('"') || s.contains('\n') || s.contains('\r') {
                return Err(ModelfileError::BadQuoted { what: "stop text", value: s.clone() });
            }
            out += &format!("PARAMETER stop \"{s}\"\n");
        }
        if let Some(s) = &self.system {
            out += &format!("SYSTEM {}\n", triple_quoted("the system message", s)?);
        }
        Ok(out)
    }
}

fn triple_quoted(what: &'static str, s: &str) -> Result<String, ModelfileError> {
    if s.contains("\"\"\"") {
        return Err(ModelfileError::TripleQuote { what });
    }
    Ok(format!("\"\"\"{s}\"\"\""))
}

/// The texts of the end-of-generation tokens the GGUF names (`tokenizer.ggml.eos_token_id`,
/// `eot_token_id`, `eom_token_id`), in that order, without duplicates or empty texts.
pub fn eog_texts(md: &Metadata) -> Vec<String> {
    let Some(MetaArray::String(tokens)) = md.get_array(crate::tokenizer::keys::TOKENS) else { return Vec::new() };
    let mut out: Vec<String> = Vec::new();
    for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(t) = md.get(key).and_then(|v| v.as_u64()).and_then(|id| tokens.get(id as usize)) {
            if !t.is_empty() && !out.contains(t) {
                out.push(t.clone());
            }
        }
    }
    out
}

/// `first` then `more`, without duplicates, keeping order.
pub fn merge_stops(first: &[String], more: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in first.iter().chain(more) {
        if !s.is_empty() && !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_from_template_stops_system() {
        let m = Modelfile {
            comments: vec!["made by a test".into()],
            gguf_file: "m-Q8_0.gguf".into(),
            template: Some("{{ .Prompt }}".into()),
            stops: vec!["<|im_end|>".into()],
            system: Some("Be brief.".into()),
        };
        assert_eq!(
            m.text().unwrap(),
            "# made by a test\nFROM ./m-Q8_0.gguf\nTEMPLATE \"\"\"{{ .Prompt }}\"\"\"\nPARAMETER stop \"<|im_end|>\"\nSYSTEM \"\"\"Be brief.\"\"\"\n"
        );
    }

    #[test]
    fn unwritable_values_are_errors() {
        let m = Modelfile { gguf_file: "a.gguf".into(), system: Some("say \"\"\"".into()), ..Default::default() };
        assert!(matches!(m.text(), Err(ModelfileError::TripleQuote { .. })));
        let m = Modelfile { gguf_file: "a b.gguf".into(), ..Default::default() };
        assert!(matches!(m.text(), Err(ModelfileError::BadFileName(_))));
    }
}
