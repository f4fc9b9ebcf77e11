//! The `merge --evolve` test landscape on the tiny llama fixture: models A = W + δ and
//! B = W − δ (δ seeded noise) whose linear merge is W + r·δ, a text to score perplexity on,
//! and an EVOLVE.yml over them; the comparison of two runs' outputs (used by evolve_search.rs,
//! evolve_worker.rs and evolve_ray.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use llmtool::evolve::SearchState;

use super::root;
use super::variant::{read_st_f32 as read_st, write_st_f32 as write_st};

/// Writes W + sign·δ as an HF dir (δ uniform in ±amp·|scale| per tensor, seeded; δ is the
/// same for both signs).
pub fn plus_minus(dir: &Path, name: &str, sign: f32, amp: f32) -> PathBuf {
    let src = root().join("fixtures/models/llama");
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "config.json"] {
        std::fs::copy(src.join(f), out.join(f)).unwrap();
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        ((rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut t = read_st(&src.join("model.safetensors"));
    for (_, (_, d)) in t.iter_mut() {
        let scale = (d.iter().map(|x| x * x).sum::<f32>() / d.len() as f32).sqrt();
        for x in d.iter_mut() {
            *x += sign * amp * scale * next();
        }
    }
    write_st(&out.join("model.safetensors"), &t);
    out
}

pub const TEXT: &str = "The quick brown fox jumps over the lazy dog. A merge of two models can be searched \
for by an evolution strategy, which asks for candidates, scores them, and moves its sampling \
distribution toward the better ones. Each candidate here is a linear merge of two models.\n";

pub struct Setup {
    pub _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

pub fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    plus_minus(&dir, "a", 1.0, 0.6);
    plus_minus(&dir, "b", -1.0, 0.6);
    std::fs::write(dir.join("text.txt"), TEXT.repeat(8)).unwrap();
    Setup { _tmp: tmp, dir }
}

pub fn yaml(max_evals: u64) -> String {
    format!(
        "merge_method: linear\nmodels: [a, b]\nfitness:\n  perplexity: [{{file: text.txt}}]\neval: {{ctx: 64, chunks: 2}}\n\
         search: {{max_evals: {max_evals}, population: 6, sigma: 0.3, seed: 7}}\n"
    )
}

pub fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// history.csv without its timing column.
pub fn history_without_seconds(dir: &Path) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    csv.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

pub fn state_of(dir: &Path) -> SearchState {
    serde_json::from_slice(&std::fs::read(dir.join("checkpoint.json")).unwrap()).unwrap()
}

pub fn assert_same_run(a: &Path, b: &Path) {
    for f in ["best.yml", "best.gguf", "fitness.svg"] {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{f} differs");
    }
    assert_eq!(history_without_seconds(a), history_without_seconds(b));
    let (sa, sb) = (state_of(a), state_of(b));
    assert_eq!(serde_json::to_string(&sa.cmaes).unwrap(), serde_json::to_string(&sb.cmaes).unwrap());
    assert_eq!(sa.history.len(), sb.history.len());
    for (x, y) in sa.history.iter().zip(&sb.history) {
        assert_eq!(bits(&x.genome), bits(&y.genome));
        assert_eq!(x.score.fitness.to_bits(), y.score.fitness.to_bits());
        assert_eq!(x.params, y.params);
    }
}
