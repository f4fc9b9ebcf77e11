//! The grid lookups of ggml's 2-bit and 1-bit i-quant quantizers (IQ2_XXS, IQ2_XS, IQ2_S,
//! IQ1_S, IQ1_M): ggml `iq2xs_init_impl` (`ggml-quants.c`), built once, lazily, from the
//! dequantization grids of `dequant/iq_tables.rs`.
//!
//! Every grid point is 8 levels l ∈ {0, 1, 2} (ggml's search grid stores them as 2l + 1;
//! IQ2's dequantization grid as the bytes 8, 25, 43, IQ1's as −1, 0, 1). A candidate point,
//! packed 2 bits per coordinate into u = Σ l_k·4^k (< 43692 = ggml `kmap_size`), is either on
//! the grid ([`GridSearch::lookup`] gives its index) or has a neighbour list: the grid points
//! at the `nwant` smallest distinct squared distances from it, in ggml's
//! order (ascending distance, then ascending index — ggml `qsort`s (distance, index) pairs,
//! a total order, so its result is unique). The distances are small integers, so a counting
//! pass replaces ggml's per-point sort.

use crate::dequant::iq_tables::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};
use std::sync::OnceLock;

/// ggml `kmap_size`: one more than the largest u (0xAAAA), rounded up as ggml has it.
const KMAP_SIZE: usize = 43692;
/// Largest Σ(l_g − l_u)² (8 coordinates, grid levels 0..=2, candidate levels 0..=3).
const MAX_D2: usize = 72;

/// Which grid: ggml `iq2_data_index` (IQ1_S and IQ1_M share one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Grid {
    Iq2Xxs,
    Iq2Xs,
    Iq2S,
    Iq1,
}

/// A grid with its map and neighbour lists (ggml `iq2_entry_t`).
pub(super) struct GridSearch {
    /// Per grid point its 8 levels l.
    pub levels: Box<[[u8; 8]]>,
    /// Per grid point its 8 IQ2 values 2l + 1 as f32 (ggml's search grid).
    pub odd: Box<[[f32; 8]]>,
    /// ggml `kmap_q2xs`: the grid index of u, or −(offset + 1) of u's list in `neighbours`.
    map: Box<[i32]>,
    /// ggml `kneighbors_q2xs`: per off-grid u its count n, then its n grid indices.
    neighbours: Box<[u16]>,
}

/// The result of [`GridSearch::lookup`].
pub(super) enum Lookup<'a> {
    /// u is grid point `index`.
    OnGrid(usize),
    /// u is off the grid; these are its neighbours (never empty).
    Neighbours(&'a [u16]),
}

impl GridSearch {
    /// The grid point or the neighbours of packed levels `u`; `None` when `u` is no packing of
    /// levels in {0, 1, 2} (only reachable from NaN input, where ggml aborts).
    #[inline]
    pub fn lookup(&self, u: usize) -> Option<Lookup<'_>> {
        let m = *self.map.get(u)?;
        if m >= 0 {
            return Some(Lookup::OnGrid(m as usize));
        }
        let start = (-m - 1) as usize;
        let n = self.neighbours[start] as usize;
        Some(Lookup::Neighbours(&self.neighbours[start + 1..start + 1 + n]))
    }

    fn build(grid: &[u64], byte_to_level: fn(u8) -> u8, nwant: usize) -> Self {
        let levels: Box<[[u8; 8]]> = grid.iter().map(|&g| g.to_le_bytes().map(byte_to_level)).collect();
        let odd = levels.iter().map(|l| l.map(|l| (2 * l + 1) as f32)).collect();
        let mut map = vec![-1i32; KMAP_SIZE].into_boxed_slice();
        for (i, l) in levels.iter().enumerate() {
            map[pack(l)] = i as i32;
        }
        // Per coordinate the levels of all grid points, so the distance loop vectorises.
        let by_coord: [Vec<u8>; 8] = std::array::from_fn(|k| levels.iter().map(|l| l[k]).collect());
        let mut neighbours = Vec::new();
        let mut d2 = vec![0u8; grid.len()];
        let mut near: Vec<u16> = Vec::new();
        for u in 0..KMAP_SIZE {
            if map[u] >= 0 {
                continue;
            }
            // ggml measures Σ((2l_g + 1) − (2l_u + 1))² = 4·Σ(l_g − l_u)²; the factor 4 changes
            // no order. (u may hold a level 3, ggml's position 7: unreachable, built anyway.)
            d2.fill(0);
            for (k, coord) in by_coord.iter().enumerate() {
                let p = ((u >> (2 * k)) & 3) as i8;
                for (d, &l) in d2.iter_mut().zip(coord) {
                    let diff = l as i8 - p;
                    *d += (diff * diff) as u8;
                }
            }
            let mut seen = [false; MAX_D2 + 1];
            for &d in &d2 {
                seen[d as usize] = true;
            }
            // The nwant-th smallest distance present; the points within it, by (distance, index).
            let limit = (0..=MAX_D2).filter(|&d| seen[d]).take(nwant).last().unwrap_or(0) as u8;
            near.clear();
            near.extend((0..grid.len() as u16).filter(|&j| d2[j as usize] <= limit));
            near.sort_by_key(|&j| d2[j as usize]); // stable: index order within a distance
            let start = neighbours.len();
            map[u] = -(start as i32 + 1);
            neighbours.push(0u16);
            neighbours.extend_from_slice(&near);
            neighbours[start] = (neighbours.len() - start - 1) as u16;
        }
        GridSearch { levels, odd, map, neighbours: neighbours.into_boxed_slice() }
    }
}

