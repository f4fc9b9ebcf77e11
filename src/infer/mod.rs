//! The inference core: one forward pass for the llama, phi3, gemma, gemma2, gemma3, qwen2,
//! qwen3, command-r and cohere2 families, on weights in their stored type, with a KV cache.
//!
//! Activations are row-major f32 `n_tokens × width`; a prompt chunk goes through every
//! matrix product as one batch. The graph per family follows llama.cpp `src/models/*.cpp`
//! (and transformers' modeling files, which agree):
//!
//! ```text
//! x = embed(tokens) [· sqrt(n_embd): gemma*]
//! per layer:  h = rmsnorm(x)·w_attn_norm                  [layernorm: command-r, cohere2]
//!             q,k,v = h·Wq, h·Wk, h·Wv (+ bias: qwen2)    phi3: one fused h·Wqkv
//!             [per-head rmsnorm(q), rmsnorm(k): qwen3, gemma3; per-head layernorm: command-r+]
//!             rope(q, k) (normal: llama, cohere*; neox: the rest; gemma3: local base on sliding
//!                         layers; cohere2: sliding layers only)
//!             a = softmax(q·kᵀ·scale [softcap: gemma2] + causal mask [window]) · v
//!             o = a·Wo [rmsnorm: gemma2/3 post-attention norm];  x += o
//!             h = rmsnorm(x)·w_ffn_norm      [cohere*: parallel block, h = the attention's input norm]
//!             f = (act(h·Wgate) ⊙ h·Wup)·Wdown  (silu; gelu-tanh: gemma*)  phi3: fused gate‖up
//!                 [Mixtral, qwen2moe, qwen3moe: the Mixture-of-Experts block, `moe.rs`]
//!             [rmsnorm: gemma2/3 post-FFN norm];  x += f
//! logits = rmsnorm(x)·w_out_norm · Wout (tied: token_embd) [softcap: gemma2] [· logit_scale: cohere*]
//! ```

mod config;
mod error;
mod kv;
mod linear;
mod moe;
mod observe;
pub mod ops;

pub use config::{Activation, Family, InferConfig, MoeConfig, NormKind, Rope, RopeFactors, RopeStyle};
pub use error::InferError;
pub use kv::{KvCache, KvPrecision};
pub use linear::Weight;
pub use moe::route as moe_route;
pub use observe::{layer_input_name, MatmulObserver};

use llmtool_formats::TensorSource;
use llmtool_kernels::attention::{attention, AttnParams};
use rayon::prelude::*;

pub mod timing;

use crate::model::Model;
use linear::matmul as matmul_untimed;

fn matmul(w: &Weight<'_>, x: &[f32], n: usize, out: &mut [f32]) -> Result<(), InferError> {
    timing::span(timing::Op::Matmul, || matmul_untimed(w, x, n, out))
}

/// The family's block norm of each row of `x`, times `w`.
fn norm(cfg: &InferConfig, x: &[f32], w: &[f32], out: &mut [f32]) {
    match cfg.norm {
        NormKind::Rms => ops::rmsnorm(x, w, cfg.rms_eps, out),
        NormKind::Layer => ops::layernorm(x, w, cfg.rms_eps, out),
    }
}

/// Q, K, V projections: separate, or phi3's fused `attn_qkv` (rows: Q, then K, then V).
enum Qkv<'a> {
    Split { q: Weight<'a>, k: Weight<'a>, v: Weight<'a> },
    Fused(Weight<'a>),
}

/// Gate and up projections: separate, or phi3's fused `ffn_up` (rows: gate, then up).
enum GateUp<'a> {
    Split { gate: Weight<'a>, up: Weight<'a> },
    Fused(Weight<'a>),
}

/// A layer's feed-forward network: dense (gated) or Mixture of Experts. One per layer, all
/// of one kind in a model: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Ffn<'a> {
    Dense { gate_up: GateUp<'a>, down: Weight<'a> }, // gate/up [n_embd → n_ff], down [n_ff → n_embd]
    Moe(moe::MoeFfn<'a>),
}

struct Layer<'a> {
    attn_norm: Vec<f32>, // [n_embd]
    qkv: Qkv<'a>,        // q: [n_embd → n_head·hd], k/v: [n_embd → n_head_kv·hd]
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    // q/k norms per head: [head_dim] RMSNorm weights shared by the heads (qwen3, gemma3), or
    // LayerNorm weights [n_head × hd] / [n_head_kv × hd], one row per head (command-r+)
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: Weight<'a>, // [n_head·hd → n_embd]
    bo: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>, // [n_embd] gemma2
    ffn_norm: Option<Vec<f32>>,       // [n_embd]; None: parallel block (cohere)
    ffn: Ffn<'a>,
    post_ffn_norm: Option<Vec<f32>>, // [n_embd] gemma2
}

