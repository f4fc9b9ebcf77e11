//! The build recipe (`llmtool build RECIPE.yml`): named inputs, a chain of steps, outputs,
//! and what each step is validated on. Parsed strictly (unknown keys are errors) and checked
//! before any work: every file exists, every name refers to an input, gates have the data
//! they need.
//!
//! ```yaml
//! inputs:   {base: ./Llama-3-8B, chat: ./Llama-3-8B-Instruct, target: ./my-ja-cpt}
//! start: target                        # optional; default: the first input
//! steps:
//!   - convert: {outtype: f16}
//!   - chatvector: {base: base, chat: chat, ratio: 0.5}   # applied to the current model
//!   - lora: {adapter: ./adapters/support-bot, scale: 1.0}
//!   - merge: ./merge.yml               # mergekit syntax; `current` names the current model
//!   - moe: ./moe.yml                   # mergekit-moe syntax (or {config: ./moe.yml, seed: 7}); `current` too
//!   - quantize: {type: Q4_K_M}         # + imatrix: FILE | {text: FILE, chunks: 20, ctx: 512}
//!   # or quantize: {target_bpw: 5.0, calibration: ./calib.txt} (+ imatrix): a measured per-tensor mix
//! outputs:  {gguf: ./dist/model-Q4_K_M.gguf, hf: ./dist/model-hf}
//!   # optional: deployment layouts of the result (`llmtool export`), model card from the report
//!   # ollama:   {dir: ./dist/ollama, name: my-model, system: "You are …"}
//!   # lmstudio: {root: ./dist/lmstudio, publisher: me, model: My-Model}
//! validate:
//!   text: ./eval/wiki.txt
//!   chunks: 20
//!   tasks: [./eval/jnli.jsonl]
//!   gates: {max_ppl_increase_pct: 3, max_kld: 0.05, min_task_acc: 0.6}
//! caching: per-step                    # or final | off: chain the steps in memory
//! ```
//! Relative paths are relative to the recipe file's directory.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::paths::clean_path;

/// Errors in a recipe, each naming the recipe file and the key.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

/// A recipe as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Name → model path (GGUF file or HF dir).
    pub inputs: IndexMap<String, PathBuf>,
    /// The input the chain starts from (default: the first input).
    #[serde(default)]
    pub start: Option<String>,
    pub steps: Vec<Step>,
    pub outputs: Outputs,
    #[serde(default)]
    pub validate: Option<Validate>,
    /// Where step results are cached (default: `.llmtool-cache` next to the recipe).
    #[serde(default)]
    pub cache: Option<PathBuf>,
    /// Which step results are written to the cache (default: `per-step`).
    #[serde(default)]
    pub caching: Option<Caching>,
    /// Where report.json and report.md go (default: `build-report` next to the recipe).
    #[serde(default)]
    pub report: Option<PathBuf>,
}

/// Which step results a build writes to its cache. The keys are the same in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Caching {
    /// Every step's result is a file in the cache; a rebuild skips unchanged steps.
    #[default]
    PerStep,
    /// Steps are chained in memory (each validated on its in-memory stage); only the last
    /// result is written to the cache. A build resumes from the latest cached step.
    Final,
    /// Steps are chained in memory and the result is written once, to `outputs.gguf`
    /// (to the cache only when there is no `outputs.gguf`); nothing is read from the cache.
    Off,
}

/// One pass. Each takes the current model and produces the next one. Written as a map with
/// one key, the pass's name (`- quantize: {type: Q8_0}`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", try_from = "StepMap")]
pub enum Step {
    Convert(ConvertStep),
    Chatvector(ChatVectorStep),
    Lora(LoraStep),
    Merge(MergeStep),
    /// A Mixture of Experts from a mergekit-moe config (`llmtool moe`); same forms as merge.
    Moe(MergeStep),
    Quantize(QuantizeStep),
}

/// A step as written: `{name: settings}` (yaml_serde reads enums from `!tags`, so the
/// one-key map form is converted here).
type StepMap = IndexMap<String, yaml_serde::Value>;

impl TryFrom<StepMap> for Step {
    type Error = String;

