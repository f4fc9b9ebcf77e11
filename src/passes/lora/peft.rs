//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! Facts from PEFT (peft/tuners/lora/layer.py, model.py, utils/other.py, 0.21):
//! * scaling = lora_alpha / r, or lora_alpha / √r with `use_rslora`; `rank_pattern` /
//!   `alpha_pattern` override r / alpha for the modules whose name matches
//!   `^(.*\.)?(KEY)$` (`get_pattern_key`, first key in file order wins);
//! * Linear: ΔW = scaling · B·A with A `[r, in]`, B `[out, r]` (`lora_A.weight`, `lora_B.weight`);
//! * Embedding: `lora_embedding_A` is `[r, num_embeddings]`, `lora_embedding_B`
//!   `[embedding_dim, r]`, ΔW = scaling · (B·A)ᵀ (`Embedding.get_delta_weight`);
//! * `lora_B.bias` (`lora_bias=True`): bias += scaling · lora_B.bias;
//! * DoRA (`lora_magnitude_vector`, length out): W' = m / ‖W + s·B·A‖ · (W + s·B·A), the norm
//!   taken per output row (`DoraLinearLayer.get_weight_norm`: `torch.linalg.norm(W, dim=1)`,
//!   detached: it is a plain number at merge time);
//! * other saved tensors (`modules_to_save`, `bias="all"`, `save_embedding_layers`) replace the
//!   base tensor of the same path (`.modules_to_save.default.` / `.base_layer.` dropped).
//!
//! Keys saved are `base_model.model.<module path>.<param>`.

use std::path::{Path, PathBuf};

use llmtool_formats::safetensors::{ggml_type, SafetensorsSet};
use serde_json::Value;

use super::{transpose, LoraError};

const CONFIG_FILE: &str = "adapter_config.json";
const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PREFIX: &str = "base_model.model.";

/// Config keys that do not change the merged weights (training, init, bookkeeping; which
/// modules are targeted is read from the tensors themselves).
const NEUTRAL_KEYS: &[&str] = &[
    "base_model_name_or_path",
    "revision",
    "task_type",
    "inference_mode",
    "auto_mapping",
    "peft_version",
    "lora_dropout",
    "init_lora_weights",
    "loftq_config",
    "eva_config",
    "corda_config",
    "lora_ga_config",
    "layers_pattern",
    "layers_to_transform",
    "exclude_modules",
    "target_modules",
    "megatron_core",
    "qalora_group_size",
    "ensure_weight_tying",
    "modules_to_save",
    "bias",
    "use_dora",
    "lora_bias",
];

/// Keys this module implements.
const HANDLED_KEYS: &[&str] =
    &["peft_type", "r", "lora_alpha", "use_rslora", "rank_pattern", "alpha_pattern", "fan_in_fan_out"];

/// One LoRA-adapted module in weight layout: ΔW = scaling · b·a with `b` `[n_out, r]` and
/// `a` `[r, n_in]` row-major, so ΔW has the HF weight's shape `[n_out, n_in]` (embeddings
/// are stored transposed here so that this holds for them too).
#[derive(Debug, Clone)]
pub struct PeftModule {
    /// HF module path without the PEFT prefix, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    pub embedding: bool,
    pub r: usize,
    pub n_in: usize,
    pub n_out: usize,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub scaling: f64,
    /// `lora_B.bias` (length n_out), added times `scaling` to the module's bias.
    pub bias: Option<Vec<f32>>,
    /// DoRA magnitude (length n_out).
    pub magnitude: Option<Vec<f32>>,
}

/// A full tensor saved in the adapter that replaces the base's.
#[derive(Debug, Clone)]
pub struct FullTensor {
    /// HF tensor name, e.g. `lm_head.weight`.
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<u64>,
    pub data: Vec<f32>,
}

/// A PEFT LoRA adapter read into memory (adapters are small).
#[derive(Debug, Clone)]
pub struct PeftAdapter {
    pub dir: PathBuf,
    pub modules: Vec<PeftModule>,
    pub full: Vec<FullTensor>,
}

fn cfg_err(path: &Path, key: &str, reason: impl Into<String>) -> LoraError {
    LoraError::Config { path: path.to_path_buf(), key: key.to_string(), reason: reason.into() }
}

