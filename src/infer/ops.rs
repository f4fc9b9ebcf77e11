//! The building blocks of every forward pass, on row-major f32 activations
//! (`n_tokens × width`). Where llama.cpp (ggml-cpu `ops.cpp`) and transformers agree on the
//! maths, the order of operations follows ggml so perplexities can be compared.

use rayon::prelude::*;

use super::config::{Rope, RopeStyle};
use llmtool_kernels::vexp;

/// Rows per rayon task in the row-wise ops below; with fewer rows than `PAR_MIN_ROWS`
/// (token-by-token generation) they run on the calling thread, where a fork-join would cost
/// more than the work.
const ROWS_PER_TASK: usize = 8;
pub(crate) const PAR_MIN_ROWS: usize = 16;

/// `f(row of x, row of out)` for every row of width `d`, in parallel when there are enough.
fn rows_zip(x: &[f32], out: &mut [f32], d: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) {
    if x.len() / d.max(1) >= PAR_MIN_ROWS {
        x.par_chunks_exact(d).zip(out.par_chunks_exact_mut(d)).with_min_len(ROWS_PER_TASK).for_each(|(a, b)| f(a, b));
    } else {
        x.chunks_exact(d).zip(out.chunks_exact_mut(d)).for_each(|(a, b)| f(a, b));
    }
}

/// `f(row)` for every row of width `d` of `x`, in parallel when there are enough.
fn rows_mut(x: &mut [f32], d: usize, f: impl Fn(&mut [f32]) + Sync) {
    if x.len() / d.max(1) >= PAR_MIN_ROWS {
        x.par_chunks_exact_mut(d).with_min_len(ROWS_PER_TASK).for_each(&f);
    } else {
        x.chunks_exact_mut(d).for_each(f);
    }
}

/// RMSNorm of each row, times `w`: y = x / sqrt(mean(x²) + eps) · w. The sum of squares is
/// accumulated in f64 like ggml's `ggml_compute_forward_rms_norm_f32`.
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    rows_zip(x, out, d, |xr, yr| {
        let scale = rms_scale(xr, eps);
        for ((y, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
            *y = (v * scale) * g;
        }
    });
}

/// [`rmsnorm`] in place.
pub fn rmsnorm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    rows_mut(x, w.len(), |row| {
        let scale = rms_scale(row, eps);
        for (v, &g) in row.iter_mut().zip(w) {
            *v = (*v * scale) * g;
        }
    });
}

/// 1 / sqrt(mean(x²) + eps): each x² rounded to f32 and summed in f64 like ggml, in 8
/// interleaved partial sums (ggml's one serial chain costs a 4-cycle add per element; the f64
/// total differs from it by a few f64 ulps, far below the f32 result's rounding).
fn rms_scale(row: &[f32], eps: f32) -> f32 {
    let mut acc = [0f64; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += (v * v) as f64;
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&v| (v * v) as f64).sum();
    let sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
    1.0 / ((sum / row.len() as f64) as f32 + eps).sqrt()
}

/// LayerNorm without bias of each row, times `w`: y = (x - mean) / sqrt(var + eps) · w
/// (Cohere; ggml `ggml_compute_forward_norm_f32`: mean and variance summed in f64).
pub fn layernorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    rows_zip(x, out, w.len(), |xr, yr| {
        yr.copy_from_slice(xr);
        layernorm_row(yr, w, eps);
    });
}

/// One row of [`layernorm`], in place.
fn layernorm_row(row: &mut [f32], w: &[f32], eps: f32) {
    let d = row.len();
    let mean = (row.iter().map(|&v| v as f64).sum::<f64>() / d as f64) as f32;
    let mut sum2 = 0.0f64;
    for v in row.iter_mut() {
        *v -= mean;
        sum2 += (*v * *v) as f64;
    }
    let scale = 1.0 / ((sum2 / d as f64) as f32 + eps).sqrt();
    for (v, &g) in row.iter_mut().zip(w) {
        *v = (*v * scale) * g;
    }
}

/// Per-head LayerNorm in place (Command R+ q/k norms): `x` is `n_tokens × n_heads·head_dim`,
/// `w` is `[n_heads × head_dim]`, one weight row per head; each head is normalized over its
/// `head_dim` values (transformers `CohereLayerNorm((n_heads, head_dim))`, llama.cpp
/// command-r.cpp `build_norm(Qcur, attn_q_norm, LLM_NORM)`).
pub fn layernorm_heads_in_place(x: &mut [f32], w: &[f32], head_dim: usize, eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        for (head, wh) in row.chunks_exact_mut(head_dim).zip(w.chunks_exact(head_dim)) {
            layernorm_row(head, wh, eps);
        }
    }
}

/// Adds `b` to each row of `x`.
pub fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        for (v, &bb) in row.iter_mut().zip(b) {
            *v += bb;
        }
    }
}

