//! mergekit's YAML merge configuration, read as mergekit reads it (`mergekit/config.py`:
//! `MergeConfiguration`, `InputModelDefinition`, `OutputSliceDefinition`,
//! `InputSliceDefinition`, `ParameterSetting`, `evaluate_setting`).
//!
//! Differences from mergekit, on purpose:
//! - unknown keys anywhere, and parameters the chosen method does not take, are errors naming
//!   the key (pydantic ignores unknown keys and mergekit ignores unused parameters, so a typo
//!   such as `wieght:` silently changes the merge there);
//! - `tokenizer_source` other than `base`, `tokenizer`, `chat_template`, `modules`, LoRA
//!   references (`model+lora`) and hub revisions (`model@rev`) are "not yet supported" errors;
//! - a single `{filter, value}` mapping not inside a list is refused (mergekit accepts it in
//!   the schema and then fails in `evaluate_setting`).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use yaml_serde::Value;

use super::methods::MergeMethod;

/// Errors in a merge configuration; each names where in the YAML it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Io { origin: String, source: std::io::Error },
    #[error("{origin}: not valid YAML: {msg}")]
    Yaml { origin: String, msg: String },
    #[error("{origin}: {path}: unknown key '{key}' (expected one of: {expected})")]
    UnknownKey { origin: String, path: String, key: String, expected: String },
    #[error("{origin}: {path}: expected {expected}, found {found}")]
    WrongType { origin: String, path: String, expected: &'static str, found: String },
    #[error("{origin}: {path}: missing required key '{key}'")]
    Missing { origin: String, path: String, key: &'static str },
    #[error("{origin}: merge_method '{name}' is not known (known: {known})")]
    UnknownMethod { origin: String, name: String, known: String },
    #[error("{origin}: {path}: {what} is not yet supported by llmtool merge")]
    NotSupported { origin: String, path: String, what: String },
    #[error("{origin}: {path}: merge_method {method} does not take parameter '{key}' (it takes: {allowed})")]
    BadParam { origin: String, path: String, key: String, method: &'static str, allowed: String },
    #[error("{origin}: {path}: {reason}")]
    Invalid { origin: String, path: String, reason: String },
}

/// One scalar parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Num(f64),
    Bool(bool),
    Str(String),
}

impl ParamValue {
    /// As a number: numbers, and strings that parse as one (PyYAML reads `1e-3` as a string,
    /// which pydantic then turns into a float).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Num(x) => Some(*x),
            ParamValue::Str(s) => s.trim().parse().ok(),
            ParamValue::Bool(_) => None,
        }
    }

    /// As a boolean: booleans, and the numbers 0 / 1 (Python truthiness of pydantic's floats).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            ParamValue::Num(x) if *x == 0.0 || *x == 1.0 => Some(*x != 0.0),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ParamValue::Num(x) => format!("number {x}"),
            ParamValue::Bool(b) => format!("boolean {b}"),
            ParamValue::Str(s) => format!("string '{s}'"),
        }
    }
}

/// mergekit's `ParameterSetting`: a scalar, a gradient (list interpolated over the layers),
/// or a list of conditionals whose first matching `filter` wins.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    Scalar(ParamValue),
    Gradient(Vec<ParamValue>),
    Conditional(Vec<Conditional>),
}

/// `{filter: STR, value: SCALAR_OR_GRADIENT}`; no filter (or `*`) matches every tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditional {
    pub filter: Option<String>,
    pub value: Setting,
}

impl Setting {
    /// mergekit `evaluate_setting(tensor_name, setting, t)`: numeric lists interpolate
    /// linearly at `t · (len − 1)`; other lists pick element `int(t · (len − 1))`; conditional
    /// lists evaluate the first entry whose filter is absent, `*`, or a substring of the
    /// tensor's (HF) name. `None` when no conditional matches (the caller falls back to the
    /// next level: source → slice → global).
    pub fn evaluate(&self, tensor_name: &str, t: f64) -> Option<ParamValue> {
        match self {
            Setting::Scalar(v) => Some(v.clone()),
            Setting::Gradient(list) => {
                if list.iter().all(|v| matches!(v, ParamValue::Num(_))) {
                    let nums: Vec<f64> = list.iter().filter_map(ParamValue::as_f64).collect();
                    let scaled = t * (nums.len() - 1) as f64;
                    let i0 = scaled as usize; // Python int(): truncation, scaled >= 0
                    let i1 = (i0 + 1).min(nums.len() - 1);
                    let frac = scaled - i0 as f64;
                    Some(ParamValue::Num((1.0 - frac) * nums[i0] + frac * nums[i1]))
                } else {
                    Some(list[(t * (list.len() - 1) as f64) as usize].clone())
                }
            }
            Setting::Conditional(conds) => conds
                .iter()
                .find(|c| match c.filter.as_deref() {
                    None | Some("*") => true,
                    Some(f) => !tensor_name.is_empty() && tensor_name.contains(f),
                })
                .and_then(|c| c.value.evaluate(tensor_name, t)),
        }
    }
}

