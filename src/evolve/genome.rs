//! Genome → mergekit configuration, decoded as mergekit-evolve does
//! (`mergekit/evo/genome.py`, `ModelGenome.genotype_merge_config`):
//!
//! - layout `[layer_group][model][parameter]` (the evolved parameters in the method's order);
//! - `weight` (and `t`) → `abs(x)` unless `allow_negative_weights`; `density` → `abs(x)`
//!   clamped to [0, 1];
//! - one layer group: a `models:` config; several: one output slice per group of consecutive
//!   layers (`layer_range`), the base model appended to each slice's sources without
//!   parameters;
//! - `normalize` defaults to true for linear / ties / dare_ties;
//! - slerp (two models): one `t` per group, `abs(x)` clamped to [0, 1] (mergekit-evolve picks
//!   the two heaviest models and a softmax `t`; with exactly two models a direct `t` is the
//!   same search space without the softmax squashing).
//!
//! The configuration is produced as YAML text and parsed back with the merge module's own
//! parser, so `best.yml` is exactly what was merged in memory. Numbers are written with Rust's
//! shortest round-trip formatting, so the file parses back to the same f64 values.

use std::fmt::Write as _;
use std::path::Path;

use super::config::EvolveConfig;
use crate::merge::methods::MergeMethod;

/// A decoded genome.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The mergekit YAML configuration (model paths absolute where they exist).
    pub yaml: String,
    /// `(name, value)` of every decoded parameter, e.g. `g0.a.weight` (group 0, model `a`).
    pub params: Vec<(String, f64)>,
}

fn q(p: &Path) -> String {
    // YAML double-quoted scalar; JSON string escaping is valid YAML.
    serde_json::to_string(&p.to_string_lossy()).unwrap_or_default()
}

fn model_label(p: &Path, i: usize) -> String {
    let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let clean: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("m{i}_{clean}")
}

/// Decodes one evolved value of parameter `p`.
pub fn decode_value(p: &str, x: f64, allow_negative: bool) -> f64 {
    match p {
        "density" => x.abs().clamp(0.0, 1.0),
        "t" => x.abs().clamp(0.0, 1.0),
        _ if allow_negative => x,
        _ => x.abs(),
    }
}

/// Layer range of group `g` of `n_groups` over `n_layers` (as even as possible).
pub fn group_range(g: usize, n_groups: usize, n_layers: usize) -> (usize, usize) {
    (g * n_layers / n_groups, (g + 1) * n_layers / n_groups)
}

/// Decodes `genome` (length [`EvolveConfig::genome_len`]) for a model of `n_layers` layers.
pub fn decode(cfg: &EvolveConfig, genome: &[f64], n_layers: usize) -> Decoded {
    let mut y = String::new();
    let mut params = Vec::new();
    let _ = writeln!(y, "merge_method: {}", cfg.method.name());
    if let Some(d) = &cfg.dtype {
        let _ = writeln!(y, "dtype: {d}");
    }
    let groups = cfg.layer_groups;
    if cfg.method == MergeMethod::Slerp {
        let (a, b) = (&cfg.models[0], &cfg.models[1]);
        let _ = writeln!(y, "base_model: {}", q(a));
        let _ = writeln!(y, "slices:");
        for (g, x) in genome.iter().enumerate().take(groups) {
            let t = decode_value("t", *x, false);
            params.push((format!("g{g}.t"), t));
            let (lo, hi) = group_range(g, groups, n_layers);
            let _ = writeln!(y, "  - sources:");
            for m in [a, b] {
                let _ = writeln!(y, "      - model: {}\n        layer_range: [{lo}, {hi}]", q(m));
            }
            let _ = writeln!(y, "    parameters:\n      t: {t}");
        }
        return Decoded { yaml: y, params };
    }
    if let Some(b) = &cfg.base_model {
        let _ = writeln!(y, "base_model: {}", q(b));
    }
    let normalize =
        cfg.normalize
            .or(matches!(cfg.method, MergeMethod::Linear | MergeMethod::Ties | MergeMethod::DareTies).then_some(true));
    if let Some(n) = normalize {
        let _ = writeln!(y, "parameters:\n  normalize: {n}");
    }
    let n_models = cfg.models.len();
    let n_ev = cfg.evolve.len();
    let model_params = |g: usize, m: usize, params: &mut Vec<(String, f64)>| -> String {
        let mut s = String::from("{");
        let label = model_label(&cfg.models[m], m);
        for (k, p) in cfg.evolve.iter().enumerate() {
            let v = decode_value(p, genome[(g * n_models + m) * n_ev + k], cfg.allow_negative_weights);
            params.push((format!("g{g}.{label}.{p}"), v));
            let _ = write!(s, "{}{p}: {v}", if s.len() > 1 { ", " } else { "" });
        }
        for (p, v) in &cfg.fixed {
            let _ = write!(s, "{}{p}: {v}", if s.len() > 1 { ", " } else { "" });
        }
        s.push('}');
        s
    };
    if groups == 1 {
        let _ = writeln!(y, "models:");
        for m in 0..n_models {
            let p = model_params(0, m, &mut params);
            let _ = writeln!(y, "  - model: {}\n    parameters: {p}", q(&cfg.models[m]));
        }
    } else {
        let _ = writeln!(y, "slices:");
        for g in 0..groups {
            let (lo, hi) = group_range(g, groups, n_layers);
            let _ = writeln!(y, "  - sources:");
            for m in 0..n_models {
                let p = model_params(g, m, &mut params);
                let _ = writeln!(
                    y,
                    "      - model: {}\n        layer_range: [{lo}, {hi}]\n        parameters: {p}",
                    q(&cfg.models[m])
                );
            }
            if let Some(b) = cfg.base_model.as_ref().filter(|b| !cfg.models.contains(b)) {
                let _ = writeln!(y, "      - model: {}\n        layer_range: [{lo}, {hi}]", q(b));
            }
        }
    }
    Decoded { yaml: y, params }
}