/// A model ready to run: configuration plus weights borrowed from the opened [`Model`].
pub struct InferModel<'a> {
    pub cfg: InferConfig,
    token_embd: Weight<'a>, // [n_vocab × n_embd]
    layers: Vec<Layer<'a>>,
    output_norm: Vec<f32>,      // [n_embd]
    output: Option<Weight<'a>>, // [n_embd → n_vocab]; None: tied to token_embd
    kv_precision: KvPrecision,
    /// Rope frequency factors [n_rot/2]: (always, or short) and (long) — see [`RopeFactors`].
    rope_ff: Option<Vec<f32>>,
    rope_ff_long: Option<Vec<f32>>,
    observer: Option<std::sync::Arc<dyn MatmulObserver>>,
}

fn opt_vec(src: &dyn TensorSource, name: &str, n: usize) -> Result<Option<Vec<f32>>, InferError> {
    opt_vec_2d(src, name, n, 1)
}

/// A tensor of `ne = [ne0, ne1]` as f32 when the source has it (e.g. Command R+'s per-head
/// norm weights, [head_dim, n_heads], llama.cpp command-r.cpp).
fn opt_vec_2d(src: &dyn TensorSource, name: &str, ne0: usize, ne1: usize) -> Result<Option<Vec<f32>>, InferError> {
    if !has(src, name) {
        return Ok(None);
    }
    Ok(Some(Weight::load(src, name, ne0, ne1)?.to_f32_vec()?))
}

fn has(src: &dyn TensorSource, name: &str) -> bool {
    src.tensor_infos().iter().any(|t| t.name == name)
}

impl<'a> InferModel<'a> {
    /// Reads the configuration and maps every weight (norms and biases decoded to f32,
    /// matrices kept as stored).
    pub fn load(model: &'a Model) -> Result<Self, InferError> {
        Self::from_source(&model.metadata, model.tensors.as_ref())
    }

