//! IQ3_XXS and IQ3_S quantizers: ggml `quantize_iq3_xxs` / `quantize_iq3_s`
//! (`quantize_row_iq3_xxs_impl(256, …)`, `quantize_row_iq3_s_impl(32, …)`) with importance
//! weights or without (weights x²). All in f32, C's order, no fused multiply-adds.
//!
//! Per block of 32: weights w (`qw·√(σ² + x²)`, σ² = 2·Σx²/256 over the super-block, or x²),
//! the signs split off (IQ3_XXS stores 7 sign bits per 8 values, so when an 8-group has an
//! odd number of negatives the element of least w·x² is flipped to keep the parity even);
//! then for 31 (IQ3_XXS) or 19 (IQ3_S) candidate inverse scales (15 + 0.2·is)/max the levels
//! l = nearest((id·|x| − 1)/2) ∈ 0..8 of each 4 values, replaced by the best neighbour on
//! the grid (`iq3_grid.rs`) when the point is off it, keeping the candidate of the best
//! weighted least-squares fit; groups that were off the grid are redone with the fitted
//! scale and the scale refitted. The block scales are stored as 4 bits against
//! d = max_scale / 31 (f16 of d·1.0125 for IQ3_XXS, d·1.033 for IQ3_S — ggml's fudge factors).
//!
//! IQ3_S quirk kept for byte identity: ggml advances its grid-index and sign pointers only
//! past blocks it quantized, so after an all-zero block of 32 the later blocks' indices and
//! signs land one block earlier (their high index bits and scales stay in place).

use super::iq3_grid::{iq3_s, iq3_xxs, pack, Cell, Iq3Grid};
use super::iq4_nl::weights;
use super::k_search::nearest_int;
use crate::dequant::{BlockIQ3_S, BlockIQ3_XXS};
use half::f16;

const QK_K: usize = 256;
/// ggml `GROUP_MAX_EPS_IQ3_XXS`.
const GROUP_MAX_EPS_IQ3_XXS: f32 = 1e-8;
/// ggml `kMaxQ`: levels 0..8.
const K_MAX_Q: i32 = 8;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Xxs,
    S,
}

/// One block of 32 ready for the search.
struct Block {
    /// |x| (IQ3_XXS: one element per odd 8-group negated back, see the module docs).
    xval: [f32; 32],
    weight: [f32; 32],
    /// √weight, the neighbour search's weights.
    waux: [f32; 32],
    /// One sign byte per 8 values (IQ3_XXS: 7 bits).
    signs: [u8; 4],
}

fn prepare(kind: Kind, xb: &[f32], qw: Option<&[f32]>, sigma2: f32) -> Block {
    let xb: &[f32; 32] = xb.try_into().expect("a block of 32");
    let weight = weights(xb, qw, sigma2);
    let waux = weight.map(f32::sqrt);
    let mut xval = [0.0f32; 32];
    let mut signs = [0u8; 4];
    for (k, s) in signs.iter_mut().enumerate() {
        let mut nflip = 0;
        for i in 0..8 {
            let v = xb[8 * k + i];
            if v >= 0.0 {
                xval[8 * k + i] = v;
            } else {
                xval[8 * k + i] = -v;
                nflip += 1;
                *s |= 1 << i;
            }
        }
        if kind == Kind::Xxs {
            if nflip % 2 == 1 {
                let cost = |i: usize| weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                let (mut imin, mut min) = (0, cost(0));
                for i in 1..8 {
                    if cost(i) < min {
                        min = cost(i);
                        imin = i;
                    }
                }
                xval[8 * k + imin] = -xval[8 * k + imin];
                *s ^= 1 << imin;
            }
            *s &= 127;
        }
    }
    Block { xval, weight, waux, signs }
}

/// C's `MAX(a, b)`: `a > b ? a : b`.
fn c_max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `nearest((id·x − 1)/2)` clamped to the levels.
fn level(id: f32, x: f32) -> u8 {
    nearest_int(0.5 * (id * x - 1.0)).clamp(0, K_MAX_Q - 1) as u8
}

