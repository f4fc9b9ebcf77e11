//! Causal multi-head attention over a key/value cache, fused and packing-free: per head and
//! register block of query rows, S = Q·Kᵀ·scale, (soft-cap), mask, softmax per row and
//! O = P·V run in one pass over cache layouts chosen so that no operand is ever copied or
//! repacked (the sgemm path it replaces packed K, P and V for every 64-query tile, which
//! measured a quarter of single-thread perplexity time on SmolLM2 at ctx 512).
//!
//! Cache layouts ([`KvView`]): keys **transposed** per KV head, `[kv_head][dim][key]` with a
//! row stride of [`key_stride`]`(cap)` positions (a multiple of 16), so 8 or 16 consecutive
//! keys of one dimension are one vector load; values natural, `[kv_head][position][dim]`, so a
//! value row is `head_dim / W` vector loads.
//!
//! - Q·Kᵀ: a register tile of `R` query rows × `N` vectors of keys; per dimension `d`, `N` key
//!   loads and `R` broadcasts of `q[r][d]` feed `R·N` FMAs (no horizontal sums).
//! - P·V: a register tile of `R` rows × `N` vectors of output dimensions; per key `j`, `N`
//!   value loads and `R` broadcasts of `p[r][j]`.
//!
//! Every output element is the same chain of single-rounding FMAs, in the same order, as the
//! scalar [`attention_reference`] (`acc = q[d]·k[d] + acc` over `d`, then `· scale`; softmax by
//! one shared function; `acc = p[j]·v[j] + acc` over the visible keys `j`), so the SIMD paths
//! are tested for **equality** with it. A register block's key range is the union of its rows'
//! visible ranges; the extra keys of a row get probability +0, and `+0·v + acc` leaves `acc`
//! unchanged for finite `v` (only the sign of a zero can differ).

mod simd;

use crate::matmul::Isa;
use crate::shared_out::SharedOut;
use crate::vexp;
use rayon::prelude::*;
use std::cell::RefCell;

/// Geometry and options of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttnParams {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
    /// Keys at distance >= window from the query are masked.
    pub window: Option<usize>,
}

/// Positions per row of the transposed key cache: `cap` rounded up to a multiple of 16, so a
/// vector load of 8 or 16 keys that starts at a multiple of its width stays inside the row.
pub fn key_stride(cap: usize) -> usize {
    cap.next_multiple_of(16)
}

/// One layer's cache as attention reads it.
#[derive(Debug, Clone, Copy)]
pub struct KvView<'a> {
    /// `[kv_head][dim][key]`, row stride [`key_stride`]`(cap)`.
    pub keys_t: &'a [f32],
    /// `[kv_head][position][dim]`, `cap` positions per head.
    pub values: &'a [f32],
    /// Positions per head.
    pub cap: usize,
}

/// Query rows per parallel task (a multiple of every register-block height).
const TASK_ROWS: usize = 48;

/// Causal attention of `q` (`n_tokens × n_head·head_dim`, query t at absolute position
/// `pos0 + t`) over a cache holding at least positions `0..pos0 + n_tokens`; `out` is
/// `n_tokens × n_head·head_dim`. The fastest instruction set of this CPU.
pub fn attention(p: &AttnParams, q: &[f32], kv: KvView, pos0: usize, out: &mut [f32]) {
    attention_with(p, q, kv, pos0, out, Isa::best())
}

/// [`attention`] on an explicit instruction set (tests compare them): AVX-512 for
/// `Avx512Vnni`, AVX2 + FMA for `Avx2`/`AvxVnni`, the reference for `Scalar` or when `isa`
/// is not available.
pub fn attention_with(p: &AttnParams, q: &[f32], kv: KvView, pos0: usize, out: &mut [f32], isa: Isa) {
    let geom = Geometry::new(p, q, kv, pos0, out);
    let kernel = simd::pick(if isa.available() { isa } else { Isa::Scalar });
    let Some(kernel) = kernel else {
        return attention_reference(p, q, kv, pos0, out);
    };
    let tasks = geom.n.div_ceil(TASK_ROWS);
    let out_ptr = SharedOut::new(out);
    (0..p.n_head * tasks).into_par_iter().for_each(|job| {
        let (tile, h) = (job / p.n_head, job % p.n_head);
        let rows = tile * TASK_ROWS..((tile + 1) * TASK_ROWS).min(geom.n);
        SCRATCH.with(|s| {
            // SAFETY: the kernel was picked for an available instruction set; `Geometry::new`
            // checked every buffer against the geometry; tasks write disjoint (row, head)
            // slices of `out`.
            unsafe { kernel(&geom, q.as_ptr(), kv, out_ptr.get(), h, rows, &mut s.borrow_mut()) }
        });
    });
}

