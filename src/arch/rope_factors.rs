//! RoPE frequency-factor tensors: what llama.cpp stores instead of a config's rope scaling
//! parameters, computed from those parameters on HF → GGUF and solved back on GGUF → HF.
//!
//! - `rope_freqs.weight` (F32, [n_rot/2]): Llama 3.x `rope_type: "llama3"`, made by
//!   llama.cpp `conversion/llama.py` `LlamaModel.generate_extra_tensors`. Element i divides
//!   the rotation angle of pair i (ggml `ggml_rope_ext` freq_factors).
//! - `rope_factors_long.weight` / `rope_factors_short.weight` (F32, [n_rot/2]): Phi-3
//!   `longrope` (`su`), the config's `long_factor` / `short_factor` as they are
//!   (`conversion/phi.py` `Phi3MiniModel.generate_extra_tensors`).
//!
//! The llama3 factors are computed in f32 in the order of operations of llama.cpp's
//! converter under torch (`x / t` of a Python number by a tensor is `t.reciprocal() * x`,
//! comparisons with a Python number are made in f32). Checked against torch 2.15 (x86-64) on
//! 252 configurations (7 bases × 6 head sizes × 6 parameter sets): 249 byte-identical, 3 with
//! one ramp factor 1 ulp apart — torch's vectorized `pow` (SLEEF, chosen by CPU) is not
//! correctly rounded for ~0.7 % of exponents, where ours (libm powf) is; so llama.cpp's own
//! output depends on the machine at that level. Solving the parameters back therefore
//! accepts factors within 2 ulp.

use llmtool_formats::{GgmlType, TensorSource};
use serde_json::{json, Value};

use super::hparams::f32_json;
use super::ArchError;

pub const ROPE_FREQS: &str = "rope_freqs.weight";
pub const ROPE_FACTORS_LONG: &str = "rope_factors_long.weight";
pub const ROPE_FACTORS_SHORT: &str = "rope_factors_short.weight";

/// Whether `name` is one of the rope factor tensors (no HF equivalent: an HF config holds
/// the parameters they are computed from).
pub fn is_rope_factor_tensor(name: &str) -> bool {
    matches!(name, ROPE_FREQS | ROPE_FACTORS_LONG | ROPE_FACTORS_SHORT)
}

/// The parameters of `rope_type: "llama3"` (transformers `_compute_llama3_parameters`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Llama3Params {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub orig_ctx: f64,
}

impl Llama3Params {
    /// The config's `rope_scaling` object (the form Meta's Llama 3.1 config.json uses).
    pub fn to_config(self) -> Value {
        json!({
            "factor": num_json(self.factor),
            "high_freq_factor": num_json(self.high_freq_factor),
            "low_freq_factor": num_json(self.low_freq_factor),
            "original_max_position_embeddings": self.orig_ctx as u64,
            "rope_type": "llama3",
        })
    }
}

fn num_json(x: f64) -> Value {
    f32_json(x as f32)
}

/// ω_i = 2π / freq_i in f32 as llama.cpp's converter computes it: freq_i =
/// 1 / base^(2i/dim), wavelen = freq.reciprocal() · 2π.
fn wavelens(base: f64, dim: u32) -> Vec<f32> {
    let base = base as f32;
    (0..dim)
        .step_by(2)
        .map(|i| {
            let freq = 1.0f32 / base.powf(i as f32 / dim as f32);
            (1.0f32 / freq) * (2.0 * std::f64::consts::PI) as f32
        })
        .collect()
}