/// The levels of group `k` (4 values) at inverse scale `id`, moved to the best neighbour
/// (at `scale`) when off the grid; true when they were on it.
fn group_levels(g: &Iq3Grid, b: &Block, k: usize, id: f32, scale: f32, l: &mut [u8]) -> bool {
    let r = 4 * k..4 * k + 4;
    for (o, &x) in l[r.clone()].iter_mut().zip(&b.xval[r.clone()]) {
        *o = level(id, x);
    }
    match g.map[pack(&l[r.clone()])] {
        Cell::On(_) => true,
        Cell::Off { start, len } => {
            g.best_neighbour(start, len, &b.xval[r.clone()], &b.waux[r.clone()], scale, &mut l[r]);
            false
        }
    }
}

/// Σ w·x·q and Σ w·q² for levels `l` (q = 2l + 1).
fn fit(b: &Block, l: &[u8; 32]) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for (i, &li) in l.iter().enumerate() {
        let (w, q) = (b.weight[i], (2 * li as i32 + 1) as f32);
        sumqx += w * b.xval[i] * q;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// The scale search of one block (with `max` = the largest `xval`, above the skip
/// threshold): returns the scale and writes the levels (all on the grid) to `l`.
fn search(kind: Kind, g: &Iq3Grid, b: &Block, max: f32, l: &mut [u8; 32]) -> f32 {
    let steps = if kind == Kind::Xxs { 15 } else { 9 };
    let mut best = 0.0f32;
    let mut scale = max / (2 * K_MAX_Q - 1) as f32;
    // IQ3_XXS starts with every group "on the grid", IQ3_S with none (ggml).
    let mut on_grid = [kind == Kind::Xxs; 8];
    let mut laux = [0u8; 32];
    let mut on_aux = [false; 8];
    for is in -steps..=steps {
        let id = ((2 * K_MAX_Q - 1) as f32 + is as f32 * 0.2f32) / max;
        let this_scale = 1.0 / id;
        for (k, on) in on_aux.iter_mut().enumerate() {
            *on = group_levels(g, b, k, id, this_scale, &mut laux);
        }
        let (sumqx, sumq2) = fit(b, &laux);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            *l = laux;
            on_grid = on_aux;
        }
    }
    if on_grid.contains(&false) && scale > 0.0 {
        let id = 1.0 / scale;
        for (k, &on) in on_grid.iter().enumerate() {
            // ggml's IQ3_XXS redoes only the groups that were off the grid, IQ3_S all.
            if kind == Kind::Xxs && on {
                continue;
            }
            group_levels(g, b, k, id, scale, l);
        }
        let (sumqx, sumq2) = fit(b, l);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    scale
}

/// The grid index of group `k` of `l` (on the grid by construction).
fn grid_index(g: &Iq3Grid, l: &[u8; 32], k: usize) -> u16 {
    g.index_of(&l[4 * k..4 * k + 4]).expect("the IQ3 search ends on the grid")
}

/// σ² of a super-block, ggml's `2*sumx2/QK_K`.
fn sigma2(x: &[f32]) -> f32 {
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    2.0 * sumx2 / QK_K as f32
}

/// The 4-bit block scale of `scale` against `id` = 1/d.
fn scale_code(id: f32, scale: f32) -> u8 {
    nearest_int(0.5 * (id * scale - 1.0)).clamp(0, 15) as u8
}

fn quantize_xxs(x: &[f32], qw: Option<&[f32]>) -> BlockIQ3_XXS {
    let g = iq3_xxs();
    let sigma2 = sigma2(x);
    let mut qs = [0u8; 96];
    let mut scales = [0.0f32; 8];
    let mut max_scale = 0.0f32;
    for (ib, s) in scales.iter_mut().enumerate() {
        let r = 32 * ib..32 * ib + 32;
        let b = prepare(Kind::Xxs, &x[r.clone()], qw.map(|w| &w[r]), sigma2);
        let max = b.xval[1..].iter().fold(b.xval[0], |m, &v| c_max(m, v));
        if max < GROUP_MAX_EPS_IQ3_XXS {
            continue;
        }
        let mut l = [0u8; 32];
        let mut scale = search(Kind::Xxs, g, &b, max, &mut l);
        let mut signs = b.signs;
        if scale < 0.0 {
            // ggml: "should never happen"; flip the scale and the signs.
            scale = -scale;
            signs = signs.map(|s| !s & 127);
        }
        for k in 0..8 {
            qs[8 * ib + k] = grid_index(g, &l, k) as u8;
        }
        let aux = signs[0] as u32 | (signs[1] as u32) << 7 | (signs[2] as u32) << 14 | (signs[3] as u32) << 21;
        qs[64 + 4 * ib..68 + 4 * ib].copy_from_slice(&aux.to_le_bytes());
        *s = scale;
        max_scale = c_max(max_scale, scale);
    }
    if max_scale == 0.0 {
        return BlockIQ3_XXS { d: f16::ZERO, qs: [0; 96] };
    }
    let d = max_scale / 31.0;
    let id = 1.0 / d;
    for (ib, &s) in scales.iter().enumerate() {
        qs[64 + 4 * ib + 3] |= scale_code(id, s) << 4;
    }
    BlockIQ3_XXS { d: f16::from_f32(d * 1.0125f32), qs }
}

fn quantize_s(x: &[f32], qw: Option<&[f32]>) -> BlockIQ3_S {
    let g = iq3_s();
    let sigma2 = sigma2(x);
    let mut y = BlockIQ3_S { d: f16::ZERO, qs: [0; 64], qh: [0; 8], signs: [0; 32], scales: [0; 4] };
    let mut scales = [0.0f32; 8];
    let mut max_scale = 0.0f32;
    // Blocks written so far: where ggml's advancing `qs` and `signs` pointers stand.
    let mut n_done = 0;
    for (ib, s) in scales.iter_mut().enumerate() {
        let r = 32 * ib..32 * ib + 32;
        let b = prepare(Kind::S, &x[r.clone()], qw.map(|w| &w[r]), sigma2);
        let max = b.xval[1..].iter().fold(b.xval[0], |m, &v| c_max(m, v));
        if max == 0.0 {
            continue;
        }
        let mut l = [0u8; 32];
        let mut scale = search(Kind::S, g, &b, max, &mut l);
        let mut signs = b.signs;
        if scale < 0.0 {
            scale = -scale;
            signs = signs.map(|s| !s);
        }
        for k in 0..8 {
            let index = grid_index(g, &l, k);
            y.qs[8 * n_done + k] = index as u8;
            y.qh[ib] |= ((index >> 8) as u8) << k;
        }
        y.signs[4 * n_done..4 * n_done + 4].copy_from_slice(&signs);
        n_done += 1;
        *s = scale;
        max_scale = c_max(max_scale, scale);
    }
    if max_scale == 0.0 {
        return y;
    }
    let d = max_scale / 31.0;
    y.d = f16::from_f32(d * 1.033f32);
    let id = 1.0 / d;
    for (o, pair) in y.scales.iter_mut().zip(scales.chunks_exact(2)) {
        *o = scale_code(id, pair[0]) | scale_code(id, pair[1]) << 4;
    }
    y
}

/// ggml `quantize_iq3_xxs` for one row (a [`super::RowFn`]).
pub(super) fn quantize_row_xxs(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    row(x, qw, out, quantize_xxs);
}

/// ggml `quantize_iq3_s` for one row (a [`super::RowFn`]).
pub(super) fn quantize_row_s(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    row(x, qw, out, quantize_s);
}

fn row<B: bytemuck::Pod>(x: &[f32], qw: Option<&[f32]>, out: &mut [u8], block: fn(&[f32], Option<&[f32]>) -> B) {
    let size = std::mem::size_of::<B>();
    for (ibl, (xb, o)) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(size)).enumerate() {
        let qw = qw.map(|w| &w[QK_K * ibl..QK_K * ibl + QK_K]);
        o.copy_from_slice(bytemuck::bytes_of(&block(xb, qw)));
    }
}
