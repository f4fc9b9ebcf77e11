//! `EVOLVE.yml`: what `llmtool merge --evolve` searches over, how it scores a candidate and how
//! long it searches. Strict: an unknown key anywhere is an error naming the key.
//!
//! ```yaml
//! merge_method: linear          # linear | task_arithmetic | ties | dare_ties | slerp
//! models: [a.gguf, b.gguf]      # candidate models (paths relative to this file, then cwd)
//! base_model: w.gguf            # required by task_arithmetic, ties, dare_ties
//! layer_groups: 1               # parameters per group of consecutive layers (1: one set)
//! evolve: [weight]              # which of the method's parameters the genome holds
//! fixed: {density: 0.5}         # values of the method's other parameters
//! normalize: true               # linear/ties/dare_ties `normalize` (default true, as mergekit-evolve)
//! allow_negative_weights: false # weights/t decoded by abs() unless true
//! dtype: float16                # optional mergekit dtype of the merge
//! fitness:                      # maximized: Σ weight·acc(_norm) + Σ weight·(−ln PPL)
//!   tasks: [{file: rte.jsonl, metric: acc_norm, weight: 1.0, limit: 100}]
//!   perplexity: [{file: wiki.txt, weight: 1.0}]
//! eval: {ctx: 256, chunks: 2}   # perplexity windows
//! search: {max_evals: 40, max_seconds: 3600, population: 8, sigma: 0.2, seed: 1, x0: [0.5, 0.5]}
//! ```
//!
//! Perplexity enters the fitness as −ln PPL (the negated mean negative log-likelihood per
//! token), so lower perplexity is higher fitness and the scale is comparable with accuracies
//! (a 1 % PPL change moves it by ≈ 0.01).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::merge::methods::MergeMethod;

#[derive(Debug, thiserror::Error)]
pub enum EvolveConfigError {
    #[error("{origin}: cannot read: {source}")]
    Io { origin: String, source: std::io::Error },
    #[error("{origin}: {msg}")]
    Yaml { origin: String, msg: String },
    #[error("{origin}: {key}: {reason}")]
    Invalid { origin: String, key: String, reason: String },
}