/// `parameters:` at any level, in file order.
pub type Params = IndexMap<String, Setting>;

/// `models: [{model, parameters}]`.
#[derive(Debug, Clone)]
pub struct InputModel {
    pub model: String,
    pub parameters: Params,
}

/// `slices[i].sources[j]`: `{model, layer_range: [a, b], parameters}` (layers a..b).
#[derive(Debug, Clone)]
pub struct SliceSource {
    pub model: String,
    pub layer_range: (usize, usize),
    pub parameters: Params,
}

/// `slices[i]`: `{sources, base_model, parameters}`.
#[derive(Debug, Clone)]
pub struct OutputSlice {
    pub sources: Vec<SliceSource>,
    pub base_model: Option<String>,
    pub parameters: Params,
}

/// mergekit's float dtype names (`common.dtype_from_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatDtype {
    F32,
    F16,
    Bf16,
}

impl FloatDtype {
    pub fn parse(s: &str) -> Option<Self> {
        match s.strip_prefix("torch.").unwrap_or(s) {
            "float32" => Some(FloatDtype::F32),
            "float16" => Some(FloatDtype::F16),
            "bfloat16" => Some(FloatDtype::Bf16),
            _ => None,
        }
    }

    pub fn ggml(self) -> llmtool_formats::GgmlType {
        match self {
            FloatDtype::F32 => llmtool_formats::GgmlType::F32,
            FloatDtype::F16 => llmtool_formats::GgmlType::F16,
            FloatDtype::Bf16 => llmtool_formats::GgmlType::BF16,
        }
    }
}

/// A parsed merge configuration. Model references are kept as written; [`resolve_model`]
/// turns them into paths.
#[derive(Debug, Clone)]
pub struct MergeConfig {
    pub merge_method: MergeMethod,
    pub base_model: Option<String>,
    /// `models:` — exactly one of `models` and `slices` is set.
    pub models: Option<Vec<InputModel>>,
    pub slices: Option<Vec<OutputSlice>>,
    pub parameters: Params,
    /// Inputs are rounded to this type before merging (mergekit's loader casts to it).
    pub dtype: Option<FloatDtype>,
    /// Output type; default `dtype`, then the reference input's type.
    pub out_dtype: Option<FloatDtype>,
    /// The config file's directory: relative model paths are looked up here first.
    pub dir: Option<PathBuf>,
    /// Where the text came from (for messages).
    pub origin: String,
}

const TOP_KEYS: &[&str] = &[
    "merge_method",
    "base_model",
    "models",
    "slices",
    "parameters",
    "dtype",
    "out_dtype",
    "tokenizer_source",
    "tokenizer",
    "chat_template",
    "modules",
];

struct Ctx<'a> {
    origin: &'a str,
}

