//! The standard (μ/μ_w, λ)-CMA-ES with an ask/tell interface, after N. Hansen, "The CMA
//! Evolution Strategy: A Tutorial" (arXiv:1604.00772), Appendix A / Table 1 (default
//! parameters, positive recombination weights), minimizing.
//!
//! Per generation: x_k = m + σ·B·D·z_k (z_k ~ N(0, I)); the μ best steps y_i = (x_i:λ − m)/σ
//! update the mean m += σ·Σ w_i y_i, the conjugate evolution path p_σ (step-size control,
//! cumulative step-size adaptation), the path p_c with the stall indicator h_σ, and the
//! covariance by the rank-one (c_1·p_c p_cᵀ) and rank-μ (c_μ·Σ w_i y_i y_iᵀ) updates. B and D
//! come from an eigendecomposition of C (cyclic Jacobi, [`jacobi_eigen`]), refreshed lazily
//! every λ/(c_1 + c_μ)/n/10 generations as the tutorial suggests.
//!
//! Bounds: none here; the caller clamps or maps a genome when decoding it (as
//! mergekit-evolve does), which keeps the sampling distribution the tutorial's.
//!
//! Determinism: the random numbers come from [`Rng`] (xoshiro256**), whose state is part of
//! the serialized [`Cmaes`]; every float of the state is serialized as Rust's shortest
//! round-trip decimal string, so a checkpoint restored from any serde format continues
//! bit-for-bit like the uninterrupted run.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CmaesError {
    #[error("dimension must be at least 1 (the initial mean is empty)")]
    EmptyMean,
    #[error("initial mean[{index}] = {value} is not finite")]
    BadMean { index: usize, value: f64 },
    #[error("sigma0 must be finite and > 0, found {0}")]
    BadSigma(f64),
    #[error("population size (lambda) must be at least 2, found {0}")]
    BadLambda(usize),
    #[error("tell() without a pending ask(): call ask() first")]
    NotAsked,
    #[error("tell() got {found} fitness values, expected {expected} (lambda)")]
    FitnessCount { expected: usize, found: usize },
    #[error("fitness of candidate {index} is NaN (use +inf for a failed candidate)")]
    NanFitness { index: usize },
}

/// Settings of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CmaesOptions {
    /// Initial step size (the tutorial's σ⁽⁰⁾): about a quarter of the search range.
    pub sigma0: f64,
    /// Population size λ (default 4 + ⌊3 ln n⌋).
    pub lambda: Option<usize>,
    pub seed: u64,
    /// Stop when the best fitness of the recent generations and the current generation's
    /// fitness values all lie within this range.
    pub tol_fun: f64,
    /// Stop when every coordinate's standard deviation σ·√C_ii and σ·p_c,i is below this.
    pub tol_x: f64,
}

impl Default for CmaesOptions {
    fn default() -> Self {
        CmaesOptions { sigma0: 0.3, lambda: None, seed: 0, tol_fun: 1e-12, tol_x: 1e-11 }
    }
}

/// Why [`Cmaes::stop`] says to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    TolFun,
    TolX,
    /// The covariance's condition number exceeded 1e14.
    ConditionCov,
}

/// Exact (de)serialization of floats as shortest round-trip strings ("0.1", "1e-300", "inf").
pub mod exact {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| D::Error::custom(format!("expected a float string, found {s:?}")))
    }

    pub mod vec {
        use super::*;
        use serde::ser::SerializeSeq;

        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for x in v {
                seq.serialize_element(&format!("{x:?}"))?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            let v = Vec::<String>::deserialize(d)?;
            v.iter()
                .map(|s| s.parse().map_err(|_| D::Error::custom(format!("expected a float string, found {s:?}"))))
                .collect()
        }
    }

    pub mod vecvec {
        use super::*;

        #[derive(serde::Serialize, serde::Deserialize)]
        struct Row(#[serde(with = "super::vec")] Vec<f64>);

        pub fn serialize<S: Serializer>(v: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|r| Row(r.clone())))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
            Ok(Vec::<Row>::deserialize(d)?.into_iter().map(|r| r.0).collect())
        }
    }

    pub mod opt_vec {
        use super::*;

        #[derive(serde::Serialize, serde::Deserialize)]
        struct Best(#[serde(with = "super::vec")] Vec<f64>, #[serde(with = "super")] f64);

        pub fn serialize<S: Serializer>(v: &Option<(Vec<f64>, f64)>, s: S) -> Result<S::Ok, S::Error> {
            serde::Serialize::serialize(&v.as_ref().map(|(x, f)| Best(x.clone(), *f)), s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(Vec<f64>, f64)>, D::Error> {
            Ok(Option::<Best>::deserialize(d)?.map(|b| (b.0, b.1)))
        }
    }
}

/// xoshiro256** (Blackman & Vigna, https://prng.di.unimi.it/xoshiro256starstar.c) seeded
/// by splitmix64; normal deviates by the Box–Muller transform (both of each pair used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
    #[serde(with = "exact::vec")]
    spare: Vec<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng { s: [next(), next(), next(), next()], spare: Vec::new() }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let r = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }

    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.pop() {
            return z;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        self.spare.push(r * th.sin());
        r * th.cos()
    }
}