/// Which accuracy of a task enters the fitness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TaskMetric {
    Acc,
    #[default]
    AccNorm,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTerm {
    pub file: PathBuf,
    #[serde(default)]
    pub metric: TaskMetric,
    #[serde(default = "one")]
    pub weight: f64,
    /// Score only the first N items.
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PplTerm {
    pub file: PathBuf,
    #[serde(default = "one")]
    pub weight: f64,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FitnessSpec {
    #[serde(default)]
    pub tasks: Vec<TaskTerm>,
    #[serde(default)]
    pub perplexity: Vec<PplTerm>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Perplexity window length (tokens).
    #[serde(default = "default_ctx")]
    pub ctx: usize,
    /// Perplexity windows per text.
    #[serde(default = "one_usize")]
    pub chunks: usize,
}

impl Default for EvalSpec {
    fn default() -> Self {
        EvalSpec { ctx: default_ctx(), chunks: 1 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// Stop after this many candidate evaluations (rounded up to whole generations).
    pub max_evals: Option<u64>,
    /// Stop starting new generations after this many seconds of search.
    pub max_seconds: Option<f64>,
    /// Population size λ (default CMA-ES's 4 + ⌊3 ln n⌋).
    pub population: Option<usize>,
    /// Initial step size σ₀ in genome units.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    #[serde(default)]
    pub seed: u64,
    /// Seed of the random merge methods (DARE), as `llmtool merge --seed`.
    pub merge_seed: Option<u64>,
    /// Initial genome (default mergekit-evolve's: weights 1/n_models, densities 1, t 0.5).
    pub x0: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    merge_method: String,
    models: Vec<String>,
    base_model: Option<String>,
    #[serde(default = "one_usize")]
    layer_groups: usize,
    evolve: Option<Vec<String>>,
    #[serde(default)]
    fixed: indexmap::IndexMap<String, f64>,
    normalize: Option<bool>,
    #[serde(default)]
    allow_negative_weights: bool,
    dtype: Option<String>,
    #[serde(default)]
    fitness: FitnessSpec,
    #[serde(default)]
    eval: EvalSpec,
    search: SearchSpec,
}

fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn default_ctx() -> usize {
    256
}
fn default_sigma() -> f64 {
    0.2
}

/// Methods the search supports and the parameters each takes per model (the genome's per
/// model parameters, mergekit-evolve `METHOD_PARAM_MAPS`); slerp's genome is one `t` per
/// layer group.
pub fn method_params(m: MergeMethod) -> Option<&'static [&'static str]> {
    match m {
        MergeMethod::Linear | MergeMethod::TaskArithmetic => Some(&["weight"]),
        MergeMethod::Ties | MergeMethod::DareTies => Some(&["weight", "density"]),
        MergeMethod::Slerp => Some(&["t"]),
        _ => None,
    }
}

/// A checked EVOLVE.yml; model paths resolved (absolute when they exist).
#[derive(Debug, Clone)]
pub struct EvolveConfig {
    pub method: MergeMethod,
    pub models: Vec<PathBuf>,
    pub base_model: Option<PathBuf>,
    pub layer_groups: usize,
    /// Parameters in the genome, in the method's order.
    pub evolve: Vec<&'static str>,
    /// Values of the method's parameters not in the genome.
    pub fixed: Vec<(&'static str, f64)>,
    pub normalize: Option<bool>,
    pub allow_negative_weights: bool,
    pub dtype: Option<String>,
    pub fitness: FitnessSpec,
    pub eval: EvalSpec,
    pub search: SearchSpec,
    /// Where the file was read from (messages).
    pub origin: String,
}

fn resolve(p: &str, dir: Option<&Path>) -> PathBuf {
    let candidates = dir.map(|d| d.join(p)).into_iter().chain(std::iter::once(PathBuf::from(p)));
    for c in candidates {
        if c.exists() {
            return std::fs::canonicalize(&c).unwrap_or(c);
        }
    }
    PathBuf::from(p)
}

impl EvolveConfig {
    pub fn load(path: &Path) -> Result<Self, EvolveConfigError> {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| EvolveConfigError::Io { origin: origin.clone(), source })?;
        Self::parse(&text, &origin, path.parent())
    }

    /// Parses YAML text; relative paths resolve against `dir`, then the current directory.
    pub fn parse(text: &str, origin: &str, dir: Option<&Path>) -> Result<Self, EvolveConfigError> {
        let raw: RawConfig = crate::yaml::from_str(text)
            .map_err(|e| EvolveConfigError::Yaml { origin: origin.into(), msg: e.to_string() })?;
        let bad =
            |key: &str, reason: String| EvolveConfigError::Invalid { origin: origin.into(), key: key.into(), reason };
        let method =
            MergeMethod::from_name(&raw.merge_method).filter(|m| method_params(*m).is_some()).ok_or_else(|| {
                bad(
                    "merge_method",
                    format!(
                        "'{}' is not searchable (expected linear, task_arithmetic, ties, dare_ties or slerp)",
                        raw.merge_method
                    ),
                )
            })?;
        let params = method_params(method).unwrap_or(&[]);
        if raw.models.len() < 2 {
            return Err(bad("models", format!("at least 2 candidate models needed, found {}", raw.models.len())));
        }
        if method == MergeMethod::Slerp && raw.models.len() != 2 {
            return Err(bad("models", format!("slerp merges exactly 2 models, found {}", raw.models.len())));
        }
        let needs_base = matches!(method, MergeMethod::TaskArithmetic | MergeMethod::Ties | MergeMethod::DareTies);
        if needs_base && raw.base_model.is_none() {
            return Err(bad("base_model", format!("merge_method {} needs a base_model", method.name())));
        }
        if raw.layer_groups == 0 {
            return Err(bad("layer_groups", "must be at least 1".into()));
        }
        let evolve: Vec<&'static str> = match &raw.evolve {
            None => params.to_vec(),
            Some(list) => {
                for p in list {
                    if !params.contains(&p.as_str()) {
                        return Err(bad(
                            "evolve",
                            format!("'{p}' is not a parameter of {} (it takes: {})", method.name(), params.join(", ")),
                        ));
                    }
                }
                params.iter().copied().filter(|p| list.iter().any(|l| l == p)).collect()
            }
        };
        if evolve.is_empty() {
            return Err(bad("evolve", "nothing to evolve".into()));
        }
        let mut fixed = Vec::new();
        for (k, v) in &raw.fixed {
            let Some(p) = params.iter().find(|p| **p == k.as_str()) else {
                return Err(bad(&format!("fixed.{k}"), format!("not a parameter of {}", method.name())));
            };
            if evolve.contains(p) {
                return Err(bad(&format!("fixed.{k}"), "is also in `evolve`".into()));
            }
            if !v.is_finite() {
                return Err(bad(&format!("fixed.{k}"), format!("must be finite, found {v}")));
            }
            fixed.push((*p, *v));
        }
        if let Some(missing) = params.iter().find(|p| !evolve.contains(p) && !fixed.iter().any(|(f, _)| f == *p)) {
            return Err(bad("fixed", format!("parameter '{missing}' is neither evolved nor given in `fixed`")));
        }
        if raw.normalize.is_some() && !matches!(method, MergeMethod::Linear | MergeMethod::Ties | MergeMethod::DareTies)
        {
            return Err(bad("normalize", format!("merge_method {} takes no `normalize`", method.name())));
        }
        if raw.fitness.tasks.is_empty() && raw.fitness.perplexity.is_empty() {
            return Err(bad("fitness", "needs at least one of `tasks`, `perplexity`".into()));
        }
        for (i, t) in raw.fitness.tasks.iter().enumerate() {
            if !t.weight.is_finite() {
                return Err(bad(&format!("fitness.tasks[{i}].weight"), format!("must be finite, found {}", t.weight)));
            }
        }
        for (i, t) in raw.fitness.perplexity.iter().enumerate() {
            if !t.weight.is_finite() {
                return Err(bad(
                    &format!("fitness.perplexity[{i}].weight"),
                    format!("must be finite, found {}", t.weight),
                ));
            }
        }
        if raw.eval.ctx < 8 {
            return Err(bad("eval.ctx", format!("must be at least 8, found {}", raw.eval.ctx)));
        }
        if raw.eval.chunks == 0 {
            return Err(bad("eval.chunks", "must be at least 1".into()));
        }
        let s = &raw.search;
        if s.max_evals.is_none() && s.max_seconds.is_none() {
            return Err(bad("search", "needs a budget: `max_evals` and/or `max_seconds`".into()));
        }
        if !(s.sigma.is_finite() && s.sigma > 0.0) {
            return Err(bad("search.sigma", format!("must be > 0, found {}", s.sigma)));
        }
        if s.population.is_some_and(|p| p < 2) {
            return Err(bad("search.population", "must be at least 2".into()));
        }
        if let Some(x0) = &s.x0 {
            let n = if method == MergeMethod::Slerp {
                raw.layer_groups
            } else {
                raw.layer_groups * raw.models.len() * evolve.len()
            };
            if x0.len() != n || x0.iter().any(|x| !x.is_finite()) {
                return Err(bad("search.x0", format!("expected {n} finite numbers (the genome length), found {x0:?}")));
            }
        }
        if let Some(d) = &raw.dtype {
            if crate::merge::config::FloatDtype::parse(d).is_none() {
                return Err(bad("dtype", format!("unknown dtype '{d}' (expected float32, float16 or bfloat16)")));
            }
        }
        let mut fitness = raw.fitness;
        for t in &mut fitness.tasks {
            t.file = resolve(&t.file.to_string_lossy(), dir);
        }
        for t in &mut fitness.perplexity {
            t.file = resolve(&t.file.to_string_lossy(), dir);
        }
        Ok(EvolveConfig {
            method,
            models: raw.models.iter().map(|m| resolve(m, dir)).collect(),
            base_model: raw.base_model.as_deref().map(|m| resolve(m, dir)),
            layer_groups: raw.layer_groups,
            evolve,
            fixed,
            normalize: raw.normalize,
            allow_negative_weights: raw.allow_negative_weights,
            dtype: raw.dtype,
            fitness,
            eval: raw.eval,
            search: raw.search,
            origin: origin.into(),
        })
    }

    /// Genome length: one `t` per layer group (slerp), else layer groups × models × evolved
    /// parameters.
    pub fn genome_len(&self) -> usize {
        if self.method == MergeMethod::Slerp {
            self.layer_groups
        } else {
            self.layer_groups * self.models.len() * self.evolve.len()
        }
    }

    /// mergekit-evolve's initial genome: weight 1/n_models, density 1; slerp t = 0.5.
    pub fn initial_genome(&self) -> Vec<f64> {
        if let Some(x0) = &self.search.x0 {
            return x0.clone();
        }
        if self.method == MergeMethod::Slerp {
            return vec![0.5; self.layer_groups];
        }
        let n = self.models.len();
        let mut g = Vec::with_capacity(self.genome_len());
        for _ in 0..self.layer_groups {
            for _ in 0..n {
                for p in &self.evolve {
                    g.push(if *p == "weight" { 1.0 / n as f64 } else { 1.0 });
                }
            }
        }
        g
    }
}