impl Ctx<'_> {
    fn wrong(&self, path: &str, expected: &'static str, v: &Value) -> ConfigError {
        ConfigError::WrongType { origin: self.origin.into(), path: path.into(), expected, found: describe(v) }
    }

    fn invalid(&self, path: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { origin: self.origin.into(), path: path.into(), reason: reason.into() }
    }

    fn unsupported(&self, path: &str, what: impl Into<String>) -> ConfigError {
        ConfigError::NotSupported { origin: self.origin.into(), path: path.into(), what: what.into() }
    }

    /// The mapping's entries with string keys, checked against `allowed`.
    fn mapping<'v>(
        &self,
        path: &str,
        v: &'v Value,
        allowed: &[&str],
    ) -> Result<IndexMap<String, &'v Value>, ConfigError> {
        let Value::Mapping(m) = v else { return Err(self.wrong(path, "a mapping", v)) };
        let mut out = IndexMap::new();
        for (k, val) in m {
            let Value::String(key) = k else { return Err(self.wrong(path, "string keys", k)) };
            if !allowed.is_empty() && !allowed.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey {
                    origin: self.origin.into(),
                    path: path.into(),
                    key: key.clone(),
                    expected: allowed.join(", "),
                });
            }
            out.insert(key.clone(), val);
        }
        Ok(out)
    }

    fn string(&self, path: &str, v: &Value) -> Result<String, ConfigError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Mapping(_) => Err(self.unsupported(path, "a model reference given as a mapping")),
            other => Err(self.wrong(path, "a string", other)),
        }
    }

    fn scalar(&self, path: &str, v: &Value) -> Result<ParamValue, ConfigError> {
        match v {
            Value::Bool(b) => Ok(ParamValue::Bool(*b)),
            Value::Number(n) => n.as_f64().map(ParamValue::Num).ok_or_else(|| self.wrong(path, "a number", v)),
            Value::String(s) => Ok(ParamValue::Str(s.clone())),
            other => Err(self.wrong(path, "a number, boolean or string", other)),
        }
    }

    fn setting(&self, path: &str, v: &Value, allow_conditional: bool) -> Result<Setting, ConfigError> {
        match v {
            Value::Sequence(items) => {
                if items.is_empty() {
                    return Err(self.invalid(path, "an empty list has no value"));
                }
                if items.iter().all(|i| matches!(i, Value::Mapping(_))) && allow_conditional {
                    let mut conds = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{path}[{i}]");
                        let m = self.mapping(&p, item, &["filter", "value"])?;
                        let filter = match m.get("filter") {
                            None | Some(Value::Null) => None,
                            Some(f) => Some(self.string(&format!("{p}.filter"), f)?),
                        };
                        let value = m.get("value").ok_or_else(|| ConfigError::Missing {
                            origin: self.origin.into(),
                            path: p.clone(),
                            key: "value",
                        })?;
                        conds.push(Conditional { filter, value: self.setting(&format!("{p}.value"), value, false)? });
                    }
                    Ok(Setting::Conditional(conds))
                } else {
                    let vals = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.scalar(&format!("{path}[{i}]"), item))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Setting::Gradient(vals))
                }
            }
            Value::Mapping(_) if allow_conditional => Err(self.invalid(
                path,
                "a {filter, value} conditional must be an entry of a list (`- filter: ... value: ...`)",
            )),
            other => Ok(Setting::Scalar(self.scalar(path, other)?)),
        }
    }

    fn params(&self, path: &str, v: Option<&&Value>) -> Result<Params, ConfigError> {
        let Some(v) = v else { return Ok(Params::new()) };
        if matches!(v, Value::Null) {
            return Ok(Params::new());
        }
        let m = self.mapping(path, v, &[])?;
        let mut out = Params::new();
        for (k, val) in m {
            let s = self.setting(&format!("{path}.{k}"), val, true)?;
            out.insert(k, s);
        }
        Ok(out)
    }

    fn dtype(&self, path: &str, v: Option<&&Value>) -> Result<Option<FloatDtype>, ConfigError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let s = self.string(path, v)?;
                FloatDtype::parse(&s).map(Some).ok_or_else(|| {
                    self.invalid(path, format!("unknown dtype '{s}' (expected float32, float16 or bfloat16)"))
                })
            }
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string '{s}'"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value !{}", t.tag),
    }
}

