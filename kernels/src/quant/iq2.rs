//! The 2-bit i-quant row quantizers IQ2_XXS, IQ2_XS and IQ2_S with importance weights:
//! ggml `quantize_iq2_xxs` / `quantize_iq2_xs` / `quantize_iq2_s` (`ggml-quants.c`,
//! `quantize_row_iq2_*_impl`), operation for operation in f32, C's order, no fused
//! multiply-adds.
//!
//! Per super-block of 256: weights w = qw·√(σ² + x²) (σ² = Σx²/256, IQ2_S 2·Σx²/256; IQ2_S
//! without an imatrix uses σ²/4 + x²), the signs are split off (IQ2_XXS and IQ2_XS keep 7 of
//! every 8, forcing even parity), and each group of 32 (IQ2_XXS) or 16 values is fitted by a
//! scale and grid points: candidate inverse scales (5 + 0.1·is)/max (IQ2_XXS relative to
//! the `make_qp_quants` scale), every 8 values rounded to levels 0..=2 and moved to the best
//! neighbour when off the grid ([`super::iq_grid_search`]), the best weighted least-squares
//! fit kept, then requantized from that scale and refitted. The group scales are stored as
//! 4-bit multiples of max_scale/31 (IQ2_S's super-block scale times 0.9875, ggml's fudge).
//!
//! Not specified (ggml aborts or reads garbage there): NaN or infinite input. We then write
//! some valid block (a point that cannot be placed on the grid becomes grid point 0).

use super::iq_grid_search::{c_max, even_parity_signs, grid_search, pack, Grid, GridSearch, Lookup};
use super::k_search::{importance, make_qp_quants, nearest_int, sum_squares, GROUP_MAX_EPS};
use crate::dequant::k_quants::QK_K;
use half::f16;

/// ggml `kMaxQ`: levels 0..kMaxQ−1, grid values 2l + 1.
const K_MAX_Q: i32 = 3;
/// ggml `GROUP_MAX_EPS_IQ2_S`.
const GROUP_MAX_EPS_IQ2_S: f32 = 1e-8;

/// ggml `iq2_find_best_neighbour`: the neighbour of least Σ waux·(scale·q − x)², the first on
/// ties; writes its levels to `l` and returns its index.
fn best_neighbour(t: &GridSearch, neighbours: &[u16], xval: &[f32], waux: &[f32], scale: f32, l: &mut [i8]) -> usize {
    let mut best_d2 = f32::MAX;
    let mut best = None;
    for &j in neighbours {
        let q = &t.odd[j as usize];
        let mut d2 = 0.0f32;
        for i in 0..8 {
            let diff = scale * q[i] - xval[i];
            d2 += waux[i] * diff * diff;
        }
        if d2 < best_d2 {
            best_d2 = d2;
            best = Some(j as usize);
        }
    }
    // ggml asserts a neighbour was found (every distance NaN or above f32::MAX: NaN input).
    let index = best.unwrap_or(neighbours[0] as usize);
    for (o, &g) in l.iter_mut().zip(&t.levels[index]) {
        *o = g as i8;
    }
    index
}

/// Levels of 8 values at inverse scale `id` (ggml `nearest_int(0.5f*(id*x-1))` clamped to
/// 0..=2), moved to the best neighbour at scale `scale` when off the grid; true when on it.
fn quantize_8(t: &GridSearch, id: f32, scale: f32, xval: &[f32], waux: &[f32], l: &mut [i8]) -> bool {
    let mut lv = [0u8; 8];
    for ((o, p), &x) in l.iter_mut().zip(lv.iter_mut()).zip(xval) {
        let q = nearest_int(0.5f32 * (id * x - 1.0)).clamp(0, K_MAX_Q - 1);
        *o = q as i8;
        *p = q as u8;
    }
    match t.lookup(pack(&lv)) {
        Some(Lookup::Neighbours(n)) => {
            best_neighbour(t, n, xval, waux, scale, l);
            false
        }
        _ => true,
    }
}