/// Eigen-decomposition of a symmetric `n × n` matrix (row-major) by cyclic Jacobi rotations:
/// returns (eigenvalues, eigenvectors as the columns of a row-major matrix). Accurate to
/// rounding for the small, dense covariance matrices of a search (n up to a few hundred).
pub fn jacobi_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|p| (p + 1..n).map(move |q| (p, q))).map(|(p, q)| a[p * n + q].powi(2)).sum();
        if off <= scale * 1e-32 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // Rotation zeroing a[p][q] (the smaller root t of t² + 2θt − 1 = 0).
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// A CMA-ES run: strategy parameters, the distribution, and the random state. Serialize it
/// (serde) after [`Cmaes::tell`] to checkpoint; a restored one continues identically.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cmaes {
    n: usize,
    lambda: usize,
    mu: usize,
    #[serde(with = "exact::vec")]
    weights: Vec<f64>,
    #[serde(with = "exact")]
    mueff: f64,
    #[serde(with = "exact")]
    cc: f64,
    #[serde(with = "exact")]
    cs: f64,
    #[serde(with = "exact")]
    c1: f64,
    #[serde(with = "exact")]
    cmu: f64,
    #[serde(with = "exact")]
    damps: f64,
    #[serde(with = "exact")]
    chi_n: f64,
    #[serde(with = "exact")]
    tol_fun: f64,
    #[serde(with = "exact")]
    tol_x: f64,

    #[serde(with = "exact::vec")]
    mean: Vec<f64>,
    #[serde(with = "exact")]
    sigma: f64,
    #[serde(with = "exact::vec")]
    pc: Vec<f64>,
    #[serde(with = "exact::vec")]
    ps: Vec<f64>,
    /// Covariance, row-major n × n.
    #[serde(with = "exact::vec")]
    c: Vec<f64>,
    /// Eigenvectors of C (columns), row-major.
    #[serde(with = "exact::vec")]
    b: Vec<f64>,
    /// Square roots of C's eigenvalues.
    #[serde(with = "exact::vec")]
    d: Vec<f64>,
    generation: u64,
    evaluations: u64,
    /// `evaluations` when B and D were last computed.
    eigen_at: u64,
    rng: Rng,
    /// Candidates handed out by `ask` and not yet told.
    #[serde(with = "exact::vecvec")]
    pending: Vec<Vec<f64>>,
    #[serde(with = "exact::opt_vec")]
    best: Option<(Vec<f64>, f64)>,
    /// Best fitness of each recent generation (for TolFun).
    #[serde(with = "exact::vec")]
    recent_best: Vec<f64>,
    #[serde(with = "exact::vec")]
    last_fitness: Vec<f64>,
}