thread_local! {
    /// Scores of one register block (`R` rows of the block's key range) and the discarded
    /// output rows of a partial block; grown, never shrunk.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The checked shape of one call.
pub(crate) struct Geometry {
    pub n: usize,
    pub hd: usize,
    pub group: usize,
    pub kstride: usize,
    pub q_row: usize,
    pub pos0: usize,
    pub scale: f32,
    pub softcap: Option<f32>,
    pub window: Option<usize>,
    pub cap: usize,
}

impl Geometry {
    fn new(p: &AttnParams, q: &[f32], kv: KvView, pos0: usize, out: &[f32]) -> Geometry {
        let hd = p.head_dim;
        let q_row = p.n_head * hd;
        assert!(
            hd > 0 && p.n_head_kv > 0 && p.n_head.is_multiple_of(p.n_head_kv),
            "attention: bad head geometry {p:?}"
        );
        assert!(q.len().is_multiple_of(q_row) && out.len() == q.len(), "attention: q/out lengths");
        let n = q.len() / q_row;
        let kstride = key_stride(kv.cap);
        assert!(pos0 + n <= kv.cap, "attention: positions {}..{} past the cache's {}", pos0, pos0 + n, kv.cap);
        assert!(kv.keys_t.len() == p.n_head_kv * hd * kstride, "attention: key cache length");
        assert!(kv.values.len() == p.n_head_kv * kv.cap * hd, "attention: value cache length");
        Geometry {
            n,
            hd,
            group: p.n_head / p.n_head_kv,
            kstride,
            q_row,
            pos0,
            scale: p.scale,
            softcap: p.softcap,
            window: p.window,
            cap: kv.cap,
        }
    }

    /// The first key visible from position `i` (keys `lo(i)..=i` are).
    pub fn lo(&self, i: usize) -> usize {
        self.window.map_or(0, |w| (i + 1).saturating_sub(w))
    }
}

/// Soft-cap, softmax over `row[lo..hi]` (max, e^(x − max) summed in f64, times 1/Σ as f32) and
/// +0 over the rest of `row` — the one softmax of both the reference and the SIMD paths.
pub(crate) fn softmax_visible(row: &mut [f32], lo: usize, hi: usize, softcap: Option<f32>) {
    let vis = &mut row[lo..hi];
    if let Some(c) = softcap {
        vis.iter_mut().for_each(|v| *v = c * (*v / c).tanh());
    }
    let max = vexp::max(vis);
    let sum = vexp::exp_sub_sum(vis, max);
    let inv = (1.0 / sum) as f32;
    vis.iter_mut().for_each(|v| *v *= inv);
    row[..lo].fill(0.0);
    row[hi..].fill(0.0);
}

/// The specification: per head and query, scores by an FMA chain over the dimensions in
/// order, [`softmax_visible`], then each output dimension by an FMA chain over the visible
/// keys in order.
pub fn attention_reference(p: &AttnParams, q: &[f32], kv: KvView, pos0: usize, out: &mut [f32]) {
    let g = Geometry::new(p, q, kv, pos0, out);
    let hd = g.hd;
    let mut s = Vec::new();
    for t in 0..g.n {
        let i = pos0 + t;
        let (lo, hi) = (g.lo(i), i + 1);
        for h in 0..p.n_head {
            let kvh = h / g.group;
            let qh = &q[t * g.q_row + h * hd..][..hd];
            let kt = &kv.keys_t[kvh * hd * g.kstride..][..hd * g.kstride];
            s.clear();
            s.extend((lo..hi).map(|j| {
                let dot = (0..hd).fold(0.0f32, |acc, d| qh[d].mul_add(kt[d * g.kstride + j], acc));
                dot * g.scale
            }));
            softmax_visible(&mut s, 0, hi - lo, g.softcap);
            let vh = &kv.values[kvh * g.cap * hd..];
            for (c, o) in out[t * g.q_row + h * hd..][..hd].iter_mut().enumerate() {
                *o = (lo..hi).fold(0.0f32, |acc, j| s[j - lo].mul_add(vh[j * hd + c], acc));
            }
        }
    }
}

#[cfg(test)]
mod tests;