/// u = Σ l_k·4^k.
#[inline]
pub(super) fn pack(l: &[u8; 8]) -> usize {
    l.iter().enumerate().fold(0, |u, (k, &l)| u | (l as usize) << (2 * k))
}

/// IQ2 grid bytes 8, 25, 43 → levels 0, 1, 2.
fn iq2_level(b: u8) -> u8 {
    match b {
        0x08 => 0,
        0x19 => 1,
        _ => 2,
    }
}

/// IQ1 grid bytes −1, 0, 1 → levels 0, 1, 2.
fn iq1_level(b: u8) -> u8 {
    (b as i8 + 1) as u8
}

/// The lazily built search tables of `grid` (ggml `iq2xs_init_impl`; `nwant` = 2 for IQ2_XXS
/// and IQ2_XS, 1 for IQ2_S, 3 for IQ1_S and IQ1_M).
pub(super) fn grid_search(grid: Grid) -> &'static GridSearch {
    static TABLES: [OnceLock<GridSearch>; 4] = [OnceLock::new(), OnceLock::new(), OnceLock::new(), OnceLock::new()];
    match grid {
        Grid::Iq2Xxs => TABLES[0].get_or_init(|| GridSearch::build(&IQ2XXS_GRID, iq2_level, 2)),
        Grid::Iq2Xs => TABLES[1].get_or_init(|| GridSearch::build(&IQ2XS_GRID, iq2_level, 2)),
        Grid::Iq2S => TABLES[2].get_or_init(|| GridSearch::build(&IQ2S_GRID, iq2_level, 1)),
        Grid::Iq1 => TABLES[3].get_or_init(|| GridSearch::build(&IQ1S_GRID, iq1_level, 3)),
    }
}

/// ggml `MAX(a, b)`: `a > b ? a : b` (keeps `b` when either is NaN, unlike `f32::max`).
#[inline]
pub(super) fn c_max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The 7 sign bits of 8 values kept by IQ2_XXS and IQ2_XS (the 8th is implied by even
/// parity): `xval` = |x|, and when an odd number of the `x` are negative, the one of least
/// `weight·x²` (the first on ties) has its sign flipped (ggml's `nflip % 2` fix-up).
pub(super) fn even_parity_signs(x: &[f32], weight: &[f32], xval: &mut [f32]) -> u8 {
    let mut s = 0u8;
    let mut nflip = 0;
    for (i, (&v, xv)) in x.iter().zip(xval.iter_mut()).enumerate() {
        if v >= 0.0 {
            *xv = v;
        } else {
            *xv = -v;
            nflip += 1;
            s |= 1 << i;
        }
    }
    if nflip % 2 == 1 {
        let mut imin = 0;
        let mut min = weight[0] * x[0] * x[0];
        for i in 1..8 {
            let ax = weight[i] * x[i] * x[i];
            if ax < min {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= 1 << imin;
    }
    s & 127
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grid_point_maps_to_itself_and_lists_are_sorted() {
        for g in [Grid::Iq2Xxs, Grid::Iq2Xs, Grid::Iq2S, Grid::Iq1] {
            let t = grid_search(g);
            for (i, l) in t.levels.iter().enumerate() {
                assert!(matches!(t.lookup(pack(l)), Some(Lookup::OnGrid(j)) if j == i));
            }
            for u in 0..KMAP_SIZE {
                if let Some(Lookup::Neighbours(n)) = t.lookup(u) {
                    assert!(!n.is_empty());
                }
            }
        }
    }
}
