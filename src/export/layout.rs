//! The deployment layouts as library calls on an opened GGUF ([`Source`]): planned first
//! ([`OllamaPlan`], [`LmStudioPlan`]: names, the translated chat template, the Modelfile —
//! every error about the input before any long measurement), then written with the model
//! card (the whole directory to a temp beside it, renamed into place). `llmtool export` and
//! a build's `outputs.ollama` / `outputs.lmstudio` both call them.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use llmtool_formats::atomic::{check_output_not_input, AtomicDir, WriteError};

use super::card::{model_card, CardFacts, Quality};
use super::modelfile::{eog_texts, merge_stops, Modelfile, ModelfileError};
use super::template::{family_display, probes, recognise, TemplateError};
use super::{place_file, quant_name, safe_name, Placed};
use crate::build::report::{BuildReport, StepRecord};
use crate::chat_template::{ChatTemplate, ChatTemplateError};
use crate::model::{Model, ModelError, ModelFormat};
use crate::passes::quantize::FileType;
use crate::tokenizer::Tokenizer;

/// Errors of an export, naming the file or the option.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("opening {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a GGUF file (it does not start with the GGUF magic)", path.display())]
    NoMagic { path: PathBuf },
    #[error("opening {}", path.display())]
    /// Boxed: a model error beside the path would make every result large.
    Model {
        path: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
    #[error("{}: not a GGUF file", path.display())]
    NotGguf { path: PathBuf },
    #[error("{}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no general.file_type and no weight tensors to name its type", path.display())]
    NoType { path: PathBuf },
    /// An option without a usable name (`--name`, `--model`, `--publisher`).
    #[error("{0}")]
    BadName(&'static str),
    #[error("reading --template {}", path.display())]
    ReadTemplate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}; pass an Ollama template with --template FILE", path.display())]
    NoTemplate { path: PathBuf, source: ChatTemplateError },
    #[error("{}: tokenizer.chat_template", path.display())]
    Template {
        path: PathBuf,
        #[source]
        source: ChatTemplateError,
    },
    #[error("{}: translating tokenizer.chat_template", path.display())]
    Translate {
        path: PathBuf,
        #[source]
        source: TemplateError,
    },
    #[error(transparent)]
    Modelfile(#[from] ModelfileError),
    #[error("reading {}", path.display())]
    ReadReport {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a llmtool build report (report.json)", path.display())]
    Report {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("placing {} in {}", from.display(), dir.display())]
    Place {
        from: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// An opened GGUF input: the model, its file size and its quantization type's name.
pub struct Source {
    pub path: PathBuf,
    pub model: Model,
    pub size: u64,
    pub quant: String,
}

impl Source {
    /// Opens `path`, which must be a GGUF file (checked by its magic first).
    pub fn open(path: &Path) -> Result<Source, ExportError> {
        let mut magic = [0u8; 4];
        let mut f =
            std::fs::File::open(path).map_err(|source| ExportError::Open { path: path.to_path_buf(), source })?;
        if f.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(ExportError::NoMagic { path: path.to_path_buf() });
        }
        let model = Model::open(path)
            .map_err(|source| ExportError::Model { path: path.to_path_buf(), source: Box::new(source) })?;
        if model.format != ModelFormat::Gguf {
            return Err(ExportError::NotGguf { path: path.to_path_buf() });
        }
        let size =
            std::fs::metadata(path).map_err(|source| ExportError::Stat { path: path.to_path_buf(), source })?.len();
        let quant = match quant_name(&model.metadata) {
            Some(q) => q.to_string(),
            None => dominant_type(&model).ok_or_else(|| ExportError::NoType { path: path.to_path_buf() })?,
        };
        Ok(Source { path: path.to_path_buf(), model, size, quant })
    }

    /// The model card's facts of this file under `title`, placed as `file_name`.
    pub fn card_facts(&self, title: &str, file_name: &str, chat_format: Option<String>) -> CardFacts {
        let md = &self.model.metadata;
        CardFacts {
            title: title.to_string(),
            general_name: md.get_str("general.name").map(str::to_string),
            arch: md.get_str("general.architecture").unwrap_or("?").to_string(),
            n_params: self.model.n_params(),
            quant: self.quant.clone(),
            file_name: file_name.to_string(),
            size_bytes: self.size,
            license: md.get_str("general.license").map(str::to_string),
            chat_format,
        }
    }

    /// The model card's quality table from a `llmtool build` report (report.json), and
    /// whether one of its rows is this file (by size).
    pub fn quality_from_report(&self, report: &Path) -> Result<(Quality, bool), ExportError> {
        let text = std::fs::read_to_string(report)
            .map_err(|source| ExportError::ReadReport { path: report.to_path_buf(), source })?;
        let r: BuildReport =
            serde_json::from_str(&text).map_err(|source| ExportError::Report { path: report.to_path_buf(), source })?;
        let q = Quality::from_build_report(&r, step_quant, self.size);
        let this_file = q.rows.iter().any(|row| row.this_file);
        Ok((q, this_file))
    }
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

/// Options of an Ollama directory (`export ollama`).
#[derive(Debug, Clone, Default)]
pub struct OllamaOptions {
    /// The directory to write (must not exist unless `force`).
    pub dir: PathBuf,
    /// The system message (Modelfile SYSTEM).
    pub system: Option<String>,
    /// The model's name (default: the input's file name).
    pub name: Option<String>,
    /// An Ollama template (Go text/template) instead of the GGUF's chat template translated.
    pub template: Option<PathBuf>,
    /// Copy the GGUF (default: a hard link where the file system allows one).
    pub copy: bool,
    pub force: bool,
}

/// An Ollama directory, planned: everything but the model card and the files.
pub struct OllamaPlan {
    pub name: String,
    pub gguf_file: String,
    pub modelfile: String,
    pub stops: Vec<String>,
    pub chat_format: Option<String>,
    /// Notes on the translated template (for the user).
    pub notes: Vec<String>,
}

impl OllamaPlan {
    /// The name, the chat template (the user's, or the GGUF's translated) and the Modelfile.
    pub fn new(src: &Source, o: &OllamaOptions) -> Result<OllamaPlan, ExportError> {
        let name = safe_name(&o.name.clone().unwrap_or_else(|| input_stem(&src.path)));
        if name.is_empty() {
            return Err(ExportError::BadName("--name: give a name with letters or digits"));
        }
        let gguf_file = format!("{name}.gguf");
        let md = &src.model.metadata;
        let mut notes = Vec::new();
        let (template, family_stops, chat_format, note) = match &o.template {
            Some(p) => {
                let t = std::fs::read_to_string(p)
                    .map_err(|source| ExportError::ReadTemplate { path: p.clone(), source })?;
                (t, Vec::new(), Some("custom (--template)".to_string()), format!("TEMPLATE from {}", p.display()))
            }
            None => {
                let path = || src.path.clone();
                let tmpl = ChatTemplate::from_gguf_metadata(md).map_err(|e| match e {
                    ChatTemplateError::Missing(_) => ExportError::NoTemplate { path: path(), source: e },
                    e => ExportError::Template { path: path(), source: e },
                })?;
                let jinja = md.get_str(crate::tokenizer::keys::CHAT_TEMPLATE).unwrap_or_default();
                let add_bos = Tokenizer::from_gguf_metadata(md).map(|t| t.add_bos()).unwrap_or(false);
                let r = recognise(jinja, tmpl.bos_token(), tmpl.eos_token(), add_bos)
                    .map_err(|source| ExportError::Translate { path: path(), source })?;
                if r.system_rejected {
                    notes.push(
                        "the chat template rejects system messages; the Ollama template writes one at the head of the first user message"
                            .to_string(),
                    );
                }
                if r.dated {
                    notes.push(
                        "the chat template writes today's date into its system message; the Modelfile keeps the date of this export"
                            .to_string(),
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
        let system = o.system.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let modelfile = Modelfile {
            comments: vec![
                format!("Written by llmtool {} from {}.", env!("CARGO_PKG_VERSION"), src.path.display()),
                format!("ollama create {name} -f Modelfile"),
                note,
            ],
            gguf_file: gguf_file.clone(),
            template: Some(template),
            stops: stops.clone(),
            system,
        }
        .text()?;
        Ok(OllamaPlan { name, gguf_file, modelfile, stops, chat_format, notes })
    }

    /// Writes the directory: the GGUF (hard link or copy), the Modelfile and the model card
    /// with `quality`. Returns how the GGUF was placed.
    pub fn write(&self, src: &Source, o: &OllamaOptions, quality: Option<&Quality>) -> Result<Placed, ExportError> {
        let (name, gguf_file) = (&self.name, &self.gguf_file);
        let usage = format!(
            "```sh\nollama create {name} -f Modelfile   # in this directory: FROM ./{gguf_file} is read from beside the Modelfile\nollama run {name}\n```"
        );
        let card = model_card(&src.card_facts(name, gguf_file, self.chat_format.clone()), quality, &usage);
        check_output_not_input(&o.dir, &[&src.path])?;
        let out = AtomicDir::create(&o.dir, o.force)?;
        let placed = place_file(&src.path, &out.path().join(gguf_file), o.copy)
            .map_err(|source| ExportError::Place { from: src.path.clone(), dir: o.dir.clone(), source })?;
        write(out.path(), "Modelfile", &self.modelfile)?;
        write(out.path(), "README.md", &card)?;
        out.commit()?;
        Ok(placed)
    }
}

/// Options of LM Studio's layout (`export lmstudio`).
#[derive(Debug, Clone, Default)]
pub struct LmStudioOptions {
    /// LM Studio's models directory (or any root to copy from).
    pub root: PathBuf,
    /// The publisher directory (default: the GGUF's general.organization).
    pub publisher: Option<String>,
    /// The model's name (default: the input's file name without its quantization suffix).
    pub model: Option<String>,
    pub copy: bool,
    pub force: bool,
}

/// LM Studio's layout, planned: ROOT/PUBLISHER/NAME-GGUF/NAME-TYPE.gguf.
pub struct LmStudioPlan {
    pub publisher: String,
    pub name: String,
    pub gguf_file: String,
    /// ROOT/PUBLISHER/NAME-GGUF.
    pub dir: PathBuf,
}

impl LmStudioPlan {
    pub fn new(src: &Source, o: &LmStudioOptions) -> Result<LmStudioPlan, ExportError> {
        let org = src.model.metadata.get_str("general.organization");
        let publisher = safe_name(o.publisher.as_deref().or(org).unwrap_or_default());
        if publisher.is_empty() {
            return Err(ExportError::BadName(
                "--publisher: give a name with letters or digits (the GGUF has no general.organization)",
            ));
        }
        let name = match &o.model {
            Some(n) => safe_name(n),
            None => without_quant_suffix(&input_stem(&src.path), &src.quant),
        };
        if name.is_empty() {
            return Err(ExportError::BadName("--model: give a name with letters or digits"));
        }
        let gguf_file = format!("{name}-{}.gguf", src.quant);
        let dir = o.root.join(&publisher).join(format!("{name}-GGUF"));
        Ok(LmStudioPlan { publisher, name, gguf_file, dir })
    }

    /// Writes the directory: the GGUF (hard link or copy) and the model card with `quality`.
    pub fn write(&self, src: &Source, o: &LmStudioOptions, quality: Option<&Quality>) -> Result<Placed, ExportError> {
        let (publisher, name, gguf_file) = (&self.publisher, &self.name, &self.gguf_file);
        let usage = format!(
            "This directory is laid out as LM Studio's models folder expects (`{publisher}/{name}-GGUF/{gguf_file}`): \
             put `{publisher}/` under LM Studio's models directory (by default `~/.lmstudio/models`) and the model \
             appears as `{publisher}/{name}-GGUF`."
        );
        let card = model_card(&src.card_facts(name, gguf_file, None), quality, &usage);
        let pub_dir = o.root.join(publisher);
        std::fs::create_dir_all(&pub_dir).map_err(|source| ExportError::CreateDir { path: pub_dir.clone(), source })?;
        check_output_not_input(&self.dir, &[&src.path])?;
        let out = AtomicDir::create(&self.dir, o.force)?;
        let placed = place_file(&src.path, &out.path().join(gguf_file), o.copy)
            .map_err(|source| ExportError::Place { from: src.path.clone(), dir: self.dir.clone(), source })?;
        write(out.path(), "README.md", &card)?;
        out.commit()?;
        Ok(placed)
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), ExportError> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|source| ExportError::WriteFile { path: p, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quant_suffixes_are_dropped_once() {
        assert_eq!(without_quant_suffix("SmolLM2-135M-Instruct.Q4_1", "Q4_1"), "SmolLM2-135M-Instruct");
        assert_eq!(without_quant_suffix("m-q8_0", "Q8_0"), "m");
        assert_eq!(without_quant_suffix("Q8_0", "Q8_0"), "Q8_0");
    }
}
