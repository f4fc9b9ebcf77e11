//! torch's CPU random numbers for `torch.manual_seed(s)` followed by `torch.randn(shape)` /
//! `torch.rand(shape)` on a float32 tensor, so that mergekit-moe's `random` and
//! `uniform_random` gates (`mergekit/moe/router.py`, `get_gate_params`) can be reproduced.
//!
//! Sources (PyTorch): `at::mt19937` (ATen/core/MT19937RNGEngine.h: the standard MT19937,
//! seeded with `init_with_uint32(seed)`: `state[0] = seed & 0xffffffff`,
//! `state[j] = 1812433253 * (state[j-1] ^ (state[j-1] >> 30)) + j`);
//! `uniform_real_distribution<float>` (ATen/core/DistributionsHelper.h,
//! TransformationHelper.h `uniform_real`: `(random() & (2^24 - 1)) * 2^-24`);
//! `normal_fill` / `normal_fill_16` (ATen/native/cpu/DistributionTemplates.h: all values
//! uniform first, then Box-Muller on each block of 16 with `u1 = 1 - data[j]`,
//! `u2 = data[j + 8]`, the last 16 recomputed from fresh uniforms when the size is not a
//! multiple of 16; used for float tensors of 16 or more elements).

/// MT19937 as `at::mt19937`.
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; 624];
        state[0] = (seed & 0xffff_ffff) as u32;
        for j in 1..624 {
            state[j] = 1_812_433_253u32.wrapping_mul(state[j - 1] ^ (state[j - 1] >> 30)).wrapping_add(j as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.state[i] = v;
        }
        self.index = 0;
    }

    /// The next 32-bit output (tempered).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `uniform_real_distribution<float>(0, 1)`: 24 random bits over 2^24.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u32() & ((1 << 24) - 1)) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// Box-Muller over a block of 16 uniforms, as `normal_fill_16` (mean 0, std 1, in float).
fn normal_fill_16(data: &mut [f32]) {
    for j in 0..8 {
        let u1 = 1.0 - data[j];
        let u2 = data[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0f32 * std::f32::consts::PI * u2;
        data[j] = radius * theta.cos();
        data[j + 8] = radius * theta.sin();
    }
}

/// `torch.manual_seed(seed); torch.randn(n)` for a float32 tensor of `n` (>= 16) elements;
/// `None` below 16 (torch then uses another algorithm, not reproduced here).
pub fn randn(seed: u64, n: usize) -> Option<Vec<f32>> {
    if n < 16 {
        return None;
    }
    let mut g = Mt19937::new(seed);
    let mut data: Vec<f32> = (0..n).map(|_| g.uniform_f32()).collect();
    for block in data.chunks_exact_mut(16) {
        normal_fill_16(block);
    }
    if !n.is_multiple_of(16) {
        let tail = &mut data[n - 16..];
        for x in tail.iter_mut() {
            *x = g.uniform_f32();
        }
        normal_fill_16(tail);
    }
    Some(data)
}

/// `torch.manual_seed(seed); torch.rand(n)` for a float32 tensor (one uniform per element).
pub fn rand(seed: u64, n: usize) -> Vec<f32> {
    let mut g = Mt19937::new(seed);
    (0..n).map(|_| g.uniform_f32()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_standard_sequence() {
        // std::mt19937 with the default seed 5489: the 10000th output is 4123659995 (C++11
        // [rand.predef]).
        let mut g = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10000 {
            last = g.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn randn_is_standard_normal_and_deterministic() {
        let a = randn(42, 4099).unwrap();
        assert_eq!(a, randn(42, 4099).unwrap());
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.06 && (var - 1.0).abs() < 0.08, "mean {mean} var {var}");
        assert!(randn(42, 15).is_none());
    }

    #[test]
    fn rand_matches_torch_seed_0() {
        // torch.manual_seed(0); torch.rand(2) -> tensor([0.4963, 0.7682]) (printed to 4 places)
        let r = rand(0, 2);
        assert!((r[0] - 0.4963).abs() < 5e-5 && (r[1] - 0.7682).abs() < 5e-5, "{r:?}");
    }
}