fn is_neutral_value(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The parsed scaling rules of an adapter_config.json.
#[derive(Debug, Clone)]
pub struct ScalingRules {
    pub r: usize,
    pub alpha: f64,
    pub rslora: bool,
    pub rank_pattern: Vec<(String, ModulePattern, usize)>,
    pub alpha_pattern: Vec<(String, ModulePattern, f64)>,
}

/// Keys of `rank_pattern` / `alpha_pattern` that need a regex engine, at most (module names
/// need none; see [`ModulePattern`]).
pub const MAX_REGEX_PATTERNS: usize = 256;

/// Compiled size limit of one such regex (`regex::RegexBuilder::size_limit`; a module name
/// with alternatives takes a few KiB).
pub const REGEX_SIZE_LIMIT: usize = 64 << 10;

/// A `rank_pattern` / `alpha_pattern` key, matched as PEFT does
/// (`re.match(rf"(.*\.)?({key})$", module)`, peft `get_pattern_key`). A key made only of
/// name characters (letters, digits, `_`, `-`, `.`), as module names are, is matched without
/// a regex engine ('.' still matches any character): a compiled regex costs 7–11 KB, and an
/// adapter_config.json of 62,500 such keys held 688 MB
/// (tests/alloc_bounds.rs). Other keys compile, within [`REGEX_SIZE_LIMIT`] and
/// [`MAX_REGEX_PATTERNS`].
#[derive(Debug, Clone)]
pub enum ModulePattern {
    Name(String),
    Regex(regex::Regex),
}

impl ModulePattern {
    fn new(key: &str, regexes: &mut usize) -> Result<ModulePattern, String> {
        if key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Ok(ModulePattern::Name(key.to_string()));
        }
        *regexes += 1;
        if *regexes > MAX_REGEX_PATTERNS {
            return Err(format!("more than {MAX_REGEX_PATTERNS} keys that are regular expressions"));
        }
        regex::RegexBuilder::new(&format!(r"^(?:.*\.)?(?:{key})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(ModulePattern::Regex)
            .map_err(|e| format!("not a valid pattern: {e}"))
    }

    /// Whether `module` (a dotted module path) matches, as `^(?:.*\.)?(?:key)$` would.
    pub fn is_match(&self, module: &str) -> bool {
        match self {
            ModulePattern::Regex(re) => re.is_match(module),
            ModulePattern::Name(key) => {
                // The key matches exactly as many characters as it has: it must match the
                // module's last ones ('.' any but a newline), preceded by nothing or by
                // a '.' ending a prefix without newlines (`.*\.`).
                let n = key.chars().count();
                let start =
                    if n == 0 { Some(module.len()) } else { module.char_indices().rev().nth(n - 1).map(|(i, _)| i) };
                let Some(start) = start else { return false };
                let (prefix, tail) = module.split_at(start);
                tail.chars().zip(key.chars()).all(|(m, k)| if k == '.' { m != '\n' } else { m == k })
                    && (prefix.is_empty() || (prefix.ends_with('.') && !prefix.contains('\n')))
            }
        }
    }
}

impl ScalingRules {
    /// Reads and checks the config; unknown keys with a non-neutral value are refused.
    pub fn from_config(path: &Path, cfg: &Value) -> Result<ScalingRules, LoraError> {
        let obj = cfg.as_object().ok_or_else(|| cfg_err(path, "(root)", "expected a JSON object"))?;
        for (k, v) in obj {
            if NEUTRAL_KEYS.contains(&k.as_str()) || HANDLED_KEYS.contains(&k.as_str()) || is_neutral_value(v) {
                continue;
            }
            return Err(LoraError::Unsupported { path: path.to_path_buf(), key: k.clone(), value: v.to_string() });
        }
        if let Some(t) = obj.get("peft_type") {
            if t.as_str() != Some("LORA") {
                return Err(cfg_err(path, "peft_type", format!("expected \"LORA\", found {t}")));
            }
        }
        if obj.get("fan_in_fan_out").is_some_and(|v| v.as_bool() == Some(true)) {
            // Conv1D (GPT-2 style) layers store W transposed; no supported architecture has them.
            return Err(LoraError::Unsupported {
                path: path.to_path_buf(),
                key: "fan_in_fan_out".into(),
                value: "true (Conv1D layouts; no supported architecture uses them)".into(),
            });
        }
        let r = obj
            .get("r")
            .and_then(Value::as_u64)
            .filter(|&r| r > 0)
            .ok_or_else(|| cfg_err(path, "r", format!("expected a positive integer, found {:?}", obj.get("r"))))?
            as usize;
        let alpha = match obj.get("lora_alpha") {
            None => 8.0, // PEFT's LoraConfig default
            Some(v) => {
                v.as_f64().ok_or_else(|| cfg_err(path, "lora_alpha", format!("expected a number, found {v}")))?
            }
        };
        let rslora = match obj.get("use_rslora") {
            None | Some(Value::Null) => false,
            Some(v) => v.as_bool().ok_or_else(|| cfg_err(path, "use_rslora", format!("expected a bool, found {v}")))?,
        };
        let mut regexes = 0;
        let mut pattern = |key: &str| -> Result<Vec<(String, ModulePattern, f64)>, LoraError> {
            let mut out = Vec::new();
            match obj.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        let n = v.as_f64().ok_or_else(|| {
                            cfg_err(path, &format!("{key}.{k}"), format!("expected a number, found {v}"))
                        })?;
                        let re =
                            ModulePattern::new(k, &mut regexes).map_err(|e| cfg_err(path, &format!("{key}.{k}"), e))?;
                        out.push((k.clone(), re, n));
                    }
                }
                Some(v) => return Err(cfg_err(path, key, format!("expected an object, found {v}"))),
            }
            Ok(out)
        };
        let mut rank_pattern = Vec::new();
        for (k, re, n) in pattern("rank_pattern")? {
            if n < 1.0 || n.fract() != 0.0 {
                return Err(cfg_err(
                    path,
                    &format!("rank_pattern.{k}"),
                    format!("expected a positive integer, found {n}"),
                ));
            }
            rank_pattern.push((k, re, n as usize));
        }
        let alpha_pattern = pattern("alpha_pattern")?;
        Ok(ScalingRules { r, alpha, rslora, rank_pattern, alpha_pattern })
    }

    /// (r, scaling) of a module (its path relative to the model, as PEFT matches it).
    pub fn for_module(&self, module: &str) -> (usize, f64) {
        let r = self.rank_pattern.iter().find(|(_, re, _)| re.is_match(module)).map_or(self.r, |p| p.2);
        let alpha = self.alpha_pattern.iter().find(|(_, re, _)| re.is_match(module)).map_or(self.alpha, |p| p.2);
        let scaling = if self.rslora { alpha / (r as f64).sqrt() } else { alpha / r as f64 };
        (r, scaling)
    }
}

