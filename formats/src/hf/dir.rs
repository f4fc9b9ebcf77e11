//! Opening an HF model directory and writing its JSON files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{to_python_json, HfError};
use crate::safetensors::{is_pickle_path, SafetensorsSet, INDEX_FILE_NAME, SINGLE_FILE_NAME};

/// Other files up to this size are listed in [`HfDir::extra_files`].
pub const MAX_EXTRA_FILE_BYTES: u64 = 32 << 20;

const CONFIG: &str = "config.json";
const GENERATION_CONFIG: &str = "generation_config.json";
const TOKENIZER: &str = "tokenizer.json";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
const SPECIAL_TOKENS_MAP: &str = "special_tokens_map.json";

/// Weight / checkpoint formats never copied as "extra" files.
const WEIGHT_EXTENSIONS: &[&str] =
    &["safetensors", "bin", "pt", "pth", "ckpt", "pkl", "h5", "msgpack", "onnx", "gguf", "ot", "tflite"];

/// An opened HF model directory.
#[derive(Debug)]
pub struct HfDir {
    pub root: PathBuf,
    pub config: Value,
    pub generation_config: Option<Value>,
    pub tokenizer_json: Option<Value>,
    pub tokenizer_config: Option<Value>,
    pub special_tokens_map: Option<Value>,
    pub weights: SafetensorsSet,
    /// Other regular, non-hidden top-level files of at most [`MAX_EXTRA_FILE_BYTES`] that are
    /// not weights nor one of the JSON files above, sorted by name: chat templates,
    /// `tokenizer.model`, `vocab.json`, `merges.txt`, `added_tokens.json`, README, LICENSE…
    /// — what a converted or merged copy of the model should carry along.
    pub extra_files: Vec<PathBuf>,
}

fn read_json(path: &Path) -> Result<Value, HfError> {
    let text = fs::read_to_string(path).map_err(|source| HfError::Io { path: path.to_path_buf(), source })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| HfError::Json {
        file: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if !v.is_object() {
        return Err(HfError::NotAnObject { file: path.to_path_buf() });
    }
    Ok(v)
}

fn read_optional(dir: &Path, name: &str) -> Result<Option<Value>, HfError> {
    let p = dir.join(name);
    if p.is_file() {
        read_json(&p).map(Some)
    } else {
        Ok(None)
    }
}

impl HfDir {
    /// Opens `dir`: config.json (required), the optional JSON files (each must parse), and
    /// the weights, looked for in this order: `model.safetensors`,
    /// `model.safetensors.index.json`, the only `*.safetensors.index.json`, the only `*.safetensors`.
    /// A directory with only pickle weights (`pytorch_model.bin`, …) is refused with advice.
    pub fn open(dir: &Path) -> Result<Self, HfError> {
        if !dir.is_dir() {
            return Err(HfError::NotADirectory { path: dir.to_path_buf() });
        }
        let io = |source| HfError::Io { path: dir.to_path_buf(), source };
        let mut names: Vec<String> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if let Some(n) = entry.file_name().to_str() {
                if dir.join(n).is_file() {
                    names.push(n.to_string());
                }
            }
        }
        names.sort();

        let config_path = dir.join(CONFIG);
        if !config_path.is_file() {
            return Err(HfError::MissingConfig { dir: dir.to_path_buf() });
        }
        let config = read_json(&config_path)?;
        let generation_config = read_optional(dir, GENERATION_CONFIG)?;
        let tokenizer_json = read_optional(dir, TOKENIZER)?;
        let tokenizer_config = read_optional(dir, TOKENIZER_CONFIG)?;
        let special_tokens_map = read_optional(dir, SPECIAL_TOKENS_MAP)?;

        let weights = open_weights(dir, &names)?;

        let weight_files: Vec<PathBuf> = weights.files().into_iter().map(Path::to_path_buf).collect();
        let known = [CONFIG, GENERATION_CONFIG, TOKENIZER, TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP];
        let mut extra_files = Vec::new();
        for n in &names {
            let p = dir.join(n);
            let ext = Path::new(n).extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            let is_index = n.ends_with(".index.json");
            if n.starts_with('.')
                || known.contains(&n.as_str())
                || WEIGHT_EXTENSIONS.contains(&ext.as_str())
                || is_index
                || weight_files.contains(&p)
            {
                continue;
            }
            let small = fs::metadata(&p).map(|m| m.len() <= MAX_EXTRA_FILE_BYTES).unwrap_or(false);
            if small {
                extra_files.push(p);
            }
        }

        Ok(HfDir {
            root: dir.to_path_buf(),
            config,
            generation_config,
            tokenizer_json,
            tokenizer_config,
            special_tokens_map,
            weights,
            extra_files,
        })
    }

    /// Every file this directory was read from (for output ≠ input checks).
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = [CONFIG, GENERATION_CONFIG, TOKENIZER, TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP]
            .iter()
            .map(|n| self.root.join(n))
            .filter(|p| p.is_file())
            .collect();
        v.extend(self.weights.files().into_iter().map(Path::to_path_buf));
        v.extend(self.extra_files.iter().cloned());
        v
    }

    /// The JSON files, to write elsewhere with [`write_hf_files`].
    pub fn files(&self) -> HfFiles {
        HfFiles {
            config: self.config.clone(),
            generation_config: self.generation_config.clone(),
            tokenizer_json: self.tokenizer_json.clone(),
            tokenizer_config: self.tokenizer_config.clone(),
            special_tokens_map: self.special_tokens_map.clone(),
        }
    }
}

