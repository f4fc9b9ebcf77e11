//! Sparsification of task vectors: which elements to keep (masks), and the masked vector
//! with its rescale. mergekit `mergekit/sparsify.py`:
//! - `magnitude` (TIES): keep the k = max(1, ⌊density·n⌋) largest |x|;
//! - `magnitude_outliers` (breadcrumbs): drop the ⌊gamma·n⌋ largest and the smallest to keep
//!   ⌊density·n⌋ ([`outlier_range`]);
//! - `bernoulli` (DARE): keep each element with probability density ([`random_mask`]);
//! - `della_magprune` (DELLA): keep with a probability rising linearly with the element's
//!   magnitude rank in its row, from density−ε to density+ε ([`della_probabilities`]);
//! - `rescaled_masked_tensor` with `RescaleNorm.l1` (mergekit's `rescale: true`): the masked
//!   vector times ‖x‖₁/‖masked‖₁, unless either norm is below 1e-7. The legacy convention
//!   (older mergekit, the DARE/DELLA papers) divides by the keep probability instead.
//!
//! Ties in magnitude are broken by position (lower index ranks lower), a deterministic choice
//! where torch's argsort leaves the order unspecified.

use rayon::prelude::*;

use crate::sample::Rng;

/// Elements per random stream: each chunk draws from its own seeded stream, so masks are the
/// same whatever the number of threads.
pub const RNG_CHUNK: usize = 1 << 16;

/// mergekit's `rescaled_masked_tensor` eps.
const RESCALE_EPS: f64 = 1e-7;