/// One safetensors entry as f32 with its row-major shape.
fn read_f32(set: &SafetensorsSet, path: &Path, name: &str) -> Result<(Vec<u64>, Vec<f32>), LoraError> {
    let bad = |reason: String| LoraError::Tensor { path: path.to_path_buf(), tensor: name.to_string(), reason };
    let t = set.tensor(name).ok_or_else(|| bad("missing".into()))?;
    let ty = ggml_type(t.dtype)
        .filter(|ty| llmtool_kernels::convert::can_decode(*ty))
        .ok_or_else(|| bad(format!("dtype {:?} is not a float type", t.dtype)))?;
    let n = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("shape overflows".into()))?;
    let bytes = set.tensor_data(name).ok_or_else(|| bad("no data".into()))?;
    if Some(bytes.len() as u64) != ty.row_bytes(n) {
        return Err(bad(format!("{} bytes for shape {:?} {:?}", bytes.len(), t.shape, t.dtype)));
    }
    let mut out = vec![0f32; n as usize];
    llmtool_kernels::convert::to_f32(ty, bytes, &mut out).map_err(|e| bad(e.to_string()))?;
    Ok((t.shape.clone(), out))
}

impl PeftAdapter {
    /// Reads `dir/adapter_config.json` and `dir/adapter_model.safetensors`.
    pub fn open(dir: &Path) -> Result<PeftAdapter, LoraError> {
        let cfg_path = dir.join(CONFIG_FILE);
        let text =
            std::fs::read_to_string(&cfg_path).map_err(|source| LoraError::Io { path: cfg_path.clone(), source })?;
        let cfg: Value =
            serde_json::from_str(&text).map_err(|source| LoraError::Json { path: cfg_path.clone(), source })?;
        let rules = ScalingRules::from_config(&cfg_path, &cfg)?;
        let st_path = dir.join(WEIGHTS_FILE);
        if !st_path.exists() && dir.join("adapter_model.bin").exists() {
            return Err(LoraError::Tensor {
                path: dir.join("adapter_model.bin"),
                tensor: "(file)".into(),
                reason: "pickle adapters are not read (code execution risk); convert to safetensors".into(),
            });
        }
        let set = SafetensorsSet::open_file(&st_path)
            .map_err(|e| LoraError::Format { path: st_path.clone(), source: Box::new(e.into()) })?;
        Self::from_tensors(dir, &st_path, &set, &rules)
    }