impl MergeConfig {
    /// Reads and parses a config file; relative model paths resolve against its directory
    /// first (see [`resolve_model`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { origin: origin.clone(), source })?;
        let mut cfg = Self::parse(&text, &origin)?;
        cfg.dir = Some(path.parent().map(Path::to_path_buf).unwrap_or_default());
        Ok(cfg)
    }

    /// Parses YAML text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let root: Value =
            crate::yaml::from_str(text).map_err(|e| ConfigError::Yaml { origin: origin.into(), msg: e.to_string() })?;
        let cx = Ctx { origin };
        let top = cx.mapping("config", &root, TOP_KEYS)?;
        let method_name = match top.get("merge_method") {
            Some(v) => cx.string("merge_method", v)?,
            None => {
                return Err(ConfigError::Missing { origin: origin.into(), path: "config".into(), key: "merge_method" })
            }
        };
        let merge_method = MergeMethod::from_name(&method_name).ok_or_else(|| ConfigError::UnknownMethod {
            origin: origin.into(),
            name: method_name.clone(),
            known: known_methods(),
        })?;
        for key in ["tokenizer", "chat_template", "modules"] {
            if top.get(key).is_some_and(|v| !matches!(v, Value::Null)) {
                return Err(cx.unsupported(key, format!("'{key}'")));
            }
        }
        match top.get("tokenizer_source") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let s = cx.string("tokenizer_source", v)?;
                if s != "base" {
                    return Err(cx.unsupported(
                        "tokenizer_source",
                        format!(
                            "tokenizer_source '{s}' (only 'base', or no tokenizer_source: the base model's tokenizer)"
                        ),
                    ));
                }
            }
        }
        let base_model = match top.get("base_model") {
            None | Some(Value::Null) => None,
            Some(v) => Some(cx.string("base_model", v)?),
        };
        let parameters = cx.params("parameters", top.get("parameters"))?;
        let dtype = cx.dtype("dtype", top.get("dtype"))?;
        let out_dtype = cx.dtype("out_dtype", top.get("out_dtype"))?;

        let models = match top.get("models") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let Value::Sequence(items) = v else { return Err(cx.wrong("models", "a list", v)) };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = format!("models[{i}]");
                    let m = cx.mapping(&p, item, &["model", "parameters"])?;
                    let model = match m.get("model") {
                        Some(v) => cx.string(&format!("{p}.model"), v)?,
                        None => return Err(ConfigError::Missing { origin: origin.into(), path: p, key: "model" }),
                    };
                    let parameters = cx.params(&format!("{p}.parameters"), m.get("parameters"))?;
                    out.push(InputModel { model, parameters });
                }
                Some(out)
            }
        };
        let slices = match top.get("slices") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let Value::Sequence(items) = v else { return Err(cx.wrong("slices", "a list", v)) };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(parse_slice(&cx, &format!("slices[{i}]"), item)?);
                }
                Some(out)
            }
        };
        let n_set = [models.as_ref().is_some_and(|m| !m.is_empty()), slices.as_ref().is_some_and(|s| !s.is_empty())]
            .iter()
            .filter(|&&b| b)
            .count();
        if n_set != 1 {
            return Err(cx.invalid("config", "exactly one of 'models' or 'slices' must be present and non-empty"));
        }
        let cfg = MergeConfig {
            merge_method,
            base_model,
            models,
            slices,
            parameters,
            dtype,
            out_dtype,
            dir: None,
            origin: origin.into(),
        };
        cfg.check_params()?;
        Ok(cfg)
    }

    /// Every parameter key must be one the method takes: per-model keys where a model is
    /// named, per-model or global keys at slice and top level (mergekit falls back from a
    /// model's parameters to the slice's and the global ones for both kinds).
    fn check_params(&self) -> Result<(), ConfigError> {
        let m = self.merge_method;
        let model_keys: Vec<&str> = model_param_names(m);
        let global_keys: Vec<&str> = model_keys.iter().copied().chain(m.global_params().iter().copied()).collect();
        let check = |path: &str, params: &Params, allowed: &[&str]| -> Result<(), ConfigError> {
            for key in params.keys() {
                if !allowed.contains(&key.as_str()) {
                    return Err(ConfigError::BadParam {
                        origin: self.origin.clone(),
                        path: path.into(),
                        key: key.clone(),
                        method: m.name(),
                        allowed: if allowed.is_empty() { "no parameters".into() } else { allowed.join(", ") },
                    });
                }
            }
            Ok(())
        };
        check("parameters", &self.parameters, &global_keys)?;
        for (i, im) in self.models.iter().flatten().enumerate() {
            check(&format!("models[{i}].parameters"), &im.parameters, &model_keys)?;
        }
        for (i, s) in self.slices.iter().flatten().enumerate() {
            check(&format!("slices[{i}].parameters"), &s.parameters, &global_keys)?;
            for (j, src) in s.sources.iter().enumerate() {
                check(&format!("slices[{i}].sources[{j}].parameters"), &src.parameters, &model_keys)?;
            }
        }
        Ok(())
    }

    /// The config's slices: `slices`, or for `models` mergekit's normalization — one slice
    /// whose sources are the models over all their layers (`n_layers(model)`), the base
    /// appended (without parameters) when it is not among them (`MergePlanner.normalize_config`).
    pub fn normalized_slices(&self, n_layers: impl Fn(&str) -> usize) -> Vec<OutputSlice> {
        if let Some(slices) = &self.slices {
            return slices.clone();
        }
        let models = self.models.as_deref().unwrap_or_default();
        let mut sources: Vec<SliceSource> = models
            .iter()
            .map(|m| SliceSource {
                model: m.model.clone(),
                layer_range: (0, n_layers(&m.model)),
                parameters: m.parameters.clone(),
            })
            .collect();
        if let Some(base) = &self.base_model {
            if !models.iter().any(|m| &m.model == base) {
                sources.push(SliceSource {
                    model: base.clone(),
                    layer_range: (0, n_layers(base)),
                    parameters: Params::new(),
                });
            }
        }
        vec![OutputSlice { sources, base_model: None, parameters: Params::new() }]
    }

    /// Every model reference, base first, without repeats, in order of appearance.
    pub fn referenced_models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |s: &String| {
            if !out.contains(s) {
                out.push(s.clone());
            }
        };
        if let Some(b) = &self.base_model {
            add(b);
        }
        for m in self.models.iter().flatten() {
            add(&m.model);
        }
        for s in self.slices.iter().flatten() {
            if let Some(b) = &s.base_model {
                add(b);
            }
            for src in &s.sources {
                add(&src.model);
            }
        }
        out
    }
}