/// ggml's `sumqx`, `sumq2` of levels `l` (values 2l + 1).
fn fit(weight: &[f32], xval: &[f32], l: &[i8]) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for ((&w, &x), &l) in weight.iter().zip(xval).zip(l) {
        let q = (2 * l as i32 + 1) as f32;
        sumqx += w * x * q;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// One group's values, magnitudes and weights.
struct Group<'a> {
    xval: &'a [f32],
    weight: &'a [f32],
    waux: &'a [f32],
}

/// The shared scale search of `quantize_row_iq2_*_impl` for one group: inverse scales
/// (5 + 0.1·is)/`ref_max`, is = −`steps`..=`steps`, starting from `scale` and levels `l`
/// (replaced by the best candidate's); then the groups of 8 that were off the grid (all of
/// them when `requantize_all`, IQ2_XXS) are requantized at the best scale and the scale is
/// refitted. Returns the scale (negative only when the fit is).
fn search(
    t: &GridSearch,
    g: &Group,
    ref_max: f32,
    steps: i32,
    mut scale: f32,
    l: &mut [i8],
    requantize_all: bool,
) -> f32 {
    let n = g.xval.len();
    let mut laux = [0i8; 32];
    let laux = &mut laux[..n];
    let mut on_grid = [true; 4];
    let mut on_grid_aux = [true; 4];
    let mut best = 0.0f32;
    for is in -steps..=steps {
        let id = ((2 * K_MAX_Q - 1) as f32 + is as f32 * 0.1f32) / ref_max;
        let this_scale = 1.0 / id;
        for (k, on_grid) in on_grid_aux[..n / 8].iter_mut().enumerate() {
            let r = 8 * k..8 * k + 8;
            *on_grid = quantize_8(t, id, this_scale, &g.xval[r.clone()], &g.waux[r.clone()], &mut laux[r]);
        }
        let (sumqx, sumq2) = fit(g.weight, g.xval, laux);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l.copy_from_slice(laux);
            on_grid = on_grid_aux;
        }
    }
    if requantize_all {
        on_grid = [false; 4];
    }
    if on_grid[..n / 8].iter().any(|&o| !o) && scale > 0.0 {
        let id = 1.0 / scale;
        for k in (0..n / 8).filter(|&k| !on_grid[k]) {
            let r = 8 * k..8 * k + 8;
            quantize_8(t, id, scale, &g.xval[r.clone()], &g.waux[r.clone()], &mut l[r]);
        }
        let (sumqx, sumq2) = fit(g.weight, g.xval, l);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    scale
}

/// The grid index of 8 levels (ggml aborts when they are off the grid: NaN input only).
fn grid_index(t: &GridSearch, l: &[i8]) -> usize {
    let lv: [u8; 8] = std::array::from_fn(|i| l[i] as u8);
    match t.lookup(pack(&lv)) {
        Some(Lookup::OnGrid(i)) => i,
        _ => 0,
    }
}

/// `max(x)` the C way (ggml `MAX` from `x[0]`).
fn c_max_of(x: &[f32]) -> f32 {
    x[1..].iter().fold(x[0], |m, &v| c_max(m, v))
}

/// 4-bit group scales: ggml `nearest_int(0.5f*(id*scale-1))` clamped to 0..=15.
fn scale_nibble(id: f32, scale: f32) -> u8 {
    nearest_int(0.5f32 * (id * scale - 1.0)).clamp(0, 15) as u8
}