    fn from_tensors(
        dir: &Path,
        path: &Path,
        set: &SafetensorsSet,
        rules: &ScalingRules,
    ) -> Result<PeftAdapter, LoraError> {
        let bad = |tensor: &str, reason: String| LoraError::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            reason,
        };
        let mut modules: Vec<PeftModule> = Vec::new();
        let mut full = Vec::new();
        let names: Vec<String> = set.tensors().iter().map(|t| t.name.clone()).collect();
        for name in &names {
            let rel = name.strip_prefix(PREFIX).ok_or_else(|| bad(name, format!("expected the prefix '{PREFIX}'")))?;
            let rel = rel.replace(".modules_to_save.default.", ".modules_to_save.");
            let (module, linear) = if let Some(m) = rel.strip_suffix(".lora_A.weight") {
                (m.to_string(), true)
            } else if let Some(m) = rel.strip_suffix(".lora_embedding_A") {
                (m.to_string(), false)
            } else if rel.ends_with(".lora_B.weight")
                || rel.ends_with(".lora_B.bias")
                || rel.ends_with(".lora_embedding_B")
                || rel.ends_with(".lora_magnitude_vector")
                || rel.ends_with(".lora_magnitude_vector.weight")
            {
                continue; // read with its lora_A
            } else if rel.contains("lora_") {
                return Err(bad(
                    name,
                    "unknown LoRA tensor kind (not lora_A/lora_B/lora_embedding_A/B/lora_magnitude_vector)".into(),
                ));
            } else {
                // modules_to_save copy, or a saved base layer: replaces the base tensor
                let hf = rel.replace(".modules_to_save.", ".").replace(".base_layer.", ".");
                let (shape, data) = read_f32(set, path, name)?;
                full.push(FullTensor { name: hf, shape, data });
                continue;
            };
            let (r, scaling) = rules.for_module(&module);
            let pre = &name[..name.len() - if linear { ".lora_A.weight".len() } else { ".lora_embedding_A".len() }];
            let (a_name, b_name) = if linear {
                (name.clone(), format!("{pre}.lora_B.weight"))
            } else {
                (name.clone(), format!("{pre}.lora_embedding_B"))
            };
            let (a_shape, a) = read_f32(set, path, &a_name)?;
            let (b_shape, b) = read_f32(set, path, &b_name)?;
            if a_shape.len() != 2 || b_shape.len() != 2 {
                return Err(bad(&a_name, format!("expected 2-D A and B, found {a_shape:?} and {b_shape:?}")));
            }
            if a_shape[0] as usize != r || b_shape[1] as usize != r {
                return Err(bad(
                    &a_name,
                    format!(
                        "rank mismatch: adapter_config.json gives r = {r} for '{module}', A is {a_shape:?} and B is {b_shape:?}"
                    ),
                ));
            }
            let (n_out, n_in, a, b) = if linear {
                (b_shape[0] as usize, a_shape[1] as usize, a, b)
            } else {
                // ΔW = (B·A)ᵀ = Aᵀ·Bᵀ: rows = num_embeddings, row length = embedding_dim
                let (vocab, dim) = (a_shape[1] as usize, b_shape[0] as usize);
                (vocab, dim, transpose(&b, dim, r), transpose(&a, r, vocab))
            };
            let bias = match set.tensor(&format!("{pre}.lora_B.bias")) {
                Some(_) => {
                    let (s, v) = read_f32(set, path, &format!("{pre}.lora_B.bias"))?;
                    if s != [n_out as u64] {
                        return Err(bad(
                            &format!("{pre}.lora_B.bias"),
                            format!("expected shape [{n_out}], found {s:?}"),
                        ));
                    }
                    Some(v)
                }
                None => None,
            };
            let mag_name = [format!("{pre}.lora_magnitude_vector"), format!("{pre}.lora_magnitude_vector.weight")]
                .into_iter()
                .find(|n| set.tensor(n).is_some());
            let magnitude = match mag_name {
                Some(n) => {
                    if !linear {
                        return Err(bad(&n, "DoRA on an embedding is not supported".into()));
                    }
                    let (s, v) = read_f32(set, path, &n)?;
                    if s != [n_out as u64] {
                        return Err(bad(&n, format!("expected shape [{n_out}], found {s:?}")));
                    }
                    Some(v)
                }
                None => None,
            };
            modules.push(PeftModule { module, embedding: !linear, r, n_in, n_out, a, b, scaling, bias, magnitude });
        }
        if modules.is_empty() && full.is_empty() {
            return Err(bad("(file)", "no LoRA tensors".into()));
        }
        Ok(PeftAdapter { dir: dir.to_path_buf(), modules, full })
    }
}