/// A seed for stream `stream` derived from `seed` (SplitMix64 of the mix).
pub fn stream_seed(seed: u64, stream: u64) -> u64 {
    Rng::new(seed ^ stream.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// |x| as ordered bits: for a float with the sign bit cleared, the bit pattern orders like the
/// value (NaN above +inf, as `f32::total_cmp`), and integer comparisons are cheaper.
#[inline]
fn mag_bits(v: f32) -> u32 {
    v.to_bits() & 0x7FFF_FFFF
}

/// Keep-mask of the elements whose ascending rank by |x| lies in `lo..hi` (ties: lower index
/// ranks lower). `select_nth_unstable` passes and linear passes, no full sort.
pub fn rank_range_mask(x: &[f32], lo: usize, hi: usize) -> Vec<bool> {
    let n = x.len();
    let hi = hi.min(n);
    if lo >= hi {
        return vec![false; n];
    }
    if lo == 0 && hi == n {
        return vec![true; n];
    }
    let mut mags: Vec<u32> = x.par_iter().map(|&v| mag_bits(v)).collect();
    let (_, vlo, rest) = mags.select_nth_unstable(lo);
    let vlo = *vlo;
    let vhi = if hi - 1 == lo {
        vlo
    } else if hi == n {
        *rest.iter().max().expect("hi - 1 > lo, so rest is not empty")
    } else {
        *rest.select_nth_unstable(hi - 2 - lo).1
    };
    drop(mags);
    let count_below = |v: u32| x.par_iter().filter(|&&a| mag_bits(a) < v).count();
    let (below_lo, below_hi) = (count_below(vlo), count_below(vhi));
    let (mut seen_lo, mut seen_hi) = (0usize, 0usize);
    x.iter()
        .map(|&v| {
            let a = mag_bits(v);
            if a < vlo || a > vhi {
                false
            } else if a == vlo {
                let r = below_lo + seen_lo;
                seen_lo += 1;
                r >= lo && r < hi
            } else if a == vhi {
                let r = below_hi + seen_hi;
                seen_hi += 1;
                r < hi
            } else {
                true
            }
        })
        .collect()
}

/// `magnitude`: the number of elements kept, k = max(1, ⌊density·n⌋) (mergekit ≥ 0.1.5
/// `magnitude`; density ≤ 0 zeroes the task vector, handled by the caller).
pub fn magnitude_keep(n: usize, density: f64) -> usize {
    ((density * n as f64).max(0.0) as usize).clamp(1, n.max(1))
}

/// `magnitude_outliers`: the ascending-rank range kept. mergekit ≥ 0.1.5: target = ⌊density·n⌋,
/// n_top = ⌊gamma·n⌋, n_bot = max(0, n − target − n_top), kept `indices[n_bot : n_bot + target]`
/// (older mergekit sliced `[n_bot:-n_top]`, which kept nothing when n_top = 0).
pub fn outlier_range(n: usize, density: f64, gamma: f64) -> (usize, usize) {
    let target = ((density * n as f64).max(0.0) as usize).min(n);
    let n_top = (gamma * n as f64).max(0.0) as usize;
    let n_bot = n.saturating_sub(target).saturating_sub(n_top);
    (n_bot, n_bot + target)
}

/// DELLA keep probabilities: per row along axis 1 (mergekit ranks along `dim=1`; a 1-D tensor
/// is one row), p = (density − ε) + 2ε·(rank−1)/(len−1), rank 1 the smallest |x|. A row of one
/// element (mergekit: 0/0) gets rank_norm 0.
pub fn della_probabilities(x: &[f32], shape: &[usize], density: f64, epsilon: f64) -> Vec<f32> {
    let n = x.len();
    let (len, inner) = if shape.len() < 2 { (n, 1) } else { (shape[1], shape[2..].iter().product::<usize>()) };
    let mut probs = vec![0f32; n];
    if n == 0 || len == 0 || inner == 0 {
        return probs;
    }
    let block = len * inner;
    assert!(len < (1 << 32), "row of {len} elements"); // the sort key packs the position in 32 bits
    probs.par_chunks_mut(block).zip(x.par_chunks(block)).for_each(|(p, xs)| {
        // (|x| bits, position) packed in a u64: an unstable sort of integers gives the
        // ascending magnitude order with ties by position.
        let mut keys: Vec<u64> = Vec::with_capacity(len);
        for r in 0..inner {
            keys.clear();
            keys.extend((0..len).map(|k| ((mag_bits(xs[k * inner + r]) as u64) << 32) | k as u64));
            keys.sort_unstable();
            for (pos, &key) in keys.iter().enumerate() {
                let k = (key & 0xFFFF_FFFF) as usize;
                let rank_norm = if len > 1 { pos as f64 / (len - 1) as f64 } else { 0.0 };
                p[k * inner + r] = ((density - epsilon) + rank_norm * 2.0 * epsilon) as f32;
            }
        }
    });
    probs
}

/// Bernoulli keep-mask: element i kept when a uniform draw in [0, 1) is below `p(i)`.
pub fn bernoulli_mask(n: usize, seed: u64, p: impl Fn(usize) -> f64 + Sync) -> Vec<bool> {
    let mut mask = vec![false; n];
    mask.par_chunks_mut(RNG_CHUNK).enumerate().for_each(|(c, m)| {
        let mut rng = Rng::new(stream_seed(seed, c as u64));
        let start = c * RNG_CHUNK;
        for (k, m) in m.iter_mut().enumerate() {
            *m = rng.next_f64() < p(start + k);
        }
    });
    mask
}

/// DARE's mask: each element kept with probability `density`.
pub fn random_mask(n: usize, density: f64, seed: u64) -> Vec<bool> {
    bernoulli_mask(n, seed, |_| density)
}

/// How a masked task vector is rescaled.
#[derive(Clone, Copy, Debug)]
pub enum Rescale<'a> {
    None,
    /// mergekit's `RescaleNorm.l1`.
    L1,
    /// Legacy DARE: divide by the density.
    Density(f64),
    /// Legacy DELLA: divide each element by its keep probability.
    Probs(&'a [f32]),
}

/// The masked (and rescaled) task vector, rounded to f32 like mergekit's f32 tensors.
pub fn apply_mask(x: &[f32], mask: &[bool], rescale: Rescale) -> Vec<f32> {
    let mut out = x.to_vec();
    apply_mask_in_place(&mut out, mask, rescale);
    out
}

/// [`apply_mask`] overwriting the task vector (no second tensor-sized buffer).
pub fn apply_mask_in_place(x: &mut [f32], mask: &[bool], rescale: Rescale) {
    let scale = match rescale {
        Rescale::L1 => {
            let (before, after) = x
                .par_chunks(RNG_CHUNK)
                .zip(mask.par_chunks(RNG_CHUNK))
                .map(|(x, m)| {
                    // four independent accumulators: the sums are latency-bound otherwise.
                    let (mut b, mut a) = ([0f64; 4], [0f64; 4]);
                    let (xc, mc) = (x.chunks_exact(4), m.chunks_exact(4));
                    let (xr, mr) = (xc.remainder(), mc.remainder());
                    for (x4, m4) in xc.zip(mc) {
                        for l in 0..4 {
                            let v = (x4[l] as f64).abs();
                            b[l] += v;
                            a[l] += if m4[l] { v } else { 0.0 };
                        }
                    }
                    for (&v, &k) in xr.iter().zip(mr) {
                        let v = (v as f64).abs();
                        b[0] += v;
                        a[0] += if k { v } else { 0.0 };
                    }
                    (b.iter().sum::<f64>(), a.iter().sum::<f64>())
                })
                .reduce(|| (0.0, 0.0), |u, v| (u.0 + v.0, u.1 + v.1));
            if before < RESCALE_EPS || after < RESCALE_EPS {
                1.0
            } else {
                before / after
            }
        }
        Rescale::Density(d) => 1.0 / d,
        Rescale::None | Rescale::Probs(_) => 1.0,
    };
    x.par_chunks_mut(RNG_CHUNK).zip(mask.par_chunks(RNG_CHUNK)).enumerate().for_each(|(c, (x, m))| match rescale {
        Rescale::Probs(p) => {
            let p = &p[c * RNG_CHUNK..];
            for ((v, &k), &p) in x.iter_mut().zip(m).zip(p) {
                *v = if k { (*v as f64 / p as f64) as f32 } else { 0.0 };
            }
        }
        _ if scale == 1.0 => {
            for (v, &k) in x.iter_mut().zip(m) {
                if !k {
                    *v = 0.0;
                }
            }
        }
        _ => {
            for (v, &k) in x.iter_mut().zip(m) {
                *v = if k { (*v as f64 * scale) as f32 } else { 0.0 };
            }
        }
    });
}