/// Per-model parameter names: the method's, plus passthrough's `scale` (mergekit
/// `PassthroughMerge.tensor_parameters`), which llmtool applies itself.
pub fn model_param_names(m: MergeMethod) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = m.model_params().to_vec();
    if m == MergeMethod::Passthrough && !v.contains(&"scale") {
        v.push("scale");
    }
    v
}

fn known_methods() -> String {
    [
        "linear",
        "slerp",
        "nuslerp",
        "task_arithmetic",
        "ties",
        "dare_ties",
        "dare_linear",
        "breadcrumbs",
        "breadcrumbs_ties",
        "della",
        "della_linear",
        "model_stock",
        "passthrough",
    ]
    .join(", ")
}

fn parse_slice(cx: &Ctx, path: &str, v: &Value) -> Result<OutputSlice, ConfigError> {
    let m = cx.mapping(path, v, &["sources", "base_model", "parameters", "residual_weight"])?;
    if m.get("residual_weight").is_some_and(|v| !matches!(v, Value::Null)) {
        return Err(cx.unsupported(&format!("{path}.residual_weight"), "residual_weight (unused by mergekit too)"));
    }
    let base_model = match m.get("base_model") {
        None | Some(Value::Null) => None,
        Some(v) => Some(cx.string(&format!("{path}.base_model"), v)?),
    };
    let parameters = cx.params(&format!("{path}.parameters"), m.get("parameters"))?;
    let Some(sv) = m.get("sources") else {
        return Err(ConfigError::Missing { origin: cx.origin.into(), path: path.into(), key: "sources" });
    };
    let Value::Sequence(items) = sv else { return Err(cx.wrong(&format!("{path}.sources"), "a list", sv)) };
    if items.is_empty() {
        return Err(cx.invalid(&format!("{path}.sources"), "a slice needs at least one source"));
    }
    let mut sources = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let p = format!("{path}.sources[{j}]");
        let sm = cx.mapping(&p, item, &["model", "layer_range", "parameters"])?;
        let model = match sm.get("model") {
            Some(v) => cx.string(&format!("{p}.model"), v)?,
            None => return Err(ConfigError::Missing { origin: cx.origin.into(), path: p, key: "model" }),
        };
        let lr_path = format!("{p}.layer_range");
        let Some(lr) = sm.get("layer_range") else {
            return Err(ConfigError::Missing { origin: cx.origin.into(), path: p, key: "layer_range" });
        };
        let layer_range = match lr {
            Value::Sequence(v) if v.len() == 2 => {
                let int = |x: &Value| {
                    x.as_u64().map(|n| n as usize).ok_or_else(|| cx.wrong(&lr_path, "non-negative integers", x))
                };
                (int(&v[0])?, int(&v[1])?)
            }
            other => return Err(cx.wrong(&lr_path, "a list of two layer indices [start, end]", other)),
        };
        if layer_range.0 >= layer_range.1 {
            return Err(cx.invalid(&lr_path, format!("empty layer range [{}, {}]", layer_range.0, layer_range.1)));
        }
        let parameters = cx.params(&format!("{p}.parameters"), sm.get("parameters"))?;
        sources.push(SliceSource { model, layer_range, parameters });
    }
    Ok(OutputSlice { sources, base_model, parameters })
}

/// Errors resolving a model reference to a path.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("model '{reference}': LoRA references (model+lora) are not yet supported by llmtool merge; merge the adapter first (llmtool lora merge)")]
    Lora { reference: String },
    #[error(
        "model '{reference}': hub revisions (model@revision) are not supported; llmtool merge reads local paths only"
    )]
    Revision { reference: String },
    #[error("model '{reference}': not found (looked in {tried}); model references are local paths (HF dirs or GGUF files), relative to the config file's directory, then to the current directory")]
    NotFound { reference: String, tried: String },
}