    /// Like [`Self::load`] over any tensor source (e.g. a model merged in memory); weights the
    /// source returns owned are kept by their [`Weight`].
    pub fn from_source(metadata: &llmtool_formats::Metadata, src: &'a dyn TensorSource) -> Result<Self, InferError> {
        let cfg = InferConfig::from_metadata(metadata, src.tensor_infos())?;
        let (d, qd, kvd, ff) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
        let vec =
            |name: &str, n: usize| -> Result<Vec<f32>, InferError> { Weight::load(src, name, n, 1)?.to_f32_vec() };
        let token_embd = Weight::load(src, "token_embd.weight", d, cfg.n_vocab)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for il in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            let qkv = if has(src, &n("attn_qkv.weight")) {
                Qkv::Fused(Weight::load(src, &n("attn_qkv.weight"), d, qd + 2 * kvd)?)
            } else {
                Qkv::Split {
                    q: Weight::load(src, &n("attn_q.weight"), d, qd)?,
                    k: Weight::load(src, &n("attn_k.weight"), d, kvd)?,
                    v: Weight::load(src, &n("attn_v.weight"), d, kvd)?,
                }
            };
            let ffn = match &cfg.moe {
                Some(m) => Ffn::Moe(moe::MoeFfn::load(src, il, d, m)?),
                None => Ffn::Dense {
                    gate_up: if has(src, &n("ffn_gate.weight")) {
                        GateUp::Split {
                            gate: Weight::load(src, &n("ffn_gate.weight"), d, ff)?,
                            up: Weight::load(src, &n("ffn_up.weight"), d, ff)?,
                        }
                    } else {
                        GateUp::Fused(Weight::load(src, &n("ffn_up.weight"), d, 2 * ff)?)
                    },
                    down: Weight::load(src, &n("ffn_down.weight"), ff, d)?,
                },
            };
            let post = cfg.post_norms;
            let hd = cfg.head_dim;
            let (qn, kn) = (n("attn_q_norm.weight"), n("attn_k_norm.weight"));
            let (q_norm, k_norm) = match cfg.norm {
                // command-r+ (use_qk_norm): optional, one LayerNorm weight row per head
                NormKind::Layer => (opt_vec_2d(src, &qn, hd, cfg.n_head)?, opt_vec_2d(src, &kn, hd, cfg.n_head_kv)?),
                NormKind::Rms if cfg.qk_norm => (Some(vec(&qn, hd)?), Some(vec(&kn, hd)?)),
                NormKind::Rms => (None, None),
            };
            layers.push(Layer {
                attn_norm: vec(&n("attn_norm.weight"), d)?,
                qkv,
                bq: opt_vec(src, &n("attn_q.bias"), qd)?,
                bk: opt_vec(src, &n("attn_k.bias"), kvd)?,
                bv: opt_vec(src, &n("attn_v.bias"), kvd)?,
                q_norm,
                k_norm,
                wo: Weight::load(src, &n("attn_output.weight"), qd, d)?,
                bo: opt_vec(src, &n("attn_output.bias"), d)?,
                post_attn_norm: if post { Some(vec(&n("post_attention_norm.weight"), d)?) } else { None },
                ffn_norm: if cfg.parallel_block { None } else { Some(vec(&n("ffn_norm.weight"), d)?) },
                ffn,
                post_ffn_norm: if post { Some(vec(&n("post_ffw_norm.weight"), d)?) } else { None },
            });
        }
        let output =
            if has(src, "output.weight") { Some(Weight::load(src, "output.weight", d, cfg.n_vocab)?) } else { None };
        let half = cfg.rope.n_rot / 2;
        let factors = |name: &str| -> Result<Vec<f32>, InferError> {
            let n = src.tensor_info(name).and_then(|t| t.ne.first().copied()).unwrap_or(0) as usize;
            if n < half {
                return Err(InferError::Unsupported {
                    what: "rope scaling",
                    detail: format!("`{name}` holds {n} factors; rope.dimension_count {} needs {half}", cfg.rope.n_rot),
                });
            }
            Ok(vec(name, n)?[..half].to_vec())
        };
        let (rope_ff, rope_ff_long) = match cfg.rope_factors {
            RopeFactors::None => (None, None),
            RopeFactors::Freqs => (Some(factors("rope_freqs.weight")?), None),
            RopeFactors::LongShort => {
                (Some(factors("rope_factors_short.weight")?), Some(factors("rope_factors_long.weight")?))
            }
        };
        Ok(InferModel {
            output_norm: vec("output_norm.weight", d)?,
            cfg,
            token_embd,
            layers,
            output,
            kv_precision: KvPrecision::F32,
            rope_ff,
            rope_ff_long,
            observer: None,
        })
    }

    /// The rope frequency factors for a run whose context (KV cache) holds `n_ctx` positions:
    /// longrope takes its long factors when `n_ctx` exceeds the original training context
    /// (llama.cpp `get_rope_factors`: n_ctx_seq > n_ctx_orig_yarn).
    pub fn rope_factors_for(&self, n_ctx: usize) -> Option<&[f32]> {
        match &self.rope_ff_long {
            Some(long) if n_ctx > self.cfg.rope.n_ctx_orig => Some(long),
            _ => self.rope_ff.as_deref(),
        }
    }

    /// A KV cache for `cap` positions with this model's default precision.
    pub fn new_cache(&self, cap: usize) -> KvCache {
        KvCache::new(&self.cfg, cap, self.kv_precision)
    }

    /// Sets the precision of caches made by [`Self::new_cache`].
    pub fn set_kv_precision(&mut self, p: KvPrecision) {
        self.kv_precision = p;
    }

    /// Shows every matrix product's input to `observer` from now on (`None`: stop).
    pub fn set_observer(&mut self, observer: Option<std::sync::Arc<dyn MatmulObserver>>) {
        self.observer = observer;
    }

    /// Shows the observer the input of layer `il` ([`layer_input_name`]), if it wants it.
    fn show_layer_input(&self, il: usize, x: &[f32], n: usize) {
        if let Some(o) = &self.observer {
            let name = layer_input_name(il);
            if o.wants(&name, n) {
                o.observe(&name, x, n, self.cfg.n_embd);
            }
        }
    }

    /// One matrix product, its input shown to the observer first.
    fn mm(&self, w: &Weight<'_>, x: &[f32], n: usize, out: &mut [f32]) -> Result<(), InferError> {
        if let Some(o) = &self.observer {
            if o.wants(&w.name, n) {
                o.observe(&w.name, x, n, w.k);
            }
        }
        matmul(w, x, n, out)
    }

    /// [`Self::mm`] of several weights over the same input (activations converted once).
    fn mm_shared(&self, jobs: &mut [(&Weight<'_>, &mut [f32])], x: &[f32], n: usize) -> Result<(), InferError> {
        if let Some(o) = &self.observer {
            for (w, _) in jobs.iter() {
                if o.wants(&w.name, n) {
                    o.observe(&w.name, x, n, w.k);
                }
            }
        }
        timing::span(timing::Op::Matmul, || linear::matmul_shared(jobs, x, n))
    }

    /// The dense gated FFN of `h` (n rows) into `o`; `g`, `u`: n × n_ff scratch.
    #[allow(clippy::too_many_arguments)]
    fn dense_ffn(
        &self,
        gate_up: &GateUp<'_>,
        down: &Weight<'_>,
        h: &[f32],
        n: usize,
        g: &mut [f32],
        u: &mut [f32],
        o: &mut [f32],
    ) -> Result<(), InferError> {
        let ff = self.cfg.n_ff;
        match gate_up {
            GateUp::Split { gate, up } => self.mm_shared(&mut [(gate, g), (up, u)], h, n)?,
            GateUp::Fused(w) => {
                let mut gu = vec![0.0f32; n * 2 * ff];
                self.mm(w, h, n, &mut gu)?;
                for (t, row) in gu.chunks_exact(2 * ff).enumerate() {
                    g[t * ff..(t + 1) * ff].copy_from_slice(&row[..ff]);
                    u[t * ff..(t + 1) * ff].copy_from_slice(&row[ff..]);
                }
            }
        }
        match self.cfg.activation {
            Activation::Silu => ops::swiglu_in_place(g, u),
            Activation::GeluTanh => {
                for (gv, &uv) in g.iter_mut().zip(u.iter()) {
                    *gv = ops::gelu_tanh(*gv) * uv;
                }
            }
        }
        self.mm(down, g, n, o)
    }

    /// Runs `tokens` at positions `pos..pos + n` (the cache must hold `0..pos`) and returns
    /// the logits of every token, `n × n_vocab`.
    pub fn forward(&self, tokens: &[u32], kv: &mut KvCache, pos: usize) -> Result<Vec<f32>, InferError> {
        self.forward_from(tokens, kv, pos, 0)
    }

    /// Like [`Self::forward`], but returns logits only for tokens `first..n`
    /// (`(n - first) × n_vocab`): the output projection is skipped for the others.
    pub fn forward_from(
        &self,
        tokens: &[u32],
        kv: &mut KvCache,
        pos: usize,
        first: usize,
    ) -> Result<Vec<f32>, InferError> {
        let mut logits = Vec::new();
        self.forward_append(tokens, kv, pos, first, &mut logits)?;
        Ok(logits)
    }

    /// [`Self::forward_from`], appending the logits to `logits`: a caller that runs many
    /// windows reuses one buffer (a fresh 50–100 MB vector per window is mapped and
    /// page-faulted anew each time).
    pub fn forward_append(
        &self,
        tokens: &[u32],
        kv: &mut KvCache,
        pos: usize,
        first: usize,
        logits: &mut Vec<f32>,
    ) -> Result<(), InferError> {
        self.forward_seqs_append(tokens, std::slice::from_mut(kv), pos, first, logits)
    }

    /// Several independent sequences of equal length in one pass (llama.cpp's batch of
    /// `n_seq` windows): `tokens` is `kvs.len()` sequences one after the other, sequence `s`
    /// at positions `pos..` of cache `kvs[s]`. Every matmul runs once over all their rows (the
    /// weights are unpacked once for all); RoPE, the cache and attention stay per sequence.
    /// Each row's numbers are those of a pass over its sequence alone. Appends, for each
    /// sequence in turn, the logits of its tokens `first..`.
    pub fn forward_seqs_append(
        &self,
        tokens: &[u32],
        kvs: &mut [KvCache],
        pos: usize,
        first: usize,
        logits: &mut Vec<f32>,
    ) -> Result<(), InferError> {
        let cfg = &self.cfg;
        let n_seq = kvs.len();
        if n_seq == 0 || !tokens.len().is_multiple_of(n_seq) {
            return Err(InferError::Unsupported {
                what: "batch of sequences",
                detail: format!("{} tokens do not split into {n_seq} equal sequences", tokens.len()),
            });
        }
        // n: rows of every activation matrix; per: tokens of one sequence.
        let n = tokens.len();
        let per = n / n_seq;
        let (d, qd, kvd, ff) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
        for kv in kvs.iter() {
            kv.check(cfg, pos, per)?;
        }
        let first = first.min(per);

        // x: [n × d]
        let mut x = vec![0.0f32; n * d];
        for (i, (&id, row)) in tokens.iter().zip(x.chunks_exact_mut(d)).enumerate() {
            if id as usize >= cfg.n_vocab {
                return Err(InferError::TokenOutOfRange { id, index: i, n_vocab: cfg.n_vocab });
            }
            self.token_embd.row_f32(id as usize, row)?;
            if let Some(s) = cfg.embed_scale {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }

        let mut h = vec![0.0f32; n * d];
        let mut q = vec![0.0f32; n * qd];
        let mut k = vec![0.0f32; n * kvd];
        let mut v = vec![0.0f32; n * kvd];
        let mut att = vec![0.0f32; n * qd];
        let mut o = vec![0.0f32; n * d];
        let mut g = vec![0.0f32; n * ff];
        let mut u = vec![0.0f32; n * ff];
        for (il, l) in self.layers.iter().enumerate() {
            self.show_layer_input(il, &x, n);
            // attention
            norm(cfg, &x, &l.attn_norm, &mut h);
            match &l.qkv {
                Qkv::Split { q: wq, k: wk, v: wv } => {
                    self.mm_shared(&mut [(wq, &mut q), (wk, &mut k), (wv, &mut v)], &h, n)?;
                }
                Qkv::Fused(w) => {
                    let mut qkv = vec![0.0f32; n * (qd + 2 * kvd)];
                    self.mm(w, &h, n, &mut qkv)?;
                    for (t, row) in qkv.chunks_exact(qd + 2 * kvd).enumerate() {
                        q[t * qd..(t + 1) * qd].copy_from_slice(&row[..qd]);
                        k[t * kvd..(t + 1) * kvd].copy_from_slice(&row[qd..qd + kvd]);
                        v[t * kvd..(t + 1) * kvd].copy_from_slice(&row[qd + kvd..]);
                    }
                }
            }
            for (buf, b) in [(&mut q, &l.bq), (&mut k, &l.bk), (&mut v, &l.bv)] {
                if let Some(b) = b {
                    ops::add_bias(buf, b);
                }
            }
            // Norm of each head before RoPE: qwen3/gemma3 RMSNorm (rows of head_dim, one shared
            // weight), command-r+ LayerNorm (one weight row per head).
            if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
                match cfg.norm {
                    NormKind::Rms => {
                        ops::rmsnorm_in_place(&mut q, qn, cfg.rms_eps);
                        ops::rmsnorm_in_place(&mut k, kn, cfg.rms_eps);
                    }
                    NormKind::Layer => {
                        ops::layernorm_heads_in_place(&mut q, qn, cfg.head_dim, cfg.rms_eps);
                        ops::layernorm_heads_in_place(&mut k, kn, cfg.head_dim, cfg.rms_eps);
                    }
                }
            }
            if cfg.layer_rotates(il) {
                let rope = cfg.layer_rope(il);
                for (s, kv) in kvs.iter().enumerate() {
                    let rope_ff = self.rope_factors_for(kv.cap);
                    let (qs, ks) =
                        (&mut q[s * per * qd..(s + 1) * per * qd], &mut k[s * per * kvd..(s + 1) * per * kvd]);
                    ops::apply_rope_ff(rope, rope_ff, qs, cfg.n_head, cfg.head_dim, pos);
                    ops::apply_rope_ff(rope, rope_ff, ks, cfg.n_head_kv, cfg.head_dim, pos);
                }
            }
            for (s, kv) in kvs.iter_mut().enumerate() {
                let rows = s * per * kvd..(s + 1) * per * kvd;
                kv.store(il, pos, &k[rows.clone()], &v[rows]);
            }
            let p = AttnParams {
                n_head: cfg.n_head,
                n_head_kv: cfg.n_head_kv,
                head_dim: cfg.head_dim,
                scale: cfg.attn_scale,
                softcap: cfg.attn_softcap,
                window: cfg.layer_window(il),
            };
            timing::span(timing::Op::Attention, || {
                for (s, (qs, os)) in q.chunks_exact(per * qd).zip(att.chunks_exact_mut(per * qd)).enumerate() {
                    attention(&p, qs, kvs[s].view(il), pos, os);
                }
            });
            self.mm(&l.wo, &att, n, &mut o)?;
            if let Some(b) = &l.bo {
                ops::add_bias(&mut o, b);
            }
            if let Some(w) = &l.post_attn_norm {
                ops::rmsnorm_in_place(&mut o, w, cfg.rms_eps);
            }
            ops::add_in_place(&mut x, &o);

            // feed-forward (parallel block: h still holds the attention's input norm)
            if let Some(w) = &l.ffn_norm {
                norm(cfg, &x, w, &mut h);
            }
            match &l.ffn {
                Ffn::Dense { gate_up, down } => {
                    self.dense_ffn(gate_up, down, &h, n, &mut g, &mut u, &mut o)?;
                }
                Ffn::Moe(block) => {
                    let m = cfg.moe.as_ref().expect("an MoE layer has an MoE config");
                    let observer = self.observer.as_deref();
                    block.forward(m, &|w, x, n, out| self.mm(w, x, n, out), &matmul, observer, &h, n, &mut o)?;
                }
            }
            if let Some(w) = &l.post_ffn_norm {
                ops::rmsnorm_in_place(&mut o, w, cfg.rms_eps);
            }
            ops::add_in_place(&mut x, &o);
        }
        kvs.iter_mut().for_each(|kv| kv.set_len(pos + per));

        // output: only rows first..per of each sequence
        let m = n_seq * (per - first);
        if m == 0 {
            return Ok(());
        }
        let mut hn = vec![0.0f32; m * d];
        let kept = (per - first) * d;
        for (s, hs) in hn.chunks_exact_mut(kept).enumerate() {
            norm(cfg, &x[(s * per + first) * d..(s + 1) * per * d], &self.output_norm, hs);
        }
        let base = logits.len();
        // Zeroed in parallel: 50–100 MB for a window's logits is a serial memset otherwise.
        logits.par_extend(rayon::iter::repeat_n(0.0f32, m * cfg.n_vocab));
        let logits = &mut logits[base..];
        self.mm(self.output.as_ref().unwrap_or(&self.token_embd), &hn, m, logits)?;
        if let Some(c) = cfg.final_softcap {
            ops::softcap(logits, c);
        }
        if let Some(s) = cfg.logit_scale {
            logits.iter_mut().for_each(|v| *v *= s);
        }
        Ok(())
    }
}