impl Cmaes {
    /// A run starting at `mean0` (the tutorial's m⁽⁰⁾) with C = I.
    pub fn new(mean0: Vec<f64>, opts: &CmaesOptions) -> Result<Cmaes, CmaesError> {
        let n = mean0.len();
        if n == 0 {
            return Err(CmaesError::EmptyMean);
        }
        if let Some((index, &value)) = mean0.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(CmaesError::BadMean { index, value });
        }
        if !(opts.sigma0.is_finite() && opts.sigma0 > 0.0) {
            return Err(CmaesError::BadSigma(opts.sigma0));
        }
        let nf = n as f64;
        // Tutorial Table 1 (eqs. 49–58, positive weights only).
        let lambda = opts.lambda.unwrap_or(4 + (3.0 * nf.ln()).floor() as usize);
        if lambda < 2 {
            return Err(CmaesError::BadLambda(lambda));
        }
        let mu = lambda / 2;
        let raw: Vec<f64> = (1..=mu).map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - (i as f64).ln()).collect();
        let sum: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
        let mueff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);
        let cs = (mueff + 2.0) / (nf + mueff + 5.0);
        let c1 = 2.0 / ((nf + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((nf + 2.0).powi(2) + mueff));
        let damps = 1.0 + 2.0 * (((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let mut eye = vec![0.0; n * n];
        for i in 0..n {
            eye[i * n + i] = 1.0;
        }
        Ok(Cmaes {
            n,
            lambda,
            mu,
            weights,
            mueff,
            cc,
            cs,
            c1,
            cmu,
            damps,
            chi_n,
            tol_fun: opts.tol_fun,
            tol_x: opts.tol_x,
            mean: mean0,
            sigma: opts.sigma0,
            pc: vec![0.0; n],
            ps: vec![0.0; n],
            c: eye.clone(),
            b: eye,
            d: vec![1.0; n],
            generation: 0,
            evaluations: 0,
            eigen_at: 0,
            rng: Rng::new(opts.seed),
            pending: Vec::new(),
            best: None,
            recent_best: Vec::new(),
            last_fitness: Vec::new(),
        })
    }

    pub fn dim(&self) -> usize {
        self.n
    }
    pub fn lambda(&self) -> usize {
        self.lambda
    }
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
    /// Generations told so far.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Fitness values told so far.
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }
    /// The best candidate told so far and its fitness.
    pub fn best(&self) -> Option<(&[f64], f64)> {
        self.best.as_ref().map(|(x, f)| (x.as_slice(), *f))
    }
    /// The candidates of the last [`Self::ask`] not yet told (empty between generations).
    pub fn pending(&self) -> &[Vec<f64>] {
        &self.pending
    }
    /// The covariance matrix C (row-major n × n; the distribution is N(m, σ²C)).
    pub fn covariance(&self) -> &[f64] {
        &self.c
    }

    /// The next λ candidates. Asking again before [`Self::tell`] returns the same ones (so a
    /// run restored from a checkpoint taken between ask and tell re-evaluates them).
    pub fn ask(&mut self) -> Vec<Vec<f64>> {
        if self.pending.is_empty() {
            let n = self.n;
            self.pending = (0..self.lambda)
                .map(|_| {
                    let z: Vec<f64> = (0..n).map(|_| self.rng.normal()).collect();
                    // x = m + σ · B · (D ⊙ z)
                    (0..n)
                        .map(|i| {
                            let y: f64 = (0..n).map(|j| self.b[i * n + j] * self.d[j] * z[j]).sum();
                            self.mean[i] + self.sigma * y
                        })
                        .collect()
                })
                .collect();
        }
        self.pending.clone()
    }

    /// Updates the distribution from the fitness (to minimize) of the asked candidates, in
    /// the order `ask` returned them. +inf marks a failed candidate; NaN is refused.
    pub fn tell(&mut self, fitness: &[f64]) -> Result<(), CmaesError> {
        if self.pending.is_empty() {
            return Err(CmaesError::NotAsked);
        }
        if fitness.len() != self.lambda {
            return Err(CmaesError::FitnessCount { expected: self.lambda, found: fitness.len() });
        }
        if let Some(index) = fitness.iter().position(|f| f.is_nan()) {
            return Err(CmaesError::NanFitness { index });
        }
        let xs = std::mem::take(&mut self.pending);
        let n = self.n;
        let mut order: Vec<usize> = (0..self.lambda).collect();
        order.sort_by(|&a, &b| fitness[a].total_cmp(&fitness[b]));
        self.evaluations += self.lambda as u64;
        self.generation += 1;
        let top = order[0];
        if self.best.as_ref().is_none_or(|(_, f)| fitness[top] < *f) {
            self.best = Some((xs[top].clone(), fitness[top]));
        }

        let old = self.mean.clone();
        // Selected steps y_i = (x_i:λ − m)/σ and the weighted mean step.
        let ys: Vec<Vec<f64>> =
            order[..self.mu].iter().map(|&k| (0..n).map(|i| (xs[k][i] - old[i]) / self.sigma).collect()).collect();
        let yw: Vec<f64> = (0..n).map(|i| self.weights.iter().zip(&ys).map(|(w, y)| w * y[i]).sum()).collect();
        for i in 0..n {
            self.mean[i] = old[i] + self.sigma * yw[i];
        }

        // p_σ ← (1 − c_σ) p_σ + √(c_σ(2 − c_σ) μ_eff) · C^{-1/2} y_w,  C^{-1/2} = B D⁻¹ Bᵀ
        let bty: Vec<f64> =
            (0..n).map(|j| (0..n).map(|i| self.b[i * n + j] * yw[i]).sum::<f64>() / self.d[j]).collect();
        let k_s = (self.cs * (2.0 - self.cs) * self.mueff).sqrt();
        for i in 0..n {
            let cy: f64 = (0..n).map(|j| self.b[i * n + j] * bty[j]).sum();
            self.ps[i] = (1.0 - self.cs) * self.ps[i] + k_s * cy;
        }
        let ps_norm = self.ps.iter().map(|v| v * v).sum::<f64>().sqrt();
        // h_σ: stall the p_c update while ‖p_σ‖ is large (eq. 45's indicator).
        let g = self.generation as f64;
        let hsig = ps_norm / (1.0 - (1.0 - self.cs).powf(2.0 * g)).sqrt() / self.chi_n < 1.4 + 2.0 / (n as f64 + 1.0);
        let k_c = (self.cc * (2.0 - self.cc) * self.mueff).sqrt();
        for (p, y) in self.pc.iter_mut().zip(&yw) {
            *p = (1.0 - self.cc) * *p + if hsig { k_c * y } else { 0.0 };
        }

        // C ← (1 + c_1 δ(h_σ) − c_1 − c_μ Σw) C + c_1 p_c p_cᵀ + c_μ Σ w_i y_i y_iᵀ
        let delta = if hsig { 0.0 } else { self.cc * (2.0 - self.cc) };
        let keep = 1.0 + self.c1 * delta - self.c1 - self.cmu; // Σw = 1
        for i in 0..n {
            for j in 0..=i {
                let rank_mu: f64 = self.weights.iter().zip(&ys).map(|(w, y)| w * y[i] * y[j]).sum();
                let v = keep * self.c[i * n + j] + self.c1 * self.pc[i] * self.pc[j] + self.cmu * rank_mu;
                self.c[i * n + j] = v;
                self.c[j * n + i] = v;
            }
        }

        // σ ← σ · exp((c_σ/d_σ)(‖p_σ‖/E‖N(0,I)‖ − 1)), the exponent capped at 1 for safety.
        self.sigma *= ((self.cs / self.damps) * (ps_norm / self.chi_n - 1.0)).min(1.0).exp();

        if (self.evaluations - self.eigen_at) as f64 > self.lambda as f64 / (self.c1 + self.cmu) / n as f64 / 10.0 {
            self.update_eigen();
        }

        self.recent_best.push(fitness[top]);
        let keep_hist = 10 + (30.0 * n as f64 / self.lambda as f64).ceil() as usize;
        if self.recent_best.len() > keep_hist {
            self.recent_best.remove(0);
        }
        self.last_fitness = fitness.to_vec();
        Ok(())
    }

    fn update_eigen(&mut self) {
        self.eigen_at = self.evaluations;
        let (vals, vecs) = jacobi_eigen(&self.c, self.n);
        self.b = vecs;
        self.d = vals.iter().map(|&v| v.max(1e-300).sqrt()).collect();
    }

    /// A reason to stop (the tutorial's TolFun, TolX, ConditionCov), if any holds.
    pub fn stop(&self) -> Option<StopReason> {
        let n = self.n;
        if self.generation == 0 {
            return None;
        }
        let range = |v: &[f64]| {
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max) - v.iter().copied().fold(f64::INFINITY, f64::min)
        };
        let full_hist = self.recent_best.len() >= 10 + (30.0 * n as f64 / self.lambda as f64).ceil() as usize;
        if full_hist && range(&self.recent_best) < self.tol_fun && range(&self.last_fitness) < self.tol_fun {
            return Some(StopReason::TolFun);
        }
        if (0..n)
            .all(|i| self.sigma * self.c[i * n + i].sqrt() < self.tol_x && self.sigma * self.pc[i].abs() < self.tol_x)
        {
            return Some(StopReason::TolX);
        }
        let dmax = self.d.iter().copied().fold(0.0, f64::max);
        let dmin = self.d.iter().copied().fold(f64::INFINITY, f64::min);
        if (dmax / dmin).powi(2) > 1e14 {
            return Some(StopReason::ConditionCov);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_reconstructs_a_symmetric_matrix() {
        let n = 6;
        let mut rng = Rng::new(7);
        let m: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        // A = M Mᵀ + diag: symmetric positive definite.
        let a: Vec<f64> = (0..n * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum::<f64>() + if i == j { 0.5 } else { 0.0 }
            })
            .collect();
        let (vals, v) = jacobi_eigen(&a, n);
        for i in 0..n {
            for j in 0..n {
                let rec: f64 = (0..n).map(|k| v[i * n + k] * vals[k] * v[j * n + k]).sum();
                assert!((rec - a[i * n + j]).abs() < 1e-10, "A[{i}][{j}]");
                let dot: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12, "VᵀV[{i}][{j}]");
            }
        }
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut vals, _) = jacobi_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        vals.sort_by(f64::total_cmp);
        assert!((vals[0] - 1.0).abs() < 1e-15 && (vals[1] - 3.0).abs() < 1e-15, "{vals:?}");
    }

    #[test]
    fn normal_deviates_have_unit_moments() {
        let mut rng = Rng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // 5 standard errors: 5/√n ≈ 0.011 for the mean, 5·√(2/n) ≈ 0.016 for the variance.
        assert!(mean.abs() < 0.011 && (var - 1.0).abs() < 0.016, "mean {mean} var {var}");
    }

    #[test]
    fn default_parameters_match_the_tutorial() {
        // n = 10: λ = 4 + ⌊3 ln 10⌋ = 10, μ = 5; the weights sum to 1 and decrease.
        let es = Cmaes::new(vec![0.0; 10], &CmaesOptions::default()).unwrap();
        assert_eq!((es.lambda, es.mu), (10, 5));
        assert!((es.weights.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!(es.weights.windows(2).all(|w| w[0] > w[1]));
        // μ_eff ∈ [1, μ]; c_1 + c_μ ≤ 1; d_σ ≈ 1 + c_σ for small μ_eff.
        assert!(es.mueff > 1.0 && es.mueff < 5.0);
        assert!(es.c1 + es.cmu <= 1.0);
        assert!((es.chi_n - 10f64.sqrt() * (1.0 - 1.0 / 40.0 + 1.0 / 2100.0)).abs() < 1e-15);
    }

    #[test]
    fn bad_settings_and_calls_are_errors() {
        let o = CmaesOptions::default();
        assert_eq!(Cmaes::new(vec![], &o).unwrap_err(), CmaesError::EmptyMean);
        assert!(matches!(Cmaes::new(vec![f64::NAN], &o), Err(CmaesError::BadMean { index: 0, .. })));
        assert_eq!(
            Cmaes::new(vec![0.0], &CmaesOptions { sigma0: 0.0, ..o.clone() }).unwrap_err(),
            CmaesError::BadSigma(0.0)
        );
        assert_eq!(
            Cmaes::new(vec![0.0], &CmaesOptions { lambda: Some(1), ..o.clone() }).unwrap_err(),
            CmaesError::BadLambda(1)
        );
        let mut es = Cmaes::new(vec![0.0; 3], &o).unwrap();
        assert_eq!(es.tell(&[0.0; 7]).unwrap_err(), CmaesError::NotAsked);
        let xs = es.ask();
        assert_eq!(xs, es.ask(), "ask twice before tell gives the same candidates");
        assert_eq!(es.tell(&[0.0; 2]).unwrap_err(), CmaesError::FitnessCount { expected: 7, found: 2 });
        let mut f = vec![1.0; 7];
        f[3] = f64::NAN;
        assert_eq!(es.tell(&f).unwrap_err(), CmaesError::NanFitness { index: 3 });
        f[3] = f64::INFINITY;
        es.tell(&f).unwrap();
        assert_eq!((es.generation(), es.evaluations()), (1, 7));
    }
}