/// A model reference → a path. Absolute paths are taken as they are; a relative path is
/// looked up relative to the config file's directory first, then to the current directory.
/// A reference that exists nowhere and contains `+` (mergekit's LoRA syntax) or `@` (a hub
/// revision) gets the matching "not supported" error.
pub fn resolve_model(reference: &str, config_dir: Option<&Path>) -> Result<PathBuf, ResolveError> {
    let p = Path::new(reference);
    let mut tried = Vec::new();
    if p.is_absolute() {
        if p.exists() {
            return Ok(p.to_path_buf());
        }
        tried.push(p.display().to_string());
    } else {
        if let Some(dir) = config_dir {
            let c = crate::paths::clean_path(&dir.join(p));
            if c.exists() {
                return Ok(c);
            }
            tried.push(c.display().to_string());
        }
        if p.exists() {
            return Ok(p.to_path_buf());
        }
        tried.push(format!("{} (current directory)", p.display()));
    }
    if reference.contains('+') {
        return Err(ResolveError::Lora { reference: reference.into() });
    }
    if reference.contains('@') {
        return Err(ResolveError::Revision { reference: reference.into() });
    }
    Err(ResolveError::NotFound { reference: reference.into(), tried: tried.join(", ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(x: f64) -> ParamValue {
        ParamValue::Num(x)
    }

    #[test]
    fn gradients_interpolate_like_mergekit() {
        let g = Setting::Gradient(vec![num(0.0), num(0.5), num(0.3), num(0.7), num(1.0)]);
        // t = 0.3 → scaled 1.2 → 0.8·0.5 + 0.2·0.3
        let v = g.evaluate("x", 0.3).unwrap().as_f64().unwrap();
        assert!((v - (0.8 * 0.5 + 0.2 * 0.3)).abs() < 1e-12, "{v}");
        assert_eq!(g.evaluate("x", 0.0), Some(num(0.0)));
        assert_eq!(g.evaluate("x", 1.0), Some(num(1.0)));
        let b = Setting::Gradient(vec![ParamValue::Bool(true), ParamValue::Bool(false)]);
        assert_eq!(b.evaluate("x", 0.9), Some(ParamValue::Bool(true)));
        assert_eq!(b.evaluate("x", 1.0), Some(ParamValue::Bool(false)));
    }

    #[test]
    fn conditionals_take_the_first_match_or_nothing() {
        let c = Setting::Conditional(vec![
            Conditional { filter: Some("self_attn".into()), value: Setting::Scalar(num(0.1)) },
            Conditional { filter: Some("mlp".into()), value: Setting::Gradient(vec![num(0.0), num(1.0)]) },
        ]);
        assert_eq!(c.evaluate("model.layers.0.self_attn.q_proj.weight", 0.5), Some(num(0.1)));
        assert_eq!(c.evaluate("model.layers.0.mlp.up_proj.weight", 0.25), Some(num(0.25)));
        assert_eq!(c.evaluate("model.norm.weight", 0.5), None);
    }

    #[test]
    fn parses_a_slerp_config() {
        let y = "slices:\n  - sources:\n      - model: a\n        layer_range: [0, 2]\n      - model: b\n        layer_range: [0, 2]\n\
                 merge_method: slerp\nbase_model: a\nparameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 1]\n    - value: 0.5\ndtype: bfloat16\n";
        let c = MergeConfig::parse(y, "t").unwrap();
        assert_eq!(c.merge_method, MergeMethod::Slerp);
        assert_eq!(c.dtype, Some(FloatDtype::Bf16));
        assert_eq!(c.slices.as_ref().unwrap()[0].sources[1].layer_range, (0, 2));
        assert!(matches!(c.parameters["t"], Setting::Conditional(ref v) if v.len() == 2));
    }

    #[test]
    fn errors_name_the_key() {
        let e = MergeConfig::parse("merge_method: linear\nmodels:\n  - model: a\n    parameters: {wieght: 1}\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("models[0].parameters") && e.contains("wieght"), "{e}");
        let e = MergeConfig::parse("merge_method: linear\nmodel:\n  - model: a\n", "t").unwrap_err().to_string();
        assert!(e.contains("unknown key 'model'"), "{e}");
        let e = MergeConfig::parse("merge_method: lineer\nmodels: [{model: a}]\n", "t").unwrap_err().to_string();
        assert!(e.contains("'lineer'"), "{e}");
    }
}
