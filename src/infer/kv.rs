//! The key/value cache: per layer, per KV head, `cap` positions of `head_dim` values.
//! Positions continue across `forward` calls, so a prompt can be followed by one token at
//! a time (incremental decoding).

use super::{InferConfig, InferError};
use llmtool_kernels::attention::{key_stride, KvView};

/// How cached keys and values are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvPrecision {
    /// Exact f32 (transformers' numbers).
    #[default]
    F32,
    /// Values rounded to f16 on the way in, as llama.cpp's default F16 KV cache stores them
    /// (`--cache-type-k/v f16`); held as f32 here, so only the rounding is reproduced.
    F16,
}

pub struct KvCache {
    pub(crate) n_layer: usize,
    pub(crate) n_head_kv: usize,
    pub(crate) head_dim: usize,
    pub(crate) cap: usize,
    len: usize,
    precision: KvPrecision,
    /// Keys transposed, `[layer][kv_head][head_dim][key_stride(cap)]`, and values,
    /// `[layer][kv_head][position][head_dim]`: the layouts the fused attention kernel reads
    /// without repacking (`llmtool_kernels::attention`).
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl KvCache {
    /// A cache for `cap` positions of a model with configuration `cfg`.
    pub fn new(cfg: &InferConfig, cap: usize, precision: KvPrecision) -> Self {
        let per_layer = cfg.n_head_kv * cap * cfg.head_dim;
        let per_layer_k = cfg.n_head_kv * cfg.head_dim * key_stride(cap);
        KvCache {
            n_layer: cfg.n_layer,
            n_head_kv: cfg.n_head_kv,
            head_dim: cfg.head_dim,
            cap,
            len: 0,
            precision,
            k: (0..cfg.n_layer).map(|_| vec![0.0; per_layer_k]).collect(),
            v: (0..cfg.n_layer).map(|_| vec![0.0; per_layer]).collect(),
        }
    }

    /// Positions filled so far (the next `forward` usually starts here).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Forgets every position (the memory is kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn check(&self, cfg: &InferConfig, pos: usize, n: usize) -> Result<(), InferError> {
        let geom = |l: usize, h: usize, d: usize| format!("{l} layers, {h} KV heads of {d}");
        if (self.n_layer, self.n_head_kv, self.head_dim) != (cfg.n_layer, cfg.n_head_kv, cfg.head_dim) {
            return Err(InferError::CacheGeometry {
                expected: geom(cfg.n_layer, cfg.n_head_kv, cfg.head_dim),
                found: geom(self.n_layer, self.n_head_kv, self.head_dim),
            });
        }
        if pos > self.len {
            return Err(InferError::CacheGap { pos, len: self.len });
        }
        if pos + n > self.cap {
            return Err(InferError::CacheOverflow { pos, end: pos + n, cap: self.cap });
        }
        Ok(())
    }

    /// Stores rows of `k`/`v` (`n × n_head_kv·head_dim`) for layer `il` at positions `pos..`.
    pub(crate) fn store(&mut self, il: usize, pos: usize, k: &[f32], v: &[f32]) {
        let hd = self.head_dim;
        let kvd = self.n_head_kv * hd;
        let ks = key_stride(self.cap);
        let f16 = self.precision == KvPrecision::F16;
        let round = |x: f32| if f16 { half::f16::from_f32(x).to_f32() } else { x };
        let n = k.len() / kvd;
        let (cap, n_head_kv) = (self.cap, self.n_head_kv);
        // Keys: one row of the transposed cache (a kv head's dimension) per task.
        let kt = &mut self.k[il][..n_head_kv * hd * ks];
        let store_k = |(gd, row): (usize, &mut [f32])| {
            for t in 0..n {
                row[pos + t] = round(k[t * kvd + gd]);
            }
        };
        // Values: one kv head's positions per task.
        let vs = &mut self.v[il][..n_head_kv * cap * hd];
        let store_v = |(g, rows): (usize, &mut [f32])| {
            for (t, vr) in v.chunks_exact(kvd).enumerate() {
                for (d, x) in rows[(pos + t) * hd..(pos + t + 1) * hd].iter_mut().enumerate() {
                    *x = round(vr[g * hd + d]);
                }
            }
        };
        if n >= super::ops::PAR_MIN_ROWS {
            use rayon::prelude::*;
            kt.par_chunks_exact_mut(ks).enumerate().for_each(store_k);
            vs.par_chunks_exact_mut(cap * hd).enumerate().for_each(store_v);
        } else {
            kt.chunks_exact_mut(ks).enumerate().for_each(store_k);
            vs.chunks_exact_mut(cap * hd).enumerate().for_each(store_v);
        }
    }

    /// Layer `il` as the attention kernel reads it.
    pub(crate) fn view(&self, il: usize) -> KvView<'_> {
        KvView { keys_t: &self.k[il], values: &self.v[il], cap: self.cap }
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }
}