    fn try_from(map: StepMap) -> Result<Step, String> {
        let mut it = map.into_iter();
        let (Some((kind, v)), None) = (it.next(), it.next()) else {
            return Err("a step is a map with one key: convert, chatvector, lora, merge, moe or quantize".into());
        };
        let err = |e: yaml_serde::Error| format!("{kind}: {e}");
        Ok(match kind.as_str() {
            "convert" => Step::Convert(yaml_serde::from_value(v).map_err(err)?),
            "chatvector" => Step::Chatvector(yaml_serde::from_value(v).map_err(err)?),
            "lora" => Step::Lora(yaml_serde::from_value(v).map_err(err)?),
            "merge" => Step::Merge(yaml_serde::from_value(v).map_err(err)?),
            "moe" => Step::Moe(yaml_serde::from_value(v).map_err(err)?),
            "quantize" => Step::Quantize(yaml_serde::from_value(v).map_err(err)?),
            other => {
                return Err(format!(
                    "unknown step '{other}' (expected convert, chatvector, lora, merge, moe or quantize)"
                ))
            }
        })
    }
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Convert(_) => "convert",
            Step::Chatvector(_) => "chatvector",
            Step::Lora(_) => "lora",
            Step::Merge(_) => "merge",
            Step::Moe(_) => "moe",
            Step::Quantize(_) => "quantize",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertStep {
    /// f32, f16 or bf16 (default: keep the types).
    #[serde(default)]
    pub outtype: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatVectorStep {
    /// Input names of the base and chat models; the vector is chat − base.
    pub base: String,
    pub chat: String,
    /// Input name of the target (default: the current model).
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default = "one")]
    pub ratio: f64,
    /// Extra `--skip` globs.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Copy the chat template and EOS from the chat model.
    #[serde(default)]
    pub template_from_chat: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoraStep {
    /// A PEFT adapter dir or a llama.cpp GGUF adapter.
    pub adapter: PathBuf,
    #[serde(default = "one")]
    pub scale: f64,
}

/// `merge: ./merge.yml` or `merge: {config: ./merge.yml}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MergeStep {
    Path(PathBuf),
    Config {
        config: PathBuf,
        #[serde(default)]
        seed: Option<u64>,
    },
}

