//! The IQ3 quantizers' search tables: ggml `iq3xs_init_impl(256 | 512)` (`ggml-quants.c`),
//! built once, lazily, from the dequantization grids.
//!
//! A grid point is 4 levels l ∈ 0..8 (values 2l + 1); `u = l₀ | l₁<<3 | l₂<<6 | l₃<<9`
//! indexes the 4096 possible points. For a point on the grid, the map gives its grid index;
//! for one off the grid, a list of neighbours: the grid points at the 2 (IQ3_XXS, 256
//! points) or 3 (IQ3_S, 512 points) smallest squared distances, ordered by (distance, grid
//! index) — ggml sorts with `qsort` on that pair, a total order, so the unstable sort of C
//! and ours give the same list.

use crate::dequant::{IQ3S_GRID, IQ3XXS_GRID};
use std::sync::OnceLock;

/// What a point `u` is: on the grid (its index) or off it (its neighbours'
/// `start..start + len` in [`Iq3Grid::neighbours`]).
#[derive(Clone, Copy)]
pub(super) enum Cell {
    On(u16),
    Off { start: u32, len: u16 },
}

pub(super) struct Iq3Grid {
    /// Levels (0..8) of each grid point.
    pub levels: Vec<[u8; 4]>,
    /// Values 2l + 1 of each grid point, as f32 (ggml's `float q = pg[i]`).
    pub values: Vec<[f32; 4]>,
    /// The 4096 points.
    pub map: Vec<Cell>,
    pub neighbours: Vec<u16>,
}

impl Iq3Grid {
    /// The grid index of the point with these levels, if it is on the grid.
    pub fn index_of(&self, l: &[u8]) -> Option<u16> {
        match self.map[pack(l)] {
            Cell::On(i) => Some(i),
            Cell::Off { .. } => None,
        }
    }

    /// ggml `iq3_find_best_neighbour`: among the neighbours of off-grid point `u`, the first
    /// with the smallest Σ w·(scale·q − x)²; writes its levels to `l` and returns its index.
    pub fn best_neighbour(&self, start: u32, len: u16, x: &[f32], w: &[f32], scale: f32, l: &mut [u8]) -> u16 {
        let list = &self.neighbours[start as usize..start as usize + len as usize];
        let (mut best_d2, mut best) = (f32::MAX, list[0]);
        for &j in list {
            let q = &self.values[j as usize];
            let mut d2 = 0.0f32;
            for i in 0..4 {
                let diff = scale * q[i] - x[i];
                d2 += w[i] * diff * diff;
            }
            if d2 < best_d2 {
                best_d2 = d2;
                best = j;
            }
        }
        l[..4].copy_from_slice(&self.levels[best as usize]);
        best
    }
}

/// `u` of 4 levels.
pub(super) fn pack(l: &[u8]) -> usize {
    l[..4].iter().enumerate().fold(0, |u, (i, &v)| u | (v as usize) << (3 * i))
}

/// The IQ3_XXS tables (256 points, neighbours at the 2 nearest distances).
pub(super) fn iq3_xxs() -> &'static Iq3Grid {
    static GRID: OnceLock<Iq3Grid> = OnceLock::new();
    // `iq3xxs_grid` stores the levels as the dequantization values 4, 12, …, 52, 62.
    const VALUES: [u8; 8] = [4, 12, 20, 28, 36, 44, 52, 62];
    GRID.get_or_init(|| {
        let levels = IQ3XXS_GRID
            .iter()
            .map(|g| g.to_le_bytes().map(|b| VALUES.iter().position(|&v| v == b).expect("an iq3xxs_grid value") as u8));
        build(levels.collect(), 2)
    })
}

/// The IQ3_S tables (512 points, neighbours at the 3 nearest distances).
pub(super) fn iq3_s() -> &'static Iq3Grid {
    static GRID: OnceLock<Iq3Grid> = OnceLock::new();
    // `iq3s_grid` stores the values 2l + 1 themselves.
    GRID.get_or_init(|| build(IQ3S_GRID.iter().map(|g| g.to_le_bytes().map(|b| (b - 1) / 2)).collect(), 3))
}

fn build(levels: Vec<[u8; 4]>, n_distances: usize) -> Iq3Grid {
    let values: Vec<[f32; 4]> = levels.iter().map(|l| l.map(|v| (2 * v + 1) as f32)).collect();
    let mut map = vec![Cell::Off { start: 0, len: 0 }; 4096];
    for (i, l) in levels.iter().enumerate() {
        map[pack(l)] = Cell::On(i as u16);
    }
    let mut neighbours = Vec::new();
    let mut dist: Vec<(i32, u16)> = Vec::with_capacity(levels.len());
    for (u, cell) in map.iter_mut().enumerate() {
        if matches!(cell, Cell::On(_)) {
            continue;
        }
        let pos: [i32; 4] = std::array::from_fn(|k| 2 * ((u >> (3 * k)) & 7) as i32 + 1);
        dist.clear();
        dist.extend(levels.iter().enumerate().map(|(j, l)| {
            let d2 = (0..4).map(|k| (2 * l[k] as i32 + 1 - pos[k]).pow(2)).sum::<i32>();
            (d2, j as u16)
        }));
        dist.sort_unstable();
        // Every point up to the n_distances-th distinct distance.
        let (mut d2, mut nhave) = (dist[0].0, 1);
        let start = neighbours.len() as u32;
        for &(d, j) in &dist {
            if d > d2 {
                if nhave == n_distances {
                    break;
                }
                d2 = d;
                nhave += 1;
            }
            neighbours.push(j);
        }
        *cell = Cell::Off { start, len: (neighbours.len() as u32 - start) as u16 };
    }
    Iq3Grid { levels, values, map, neighbours }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_map_back_and_neighbours_are_nearest() {
        for (g, size, n_dist) in [(iq3_xxs(), 256, 2), (iq3_s(), 512, 3)] {
            assert_eq!(g.levels.len(), size);
            let on = g.map.iter().filter(|c| matches!(c, Cell::On(_))).count();
            assert_eq!(on, size, "distinct grid points");
            for (i, l) in g.levels.iter().enumerate() {
                assert_eq!(g.index_of(l), Some(i as u16));
            }
            for (u, c) in g.map.iter().enumerate() {
                let Cell::Off { start, len } = *c else { continue };
                assert!(len > 0);
                let list = &g.neighbours[start as usize..(start + len as u32) as usize];
                let d2 = |j: u16| {
                    (0..4)
                        .map(|k| (2 * g.levels[j as usize][k] as i32 - 2 * ((u >> (3 * k)) & 7) as i32).pow(2))
                        .sum::<i32>()
                };
                let mut ds: Vec<i32> = list.iter().map(|&j| d2(j)).collect();
                assert!(ds.windows(2).all(|w| w[0] <= w[1]), "sorted by distance");
                ds.dedup();
                assert!(ds.len() <= n_dist);
                let outside = (0..size as u16).filter(|j| !list.contains(j)).map(d2).min().unwrap();
                assert!(outside > *ds.last().unwrap(), "every point at the kept distances is listed");
            }
        }
    }
}