/// x += y.
pub fn add_in_place(x: &mut [f32], y: &[f32]) {
    const CHUNK: usize = 1 << 14;
    let add = |(xs, ys): (&mut [f32], &[f32])| xs.iter_mut().zip(ys).for_each(|(a, &b)| *a += b);
    if x.len() >= 2 * CHUNK {
        x.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK)).for_each(add);
    } else {
        add((x, y));
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `g ← silu(g) · u` elementwise (SwiGLU), with the vectorized `exp` of [`vexp`]; same
/// formula as [`silu`].
pub fn swiglu_in_place(g: &mut [f32], u: &[f32]) {
    const CHUNK: usize = 256;
    let run = |(gc, uc): (&mut [f32], &[f32])| {
        let mut e = [0f32; CHUNK];
        for (gc, uc) in gc.chunks_mut(CHUNK).zip(uc.chunks(CHUNK)) {
            let e = &mut e[..gc.len()];
            e.iter_mut().zip(gc.iter()).for_each(|(e, &x)| *e = -x);
            vexp::exp_in_place(e);
            for ((x, &ev), &uv) in gc.iter_mut().zip(e.iter()).zip(uc) {
                *x = *x / (1.0 + ev) * uv;
            }
        }
    };
    // Tasks of 64 chunks (the chunking, and so the result, is the same either way).
    if g.len() >= 2 * 64 * CHUNK {
        g.par_chunks_mut(64 * CHUNK).zip(u.par_chunks(64 * CHUNK)).for_each(run);
    } else {
        run((g, u));
    }
}

/// GELU, tanh approximation (transformers `gelu_pytorch_tanh`, ggml `ggml_gelu`).
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
}

/// c · tanh(x / c) (gemma2 soft-capping).
pub fn softcap(x: &mut [f32], c: f32) {
    for v in x {
        *v = c * (*v / c).tanh();
    }
}

/// cos/sin of every rotated pair at position `pos`: `cache[2i] = cos θ_i`, `cache[2i+1] = sin θ_i`
/// with θ_i = pos · base^(-2i/n_rot), computed like ggml `ggml_rope_cache_init` (θ multiplied
/// by the step in f32) including YaRN (`rope_yarn`).
pub fn rope_cache(rope: &Rope, pos: usize, cache: &mut [f32]) {
    rope_cache_ff(rope, None, pos, cache)
}

/// [`rope_cache`] with frequency factors (ggml `ggml_rope_cache_init`'s `freq_factors`):
/// pair i turns by θ_i / ff[i] (Llama 3.x `rope_freqs`, Phi-3 longrope factors).
pub fn rope_cache_ff(rope: &Rope, ff: Option<&[f32]>, pos: usize, cache: &mut [f32]) {
    let n = rope.n_rot;
    let theta_scale = rope.freq_base.powf(-2.0 / n as f32);
    let corr = yarn_corr_dims(rope);
    let mut theta = pos as f32;
    for i0 in (0..n).step_by(2) {
        let theta_extrap = ff.map_or(theta, |f| theta / f[i0 / 2]);
        let theta_interp = rope.freq_scale * theta_extrap;
        let (mut th, mut mscale) = (theta_interp, rope.attn_factor);
        if rope.ext_factor != 0.0 {
            let y = ((i0 / 2) as f32 - corr[0]) / (corr[1] - corr[0]).max(0.001);
            let ramp_mix = (1.0 - y.clamp(0.0, 1.0)) * rope.ext_factor;
            th = theta_interp * (1.0 - ramp_mix) + theta_extrap * ramp_mix;
            mscale *= 1.0 + 0.1 * (1.0 / rope.freq_scale).ln();
        }
        cache[i0] = th.cos() * mscale;
        cache[i0 + 1] = th.sin() * mscale;
        theta *= theta_scale;
    }
}

/// ggml `ggml_rope_yarn_corr_dims`.
fn yarn_corr_dims(rope: &Rope) -> [f32; 2] {
    let n = rope.n_rot as f32;
    let corr_dim = |n_rot: f32| {
        n * (rope.n_ctx_orig as f32 / (n_rot * 2.0 * std::f32::consts::PI)).ln() / (2.0 * rope.freq_base.ln())
    };
    let start = corr_dim(rope.beta_fast).floor();
    let end = corr_dim(rope.beta_slow).ceil();
    [start.max(0.0), end.min(n - 1.0)]
}

/// Rotates every head of every row of `x` (`n_tokens × n_heads·head_dim`); row t is at
/// position `pos0 + t`.
pub fn apply_rope(rope: &Rope, x: &mut [f32], n_heads: usize, head_dim: usize, pos0: usize) {
    apply_rope_ff(rope, None, x, n_heads, head_dim, pos0)
}

/// [`apply_rope`] with frequency factors (see [`rope_cache_ff`]; `ff` holds at least
/// `n_rot / 2` values). Only the first `n_rot` dimensions of a head turn (partial rotary:
/// Phi-4-mini), NeoX pairs taken within them, the rest pass through (ggml rope).
pub fn apply_rope_ff(rope: &Rope, ff: Option<&[f32]>, x: &mut [f32], n_heads: usize, head_dim: usize, pos0: usize) {
    let n = rope.n_rot;
    x.par_chunks_mut(n_heads * head_dim).enumerate().for_each(|(t, row)| {
        let mut cache = vec![0.0f32; n];
        rope_cache_ff(rope, ff, pos0 + t, &mut cache);
        for head in row.chunks_exact_mut(head_dim) {
            for i0 in (0..n).step_by(2) {
                let (c, s) = (cache[i0], cache[i0 + 1]);
                let (a, b) = match rope.style {
                    RopeStyle::Normal => (i0, i0 + 1),
                    RopeStyle::Neox => (i0 / 2, i0 / 2 + n / 2),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    });
}