impl MergeStep {
    pub fn config(&self) -> &Path {
        match self {
            MergeStep::Path(p) | MergeStep::Config { config: p, .. } => p,
        }
    }
    pub fn seed(&self) -> Option<u64> {
        match self {
            MergeStep::Path(_) => None,
            MergeStep::Config { seed, .. } => *seed,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeStep {
    /// llama.cpp file type name (Q8_0, Q4_K_M, …); empty with `target_bpw`.
    #[serde(rename = "type", default)]
    pub ty: String,
    /// Instead of `type`: a per-tensor mix measured on `calibration` (`quantize --target-bpw`).
    #[serde(default)]
    pub target_bpw: Option<f64>,
    /// The calibration text of `target_bpw`.
    #[serde(default)]
    pub calibration: Option<PathBuf>,
    /// Per-tensor overrides, `PATTERN=TYPE` like `quantize --keep`.
    #[serde(default)]
    pub keep: Vec<String>,
    #[serde(default)]
    pub pure: bool,
    /// Importance matrix: a file, or computed on a text (cached). Without one, a file type
    /// that needs it (IQ2_*, IQ1_*, IQ3_XXS, Q2_K_S) gets one computed on `validate.text`.
    #[serde(default)]
    pub imatrix: Option<ImatrixSpec>,
}

/// `imatrix: ./model.imatrix.gguf` or `imatrix: {text: ./calibration.txt, chunks: 20, ctx: 512}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ImatrixSpec {
    File(PathBuf),
    Compute(ImatrixCompute),
}

/// An imatrix computed by `llmtool imatrix` on the step's input model.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImatrixCompute {
    pub text: PathBuf,
    #[serde(default = "default_imatrix_chunks")]
    pub chunks: usize,
    #[serde(default = "default_imatrix_ctx")]
    pub ctx: usize,
}

fn default_imatrix_chunks() -> usize {
    20
}

fn default_imatrix_ctx() -> usize {
    512
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    #[serde(default)]
    pub gguf: Option<PathBuf>,
    #[serde(default)]
    pub hf: Option<PathBuf>,
    /// An Ollama directory of the result (`llmtool export ollama`).
    #[serde(default)]
    pub ollama: Option<OllamaOutput>,
    /// LM Studio's layout of the result (`llmtool export lmstudio`).
    #[serde(default)]
    pub lmstudio: Option<LmStudioOutput>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OllamaOutput {
    pub dir: PathBuf,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LmStudioOutput {
    pub root: PathBuf,
    #[serde(default)]
    pub publisher: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    /// UTF-8 text scored by perplexity after every step.
    #[serde(default)]
    pub text: Option<PathBuf>,
    #[serde(default = "default_chunks")]
    pub chunks: usize,
    #[serde(default = "default_ctx")]
    pub ctx: usize,
    /// Multiple-choice task files (`llmtool eval --task` format).
    #[serde(default)]
    pub tasks: Vec<PathBuf>,
    #[serde(default)]
    pub gates: Gates,
}

/// Thresholds checked after every step, against the step's input.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Largest allowed perplexity rise of a step, in percent of its input's.
    #[serde(default)]
    pub max_ppl_increase_pct: Option<f64>,
    /// Largest allowed mean KL divergence of a step's output from its input.
    #[serde(default)]
    pub max_kld: Option<f64>,
    /// Smallest allowed task accuracy (mean over the task files) after a step.
    #[serde(default)]
    pub min_task_acc: Option<f64>,
}

impl Gates {
    /// The gates as the validation library checks them.
    pub fn limits(&self) -> crate::eval::validate::GateLimits {
        crate::eval::validate::GateLimits {
            max_ppl_increase_pct: self.max_ppl_increase_pct,
            max_kld: self.max_kld,
            min_task_acc: self.min_task_acc,
        }
    }
}

fn one() -> f64 {
    1.0
}
fn default_chunks() -> usize {
    10
}
fn default_ctx() -> usize {
    512
}

/// A checked recipe with every path made absolute.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub recipe: Recipe,
    /// The input the chain starts from.
    pub start: String,
    pub cache_dir: PathBuf,
    pub report_dir: PathBuf,
}

/// File types `quantize` accepts (checked here so a typo fails before any work).
pub type FileTypeCheck = fn(&str) -> bool;

/// The file types llama-quantize refuses to write without an importance matrix (its
/// `--imatrix` check in `quantize.cpp`), plus IQ3_XXS, whose tensors need one
/// (`tensor_requires_imatrix`).
pub fn needs_imatrix(file_type: &str) -> bool {
    matches!(
        file_type.to_ascii_uppercase().as_str(),
        "IQ2_XXS" | "IQ2_XS" | "IQ2_S" | "IQ2_M" | "IQ1_S" | "IQ1_M" | "IQ3_XXS" | "Q2_K_S"
    )
}

impl Loaded {
    /// Reads, parses and checks a recipe.
    pub fn open(path: &Path, file_type_ok: FileTypeCheck) -> Result<Loaded, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.into(), source })?;
        let mut recipe: Recipe = crate::yaml::from_str(&text)
            .map_err(|e| RecipeError::Parse { path: path.into(), message: e.to_string() })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        let abs = |p: &Path| if p.is_absolute() { clean_path(p) } else { clean_path(&dir.join(p)) };
        for p in recipe.inputs.values_mut() {
            *p = abs(p);
        }
        for step in &mut recipe.steps {
            match step {
                Step::Lora(l) => l.adapter = abs(&l.adapter),
                Step::Quantize(q) => {
                    q.calibration = q.calibration.as_deref().map(abs);
                    if let Some(ImatrixSpec::File(p) | ImatrixSpec::Compute(ImatrixCompute { text: p, .. })) =
                        &mut q.imatrix
                    {
                        *p = abs(p);
                    }
                }
                Step::Merge(MergeStep::Path(p) | MergeStep::Config { config: p, .. })
                | Step::Moe(MergeStep::Path(p) | MergeStep::Config { config: p, .. }) => *p = abs(p),
                _ => {}
            }
        }
        recipe.outputs.gguf = recipe.outputs.gguf.as_deref().map(abs);
        recipe.outputs.hf = recipe.outputs.hf.as_deref().map(abs);
        if let Some(o) = &mut recipe.outputs.ollama {
            o.dir = abs(&o.dir);
        }
        if let Some(l) = &mut recipe.outputs.lmstudio {
            l.root = abs(&l.root);
        }
        if let Some(v) = &mut recipe.validate {
            v.text = v.text.as_deref().map(abs);
            v.tasks = v.tasks.iter().map(|t| abs(t)).collect();
        }
        let cache_dir = abs(recipe.cache.as_deref().unwrap_or(Path::new(".llmtool-cache")));
        let report_dir = abs(recipe.report.as_deref().unwrap_or(Path::new("build-report")));
        let start = recipe.start.clone().or_else(|| recipe.inputs.keys().next().cloned()).unwrap_or_default();
        let loaded = Loaded { path: path.to_path_buf(), dir, recipe, start, cache_dir, report_dir };
        loaded.check(file_type_ok)?;
        Ok(loaded)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> RecipeError {
        RecipeError::Invalid { path: self.path.clone(), key: key.into(), message: message.into() }
    }

    fn check(&self, file_type_ok: FileTypeCheck) -> Result<(), RecipeError> {
        let r = &self.recipe;
        if r.inputs.is_empty() {
            return Err(self.invalid("inputs", "at least one input model is needed"));
        }
        for (name, p) in &r.inputs {
            if name == "current" {
                return Err(self.invalid(format!("inputs.{name}"), "`current` is reserved for the model being built"));
            }
            if !p.exists() {
                return Err(
                    self.invalid(format!("inputs.{name}"), format!("{}: no such file or directory", p.display()))
                );
            }
        }
        if !r.inputs.contains_key(&self.start) {
            return Err(self.invalid("start", format!("'{}' is not one of the inputs", self.start)));
        }
        if r.steps.is_empty() {
            return Err(self.invalid("steps", "the recipe has no steps"));
        }
        let input = |key: String, name: &str| -> Result<(), RecipeError> {
            if r.inputs.contains_key(name) {
                Ok(())
            } else {
                let known: Vec<&str> = r.inputs.keys().map(String::as_str).collect();
                Err(self.invalid(key, format!("'{name}' is not an input (inputs: {})", known.join(", "))))
            }
        };
        let mut quantized = false;
        for (i, step) in r.steps.iter().enumerate() {
            let key = |k: &str| format!("steps[{i}].{}.{k}", step.kind());
            match step {
                Step::Convert(c) => {
                    if let Some(t) = &c.outtype {
                        if !matches!(t.to_ascii_lowercase().as_str(), "f32" | "f16" | "bf16") {
                            return Err(self.invalid(key("outtype"), format!("'{t}': expected f32, f16 or bf16")));
                        }
                    }
                    quantized = false;
                }
                Step::Chatvector(c) => {
                    input(key("base"), &c.base)?;
                    input(key("chat"), &c.chat)?;
                    if let Some(t) = &c.target {
                        input(key("target"), t)?;
                    }
                    if !c.ratio.is_finite() {
                        return Err(self.invalid(key("ratio"), "must be a finite number"));
                    }
                }
                Step::Lora(l) => {
                    if !l.adapter.exists() {
                        return Err(
                            self.invalid(key("adapter"), format!("{}: no such file or directory", l.adapter.display()))
                        );
                    }
                    if !l.scale.is_finite() {
                        return Err(self.invalid(key("scale"), "must be a finite number"));
                    }
                }
                Step::Merge(m) | Step::Moe(m) => {
                    if !m.config().is_file() {
                        return Err(self.invalid(key("config"), format!("{}: no such file", m.config().display())));
                    }
                }
                Step::Quantize(q) => {
                    if q.target_bpw.is_some() || q.calibration.is_some() {
                        // a measured mix (`quantize --target-bpw B --calibration FILE`)
                        let bad = |k: &str, m: &str| self.invalid(key(k), m.to_string());
                        match (q.target_bpw, &q.calibration) {
                            _ if !q.ty.is_empty() => {
                                return Err(bad("type", "give either type or target_bpw (with calibration), not both"))
                            }
                            (None, _) => return Err(bad("target_bpw", "calibration is given without target_bpw")),
                            (Some(b), _) if !(b.is_finite() && b > 0.0) => {
                                return Err(bad("target_bpw", "expected a positive number of bits per weight"))
                            }
                            (Some(_), None) => return Err(bad("calibration", "target_bpw needs a calibration text")),
                            (Some(_), Some(c)) if !c.is_file() => {
                                return Err(self.invalid(key("calibration"), format!("{}: no such file", c.display())))
                            }
                            _ => {}
                        }
                    } else if !file_type_ok(&q.ty) {
                        return Err(
                            self.invalid(key("type"), format!("'{}' is not a file type llmtool quantizes", q.ty))
                        );
                    }
                    if quantized {
                        return Err(self.invalid(
                            format!("steps[{i}]"),
                            "a second quantize step on an already quantized model would requantize it; \
                             convert to f16 first if that is really wanted",
                        ));
                    }
                    match &q.imatrix {
                        Some(ImatrixSpec::File(f)) if !f.is_file() => {
                            return Err(self.invalid(key("imatrix"), format!("{}: no such file", f.display())));
                        }
                        Some(ImatrixSpec::Compute(c)) if !c.text.is_file() => {
                            return Err(
                                self.invalid(key("imatrix.text"), format!("{}: no such file", c.text.display()))
                            );
                        }
                        Some(ImatrixSpec::Compute(c)) if c.chunks == 0 || c.ctx < 4 => {
                            return Err(self.invalid(key("imatrix"), "chunks must be ≥ 1 and ctx ≥ 4"));
                        }
                        None if needs_imatrix(&q.ty) && r.validate.as_ref().and_then(|v| v.text.as_ref()).is_none() => {
                            return Err(self.invalid(
                                key("imatrix"),
                                format!(
                                    "file type {} needs an importance matrix: give `imatrix: FILE` or \
                                     `imatrix: {{text: FILE}}`, or a validate.text to compute it on",
                                    q.ty
                                ),
                            ));
                        }
                        _ => {}
                    }
                    quantized = true;
                }
            }
        }
        let o = &r.outputs;
        if o.gguf.is_none() && o.hf.is_none() && o.ollama.is_none() && o.lmstudio.is_none() {
            return Err(self
                .invalid("outputs", "name at least one output (gguf: FILE, hf: DIR, ollama: {dir: DIR} or lmstudio)"));
        }
        if let Some(g) = &r.outputs.gguf {
            if !g.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
                return Err(self.invalid("outputs.gguf", format!("{}: expected a .gguf file name", g.display())));
            }
        }
        if let (Some(_), true) = (&r.outputs.hf, quantized) {
            return Err(self.invalid(
                "outputs.hf",
                "the last model is block-quantized, which an HF (safetensors) directory cannot hold; \
                 drop outputs.hf or move it before the quantize step in a separate recipe",
            ));
        }
        if let Some(v) = &r.validate {
            if let Some(t) = &v.text {
                if !t.is_file() {
                    return Err(self.invalid("validate.text", format!("{}: no such file", t.display())));
                }
            }
            for (i, t) in v.tasks.iter().enumerate() {
                if !t.is_file() {
                    return Err(self.invalid(format!("validate.tasks[{i}]"), format!("{}: no such file", t.display())));
                }
            }
            if v.chunks == 0 || v.ctx < 4 {
                return Err(self.invalid("validate", "chunks must be ≥ 1 and ctx ≥ 4"));
            }
            let g = &v.gates;
            if (g.max_ppl_increase_pct.is_some() || g.max_kld.is_some()) && v.text.is_none() {
                return Err(self.invalid("validate.gates", "max_ppl_increase_pct and max_kld need validate.text"));
            }
            if g.min_task_acc.is_some() && v.tasks.is_empty() {
                return Err(self.invalid("validate.gates.min_task_acc", "needs validate.tasks"));
            }
            if v.text.is_none() && v.tasks.is_empty() {
                return Err(self.invalid("validate", "give a text, tasks, or drop the section"));
            }
        }
        Ok(())
    }
}