/// `rope_freqs.weight` for llama3 scaling: 1 for short wavelengths, `factor` for long ones,
/// a smooth ramp between (llama.cpp `LlamaModel.generate_extra_tensors`).
pub(crate) fn llama3_factors(base: f64, dim: u32, p: &Llama3Params) -> Vec<f32> {
    let low_w = (p.orig_ctx / p.low_freq_factor) as f32;
    let high_w = (p.orig_ctx / p.high_freq_factor) as f32;
    let factor = p.factor as f32;
    wavelens(base, dim)
        .into_iter()
        .map(|w| {
            if w < high_w {
                1.0
            } else if w > low_w {
                factor
            } else {
                let smooth = ((1.0f32 / w) * p.orig_ctx as f32 - p.low_freq_factor as f32)
                    / (p.high_freq_factor - p.low_freq_factor) as f32;
                1.0f32 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect()
}

/// Solves the llama3 parameters back from a `rope_freqs.weight` (a foreign GGUF carries no
/// other trace of them). The factors depend on `original_max_position_embeddings` only
/// through its ratios to the low/high frequency factors, so the low one is taken as 1 (the
/// value of every Llama 3.x release); the solution must reproduce every factor to 2 ulp
/// (see the module docs).
pub(crate) fn llama3_params_from_factors(base: f64, dim: u32, ff: &[f32]) -> Result<Llama3Params, ArchError> {
    let bad = |reason: String| ArchError::InvalidValue { key: ROPE_FREQS.into(), reason };
    if ff.len() != dim as usize / 2 {
        return Err(bad(format!("{} factors, expected {} (rope dimension {dim} / 2)", ff.len(), dim / 2)));
    }
    let factor = *ff.last().expect("dim >= 2");
    if !(factor.is_finite() && factor >= 1.0) {
        return Err(bad(format!("the last factor {factor} is not a llama3 scaling factor (>= 1)")));
    }
    let w = wavelens(base, dim);
    // s = (orig/ω − low) / (high − low) from 1/ff = (1 − s)/factor + s.
    let ramp: Vec<(f64, f64)> = ff
        .iter()
        .zip(&w)
        .filter(|(&f, _)| f != 1.0 && f != factor)
        .map(|(&f, &w)| {
            let inv_f = 1.0 / factor as f64;
            ((1.0 / f as f64 - inv_f) / (1.0 - inv_f), 1.0 / w as f64)
        })
        .collect();
    let mut candidates = Vec::new();
    let low = 1.0;
    if ramp.len() >= 2 {
        // s = a/ω + b with a = orig/(high − low), b = −low/(high − low)
        let ((s0, x0), (s1, x1)) = (ramp[0], ramp[ramp.len() - 1]);
        let a = (s1 - s0) / (x1 - x0);
        let b = s0 - a * x0;
        if b < 0.0 {
            let high = low - low / b;
            candidates.push((round_sig(high), (a * (high - low)).round()));
        }
    } else if let Some(&(s, x)) = ramp.first() {
        let high = 4.0; // Meta's value; one ramp entry fixes only orig given high
        candidates.push((high, ((s * (high - low) + low) / x).round()));
    }
    for orig in [8192.0, 4096.0, 16384.0, 2048.0, 32768.0] {
        candidates.push((4.0, orig));
    }
    for (high, orig) in candidates {
        if !(high > low && orig >= 1.0) {
            continue;
        }
        let p = Llama3Params { factor: factor as f64, low_freq_factor: low, high_freq_factor: high, orig_ctx: orig };
        let again = llama3_factors(base, dim, &p);
        if again.iter().zip(ff).all(|(a, b)| (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 2) {
            return Ok(p);
        }
    }
    Err(bad(format!(
        "the factors {ff:?} are not llama3 rope scaling factors for rope.freq_base {base} (no factor / \
         low_freq_factor 1 / high_freq_factor / original_max_position_embeddings reproduces them to 2 ulp)"
    )))
}

/// Rounds to 6 significant digits (the solved high_freq_factor carries float noise).
fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(5 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// The longrope attention factor as llama.cpp's converter computes it
/// (`Phi3MiniModel.generate_extra_tensors`): sqrt(1 + ln(s)/ln(orig)) with
/// s = max_position_embeddings / original_max_position_embeddings, 1 when s <= 1.
pub(crate) fn longrope_attn_factor(n_ctx: u32, orig_ctx: u32) -> f64 {
    let scale = n_ctx as f64 / orig_ctx as f64;
    if scale > 1.0 {
        (1.0 + scale.ln() / (orig_ctx as f64).ln()).sqrt()
    } else {
        1.0
    }
}

/// A rope factor tensor of `src` decoded to f32 (`None` when absent).
pub(crate) fn read_factors(src: &dyn TensorSource, name: &str) -> Result<Option<Vec<f32>>, ArchError> {
    let Some(info) = src.tensor_info(name) else {
        return Ok(None);
    };
    let bad = |reason: String| ArchError::BadTensor { name: name.into(), fix: "read rope factors", reason };
    if info.ne.len() != 1 || !matches!(info.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(bad(format!("expected a 1-D float tensor, found {} {:?}", info.ty, info.ne)));
    }
    let bytes = src.tensor_bytes(name).map_err(|e| bad(e.to_string()))?;
    let mut out = vec![0f32; info.ne[0] as usize];
    llmtool_kernels::convert::to_f32(info.ty, &bytes, &mut out).map_err(|e| bad(e.to_string()))?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama31() -> Llama3Params {
        Llama3Params { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, orig_ctx: 8192.0 }
    }

    #[test]
    fn llama31_factors_have_the_three_regions() {
        let ff = llama3_factors(500000.0, 128, &llama31());
        assert_eq!(ff.len(), 64);
        assert_eq!(ff[0], 1.0);
        assert_eq!(ff[63], 8.0);
        assert!(ff.iter().any(|&f| f > 1.0 && f < 8.0), "a smooth ramp between");
        assert!(ff.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn parameters_are_solved_back_exactly() {
        for (base, dim, p) in [
            (500000.0, 128, llama31()),
            (500000.0, 64, Llama3Params { factor: 32.0, ..llama31() }),
            (10000.0, 16, Llama3Params { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, orig_ctx: 64.0 }),
            (10000.0, 64, Llama3Params { factor: 4.0, low_freq_factor: 1.0, high_freq_factor: 2.0, orig_ctx: 1000.0 }),
        ] {
            let ff = llama3_factors(base, dim, &p);
            assert_eq!(llama3_params_from_factors(base, dim, &ff).unwrap(), p, "{base} {dim}");
        }
    }

    #[test]
    fn foreign_factors_are_a_clear_error() {
        let mut ff = llama3_factors(500000.0, 128, &llama31());
        ff[20] *= 1.01;
        let e = llama3_params_from_factors(500000.0, 128, &ff).unwrap_err().to_string();
        assert!(e.contains("rope_freqs.weight"), "{e}");
        let e = llama3_params_from_factors(500000.0, 128, &ff[..10]).unwrap_err().to_string();
        assert!(e.contains("expected 64"), "{e}");
    }

    #[test]
    fn longrope_attention_factor() {
        // Phi-3.5-mini: 131072 / 4096
        let a = longrope_attn_factor(131072, 4096);
        assert!((a - (1.0 + (32f64).ln() / (4096f64).ln()).sqrt()).abs() < 1e-12);
        assert_eq!(longrope_attn_factor(4096, 4096), 1.0);
    }
}