fn open_weights(dir: &Path, names: &[String]) -> Result<SafetensorsSet, HfError> {
    // Same precedence as transformers `from_pretrained` (modeling_utils
    // `_get_resolved_checkpoint_files`): model.safetensors, then the sharded index.
    if names.iter().any(|n| n == SINGLE_FILE_NAME) {
        return Ok(SafetensorsSet::open_file(&dir.join(SINGLE_FILE_NAME))?);
    }
    if names.iter().any(|n| n == INDEX_FILE_NAME) {
        return Ok(SafetensorsSet::open_index(&dir.join(INDEX_FILE_NAME))?);
    }
    let indexes: Vec<&String> = names.iter().filter(|n| n.ends_with(".safetensors.index.json")).collect();
    if indexes.len() == 1 {
        return Ok(SafetensorsSet::open_index(&dir.join(indexes[0]))?);
    }
    let singles: Vec<&String> = names.iter().filter(|n| n.ends_with(".safetensors")).collect();
    match singles.len() {
        1 => return Ok(SafetensorsSet::open_file(&dir.join(singles[0]))?),
        0 => {}
        _ => {
            return Err(HfError::AmbiguousWeights {
                dir: dir.to_path_buf(),
                found: singles.into_iter().cloned().collect(),
            })
        }
    }
    if indexes.len() > 1 {
        return Err(HfError::AmbiguousWeights {
            dir: dir.to_path_buf(),
            found: indexes.into_iter().cloned().collect(),
        });
    }
    let pickles: Vec<String> = names
        .iter()
        .filter(|n| is_pickle_path(Path::new(n)) || *n == "pytorch_model.bin.index.json")
        .cloned()
        .collect();
    if !pickles.is_empty() {
        return Err(HfError::PickleOnly { dir: dir.to_path_buf(), found: pickles });
    }
    Err(HfError::MissingWeights { dir: dir.to_path_buf() })
}

/// The JSON files of a model directory (weights apart).
#[derive(Debug, Clone, PartialEq)]
pub struct HfFiles {
    pub config: Value,
    pub generation_config: Option<Value>,
    pub tokenizer_json: Option<Value>,
    pub tokenizer_config: Option<Value>,
    pub special_tokens_map: Option<Value>,
}

impl HfFiles {
    /// The five JSON values in a fixed order (config, generation config, tokenizer.json,
    /// tokenizer_config.json, special_tokens_map.json), absent files as `None`.
    pub fn json_values(&self) -> [Option<&Value>; 5] {
        [
            Some(&self.config),
            self.generation_config.as_ref(),
            self.tokenizer_json.as_ref(),
            self.tokenizer_config.as_ref(),
            self.special_tokens_map.as_ref(),
        ]
    }
}

/// Writes `value` as Python's `json.dumps(value, indent=2, sort_keys, ensure_ascii) + "\n"`.
pub fn write_json_like_python<W: Write>(
    out: &mut W,
    value: &Value,
    sort_keys: bool,
    ensure_ascii: bool,
) -> std::io::Result<()> {
    out.write_all(to_python_json(value, sort_keys, ensure_ascii).as_bytes())?;
    out.write_all(b"\n")
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), HfError> {
    let io = |source| HfError::Io { path: path.to_path_buf(), source };
    let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Writes the JSON files into `dir` (normally an [`AtomicDir`](crate::atomic::AtomicDir)
/// path) as transformers / tokenizers write them:
/// - `config.json`, `generation_config.json`: `json.dumps(d, indent=2, sort_keys=True) + "\n"`
///   (PretrainedConfig / GenerationConfig `to_json_string`);
/// - `tokenizer_config.json`, `special_tokens_map.json`:
///   `json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False) + "\n"`
///   (PreTrainedTokenizerBase.save_pretrained);
/// - `tokenizer.json`: as the tokenizers library saves it (`Tokenizer.save(pretty=True)`,
///   serde_json's pretty printer: 2-space indent, keys in their order, no final newline).
pub fn write_hf_files(dir: &Path, files: &HfFiles) -> Result<(), HfError> {
    let py = |v: &Value, ascii: bool| (to_python_json(v, true, ascii) + "\n").into_bytes();
    write_file(&dir.join(CONFIG), &py(&files.config, true))?;
    if let Some(v) = &files.generation_config {
        write_file(&dir.join(GENERATION_CONFIG), &py(v, true))?;
    }
    if let Some(v) = &files.tokenizer_config {
        write_file(&dir.join(TOKENIZER_CONFIG), &py(v, false))?;
    }
    if let Some(v) = &files.special_tokens_map {
        write_file(&dir.join(SPECIAL_TOKENS_MAP), &py(v, false))?;
    }
    if let Some(v) = &files.tokenizer_json {
        let text = serde_json::to_vec_pretty(v).expect("a JSON value serializes");
        write_file(&dir.join(TOKENIZER), &text)?;
    }
    Ok(())
}