/// ggml `quantize_row_iq2_xxs_impl` for one row (66 bytes per 256 values; `qw` required).
pub(super) fn quantize_row_iq2_xxs(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    let qw = qw.expect("IQ2_XXS needs importance weights (ggml asserts)");
    let t = grid_search(Grid::Iq2Xxs);
    for ((xbl, qwbl), y) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(out.chunks_exact_mut(66)) {
        let mut q2 = [0u32; QK_K / 16];
        let mut scales = [0.0f32; QK_K / 32];
        let mut max_scale = 0.0f32;
        let sigma2 = sum_squares(xbl) / QK_K as f32;
        for (ib, (xb, qwb)) in xbl.chunks_exact(32).zip(qwbl.chunks_exact(32)).enumerate() {
            let weight: [f32; 32] = importance(qwb, xb, sigma2);
            let waux = weight.map(f32::sqrt);
            let mut xval = [0.0f32; 32];
            let mut signs = [0u8; 4];
            for (k, s) in signs.iter_mut().enumerate() {
                let r = 8 * k..8 * k + 8;
                *s = even_parity_signs(&xb[r.clone()], &weight[r.clone()], &mut xval[r]);
            }
            if c_max_of(&xval) < GROUP_MAX_EPS {
                continue;
            }
            let mut lq = [0u8; 32];
            let scale = make_qp_quants(K_MAX_Q + 1, &xval, &mut lq, &weight);
            let eff_max = scale * K_MAX_Q as f32;
            if eff_max <= 0.0 {
                continue;
            }
            let mut l = lq.map(|v| v as i8);
            let g = Group { xval: &xval, weight: &weight, waux: &waux };
            let mut scale = search(t, &g, eff_max, 6, scale, &mut l, true);
            if scale < 0.0 {
                scale = -scale;
                signs = signs.map(|s| !s & 127);
            }
            for k in 0..4 {
                q2[2 * ib] |= (grid_index(t, &l[8 * k..8 * k + 8]) as u32) << (8 * k);
                q2[2 * ib + 1] |= (signs[k] as u32) << (7 * k);
            }
            scales[ib] = scale;
            max_scale = c_max(max_scale, scale);
        }
        y.fill(0);
        if max_scale == 0.0 {
            continue;
        }
        let d = max_scale / 31.0;
        y[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        let id = 1.0 / d;
        for (ib, &s) in scales.iter().enumerate() {
            q2[2 * ib + 1] |= (scale_nibble(id, s) as u32) << 28;
        }
        for (o, q) in y[2..].chunks_exact_mut(4).zip(q2) {
            o.copy_from_slice(&q.to_le_bytes());
        }
    }
}

/// One 16-value group of IQ2_XS / IQ2_S: its scale (≥ 0) and grid indices, the signs
/// inverted when the fit is negative; `None` for a group whose max is below `eps` (left zero).
fn group_16(
    t: &GridSearch,
    xval: &[f32; 16],
    weight: &[f32; 16],
    eps: f32,
    signs: &mut [u8; 2],
) -> Option<(f32, [usize; 2])> {
    let max = c_max_of(xval);
    if max < eps {
        return None;
    }
    let waux = weight.map(f32::sqrt);
    let mut l = [0i8; 16];
    let g = Group { xval, weight, waux: &waux };
    let mut scale = search(t, &g, max, 9, max / (2 * K_MAX_Q - 1) as f32, &mut l, false);
    if scale < 0.0 {
        scale = -scale;
        *signs = signs.map(|s| !s);
    }
    Some((scale, [grid_index(t, &l[..8]), grid_index(t, &l[8..])]))
}

/// The f16 super-block scale bits and 16 packed 4-bit group scales of IQ2_XS / IQ2_S, `None`
/// when every group scale is 0 (ggml `if (!max_scale)`).
fn scales_16(scales: &[f32; 16], max_scale: f32, fudge: f32) -> Option<([u8; 2], [u8; 8])> {
    if max_scale == 0.0 {
        return None;
    }
    let d = max_scale / 31.0;
    let id = 1.0 / d;
    let mut packed = [0u8; 8];
    for (ib, &s) in scales.iter().enumerate() {
        packed[ib / 2] |= scale_nibble(id, s) << (4 * (ib % 2));
    }
    Some((f16::from_f32(d * fudge).to_le_bytes(), packed))
}

/// ggml `quantize_row_iq2_xs_impl` for one row (74 bytes per 256 values; `qw` required).
pub(super) fn quantize_row_iq2_xs(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    let qw = qw.expect("IQ2_XS needs importance weights (ggml asserts)");
    let t = grid_search(Grid::Iq2Xs);
    for ((xbl, qwbl), y) in x.chunks_exact(QK_K).zip(qw.chunks_exact(QK_K)).zip(out.chunks_exact_mut(74)) {
        let mut q2 = [0u16; QK_K / 8];
        let mut scales = [0.0f32; 16];
        let mut max_scale = 0.0f32;
        let sigma2 = sum_squares(xbl) / QK_K as f32;
        for (ib, (xb, qwb)) in xbl.chunks_exact(16).zip(qwbl.chunks_exact(16)).enumerate() {
            let weight: [f32; 16] = importance(qwb, xb, sigma2);
            let mut xval = [0.0f32; 16];
            let mut signs = [0u8; 2];
            for (k, s) in signs.iter_mut().enumerate() {
                let r = 8 * k..8 * k + 8;
                *s = even_parity_signs(&xb[r.clone()], &weight[r.clone()], &mut xval[r]);
            }
            let Some((scale, index)) = group_16(t, &xval, &weight, GROUP_MAX_EPS, &mut signs) else { continue };
            for k in 0..2 {
                q2[2 * ib + k] = index[k] as u16 | ((signs[k] & 127) as u16) << 9;
            }
            scales[ib] = scale;
            max_scale = c_max(max_scale, scale);
        }
        y.fill(0);
        let Some((d, packed)) = scales_16(&scales, max_scale, 1.0) else { continue };
        y[..2].copy_from_slice(&d);
        for (o, q) in y[2..66].chunks_exact_mut(2).zip(q2) {
            o.copy_from_slice(&q.to_le_bytes());
        }
        y[66..].copy_from_slice(&packed);
    }
}

/// ggml `quantize_row_iq2_s_impl` for one row (82 bytes per 256 values); without `qw` the
/// weights are σ²/4 + x² (ggml's NULL-imatrix path, what llama-quantize runs then).
pub(super) fn quantize_row_iq2_s(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    let t = grid_search(Grid::Iq2S);
    for (ibl, (xbl, y)) in x.chunks_exact(QK_K).zip(out.chunks_exact_mut(82)).enumerate() {
        y.fill(0);
        let mut scales = [0.0f32; 16];
        let mut max_scale = 0.0f32;
        let sigma2 = 2.0 * sum_squares(xbl) / QK_K as f32;
        for (ib, xb) in xbl.chunks_exact(16).enumerate() {
            let weight: [f32; 16] = match qw {
                Some(qw) => importance(&qw[QK_K * ibl + 16 * ib..], xb, sigma2),
                None => std::array::from_fn(|i| 0.25f32 * sigma2 + xb[i] * xb[i]),
            };
            let mut xval = [0.0f32; 16];
            let mut signs = [0u8; 2];
            for (k, s) in signs.iter_mut().enumerate() {
                for i in 0..8 {
                    let v = xb[8 * k + i];
                    if v >= 0.0 {
                        xval[8 * k + i] = v;
                    } else {
                        xval[8 * k + i] = -v;
                        *s |= 1 << i;
                    }
                }
            }
            let Some((scale, index)) = group_16(t, &xval, &weight, GROUP_MAX_EPS_IQ2_S, &mut signs) else { continue };
            for k in 0..2 {
                let i8 = 2 * ib + k;
                y[2 + i8] = (index[k] & 255) as u8;
                y[66 + i8 / 4] |= ((index[k] >> 8) << (2 * (i8 % 4))) as u8;
                y[2 + QK_K / 8 + i8] = signs[k];
            }
            scales[ib] = scale;
            max_scale = c_max(max_scale, scale);
        }
        let Some((d, packed)) = scales_16(&scales, max_scale, 0.9875) else { continue };
        y[..2].copy_from_slice(&d);
        y[74..].copy_from_slice(&packed);
    }
}
