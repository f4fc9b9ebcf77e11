//! Token sampling over a logits row: greedy, temperature, top-k, top-p, with a seeded
//! deterministic RNG.
//!
//! Order as in llama.cpp's default sampler chain (common/sampling.cpp): top-k, then top-p on
//! the softmax of the (untempered) logits, then temperature, then a draw from the softmax of
//! what is left. Temperature ≤ 0 is greedy (argmax, lowest id among equal logits).
//!
//! RNG: SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
//! OOPSLA 2014; the constants of Vigna's public-domain `splitmix64.c`); 53-bit uniform floats.
//! The same seed and the same logits give the same tokens on every platform.

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerConfig {
    /// ≤ 0: greedy.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`; ≥ 1 keeps
    /// all.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplerConfig {
    /// llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95.
    fn default() -> Self {
        SamplerConfig { temperature: 0.8, top_k: 40, top_p: 0.95, seed: 0 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SampleError {
    #[error("cannot sample from an empty logits row")]
    Empty,
    #[error("logit {index} is NaN")]
    NaN { index: usize },
    #[error("sampling settings: {0}")]
    BadConfig(String),
}

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Argmax; the lowest index among equal maxima.
pub fn greedy(logits: &[f32]) -> Result<u32, SampleError> {
    check(logits)?;
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    Ok(best as u32)
}

fn check(logits: &[f32]) -> Result<(), SampleError> {
    if logits.is_empty() {
        return Err(SampleError::Empty);
    }
    match logits.iter().position(|l| l.is_nan()) {
        Some(index) => Err(SampleError::NaN { index }),
        None => Ok(()),
    }
}

/// A sampler: settings plus its RNG state.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Result<Self, SampleError> {
        if cfg.top_p.is_nan() || cfg.top_p <= 0.0 {
            return Err(SampleError::BadConfig(format!("top_p must be > 0, found {}", cfg.top_p)));
        }
        if cfg.temperature.is_nan() {
            return Err(SampleError::BadConfig("temperature is NaN".into()));
        }
        Ok(Sampler { cfg, rng: Rng::new(cfg.seed) })
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// The candidates left after top-k and top-p, most likely first, with their
    /// probabilities at the configured temperature (summing to 1).
    pub fn candidates(&self, logits: &[f32]) -> Result<Vec<(u32, f64)>, SampleError> {
        check(logits)?;
        let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        // Most likely first; the lower id first among equal logits (a stable order).
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.cfg.top_k > 0 {
            cand.truncate(self.cfg.top_k);
        }
        if self.cfg.top_p < 1.0 {
            let probs = softmax(&cand, 1.0);
            let mut cum = 0.0;
            let mut keep = cand.len();
            for (i, p) in probs.iter().enumerate() {
                cum += p;
                if cum >= f64::from(self.cfg.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep.max(1));
        }
        if self.cfg.temperature <= 0.0 {
            cand.truncate(1);
            return Ok(vec![(cand[0].0, 1.0)]);
        }
        let probs = softmax(&cand, self.cfg.temperature);
        Ok(cand.iter().zip(probs).map(|(&(id, _), p)| (id, p)).collect())
    }

    /// Draws one token id.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, SampleError> {
        if self.cfg.temperature <= 0.0 {
            return greedy(logits);
        }
        let cand = self.candidates(logits)?;
        let u = self.rng.next_f64();
        let mut cum = 0.0;
        for &(id, p) in &cand {
            cum += p;
            if u < cum {
                return Ok(id);
            }
        }
        // Rounding left the total a hair under 1: the last candidate.
        Ok(cand[cand.len() - 1].0)
    }
}

/// Softmax of `logits / temperature` in f64 (max subtracted; -inf logits get 0).
fn softmax(cand: &[(u32, f32)], temperature: f32) -> Vec<f64> {
    let t = f64::from(temperature);
    let max = cand.iter().map(|c| f64::from(c.1)).fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        // All -inf: uniform.
        return vec![1.0 / cand.len() as f64; cand.len()];
    }
    let e: Vec<f64> = cand.iter().map(|c| ((f64::from(c.1) - max) / t).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> SamplerConfig {
        SamplerConfig { temperature, top_k, top_p, seed }
    }

    #[test]
    fn greedy_is_argmax_with_lowest_id_on_ties() {
        assert_eq!(greedy(&[0.1, 3.0, -1.0, 3.0]).unwrap(), 1);
        assert_eq!(greedy(&[]), Err(SampleError::Empty));
        assert_eq!(greedy(&[0.0, f32::NAN]), Err(SampleError::NaN { index: 1 }));
    }

    #[test]
    fn top_k_one_equals_greedy() {
        let mut rng = Rng::new(5);
        for seed in 0..50 {
            let logits: Vec<f32> = (0..100).map(|_| (rng.next_f64() * 10.0) as f32).collect();
            let mut s = Sampler::new(cfg(1.5, 1, 1.0, seed)).unwrap();
            assert_eq!(s.sample(&logits).unwrap(), greedy(&logits).unwrap());
        }
        let mut s = Sampler::new(cfg(0.0, 0, 1.0, 1)).unwrap();
        assert_eq!(s.sample(&[1.0, 2.0, 0.5]).unwrap(), 1);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // softmax of ln(p) is p.
        let logits: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
        let ids = |p: f32| -> Vec<u32> {
            Sampler::new(cfg(1.0, 0, p, 0)).unwrap().candidates(&logits).unwrap().iter().map(|c| c.0).collect()
        };
        assert_eq!(ids(0.49), [0]); // the top token alone reaches it
        assert_eq!(ids(0.51), [0, 1]);
        assert_eq!(ids(0.79), [0, 1]);
        assert_eq!(ids(0.81), [0, 1, 2]);
        assert_eq!(ids(0.0001), [0]); // at least one token
        assert_eq!(ids(1.0), [0, 1, 2, 3]);
        let probs = Sampler::new(cfg(1.0, 0, 0.79, 0)).unwrap().candidates(&logits).unwrap();
        assert!((probs[0].1 - 0.625).abs() < 1e-6, "renormalized: {probs:?}");
        assert!(Sampler::new(cfg(1.0, 0, 0.0, 0)).is_err());
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |seed| {
            let mut s = Sampler::new(cfg(1.0, 0, 1.0, seed)).unwrap();
            (0..64).map(|_| s.sample(&logits).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn draws_follow_the_distribution() {
        let probs = [0.5f64, 0.25, 0.125, 0.125];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln() as f32).collect();
        let mut s = Sampler::new(cfg(1.0, 0, 1.0, 7)).unwrap();
        let n = 40_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[s.sample(&logits).unwrap() as usize] += 1;
        }
        for (c, p) in counts.iter().zip(probs) {
            let f = *c as f64 / n as f64;
            // 5 sigma of a binomial proportion at n = 40000 is below 0.0125.
            assert!((f - p).abs() < 0.0125, "{counts:?}");
        }
        // Temperature sharpens: at 0.5 the top token's probability is 0.5² / Σ p² = 0.64…
        let c = Sampler::new(cfg(0.5, 0, 1.0, 0)).unwrap().candidates(&logits).unwrap();
        let want = 0.25 / (0.25 + 0.0625 + 2.0 * 0.015625);
        assert!((c[0].1 - want).abs() < 1e-6, "{c:?}");
    }
}
