//! The fast matmul: partitioning, tiling and kernel dispatch.

use super::float;
use super::kernel::{self, ActInts};
use super::unpack::{self, Kind, Layout, Tile};
use super::{ActData, Activations, WeightView};
use crate::GgmlType;

use crate::shared_out::{RowsMut, SharedOut};
use rayon::prelude::*;

/// Instruction set of the quantized kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust loops.
    Scalar,
    /// x86-64 AVX2 + FMA (`_mm256_maddubs_epi16` integer dot products, like ggml).
    Avx2,
    /// AVX2 + AVX-VNNI: `vpdpbusd` for the 32-block types (K types as `Avx2`).
    AvxVnni,
    /// AVX-512 (F/BW/DQ/VL) + AVX512-VNNI: 64-byte `vpdpbusd` (32-block types) and
    /// `maddubs` + `vpdpwssd` register tiles (K types); `kernel_avx512.rs`.
    Avx512Vnni,
}

impl Isa {
    /// The fastest instruction set this CPU supports.
    pub fn best() -> Isa {
        if Isa::Avx512Vnni.available() {
            Isa::Avx512Vnni
        } else if kernel::has_avxvnni() {
            Isa::AvxVnni
        } else if kernel::has_avx2() {
            Isa::Avx2
        } else {
            Isa::Scalar
        }
    }

    /// True when this CPU can run `self`.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => kernel::has_avx2(),
            Isa::AvxVnni => kernel::has_avxvnni(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => super::kernel_avx512::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512Vnni => false,
        }
    }

    /// Lower-case name (`scalar`, `avx2`, `avxvnni`, `avx512vnni`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// Every instruction set, slowest first (tests and benchmarks compare them).
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

    /// The weight and activation layout of this instruction set's kernels: the `vpdpbusd`
    /// kernels (unsigned × signed) take signed weights flipped to `q + 128`; the AVX-512 K
    /// kernels take super-blocks by group.
    pub(crate) fn layout(self) -> Layout {
        Layout { flip_signed: matches!(self, Isa::AvxVnni | Isa::Avx512Vnni), avx512: self == Isa::Avx512Vnni }
    }
}

/// Weight rows per rayon task on the quantized path (unpacked: 16 × k bytes + scales, which
/// stay in L1 while every token streams past them).
const QUANT_ROWS_PER_TASK: usize = 16;
/// Below this many tokens the float path uses dot products instead of sgemm.
const SGEMM_MIN_TOKENS: usize = 4;
/// Weight rows per rayon task on the float path (widened to f32 for sgemm), at least.
const FLOAT_ROWS_PER_TASK: usize = 64;
/// Largest widened f32 weight tile per task on the float path with many tokens.
const FLOAT_TILE_BYTES: usize = 4 << 20;

/// Shapes were checked by the caller (`check_shapes`); `out` is n_tokens × w.rows.
pub(super) fn run(w: &WeightView, x: &Activations, out: &mut [f32], isa: Isa) {
    match unpack::kind(w.ty) {
        Some(kind) => run_quant(w, x, out, isa, kind),
        None => run_float(w, x, out, isa),
    }
}

/// f16 values → f32 in bulk (F16C when available).
fn widen_f16(h: impl Iterator<Item = half::f16>) -> Vec<f32> {
    let h: Vec<half::f16> = h.collect();
    let mut out = vec![0f32; h.len()];
    float::widen(GgmlType::F16, bytemuck::cast_slice(&h), &mut out);
    out
}

/// Activations in integer form for weights of `kind` multiplied with `isa`'s kernels (legacy
/// kinds: the grouped layout of `unpack::interleaved`, padded like the weight tiles, and the
/// per-block correction for weights stored with an offset).
fn act_ints(x: &Activations, kind: Kind, isa: Isa) -> ActInts {
    let layout = isa.layout();
    let mut a = ActInts { k: x.k, rows: x.rows, ..Default::default() };
    if let Kind::Legacy { signed, off, .. } = kind {
        // Weights multiplied as q + c: Q4_0/Q5_0 store q + off; with vpdpbusd the signed weights
        // are flipped to q + 128 (vpdpbusd takes them unsigned). AVX2 and the scalar kernel
        // use signed weights as they are.
        let c: i32 = match (signed, layout.flip_signed) {
            (true, true) => 128,
            (true, false) => 0,
            (false, _) => off as i32,
        };
        let (nb, nbp) = (x.k / 32, unpack::padded_blocks(x.k, layout));
        a.bs = 32;
        a.nb = nbp;
        a.q = vec![0; x.rows * nbp * 32];
        a.d = vec![0.0; x.rows * nbp];
        let (qs, dh, sh): (Vec<&[i8; 32]>, Vec<half::f16>, Option<Vec<half::f16>>) = match &x.data {
            ActData::Q8_0(v) => (v.iter().map(|b| &b.qs).collect(), v.iter().map(|b| b.d).collect(), None),
            ActData::Q8_1(v) => (
                v.iter().map(|b| &b.qs).collect(),
                v.iter().map(|b| b.d).collect(),
                Some(v.iter().map(|b| b.s).collect()),
            ),
            _ => unreachable!("legacy weights pair with Q8_0/Q8_1 activations"),
        };
        let d = widen_f16(dh.into_iter());
        let s = sh.map(|sh| widen_f16(sh.into_iter()));
        if s.is_some() {
            a.s = vec![0.0; x.rows * nbp];
        }
        let (per_block_corr, lane_corr) = (c != 0 && !layout.avx512, c != 0 && layout.avx512);
        if per_block_corr {
            a.corr = vec![0; x.rows * nbp];
        }
        // AVX-512: accumulation units of 256 bytes (whole groups), then of 64 (tail pairs).
        let units = nbp / unpack::GROUP + (nbp % unpack::GROUP) / 2;
        if lane_corr {
            a.lcorr = vec![0; x.rows * units * 16];
        }
        // Rows in parallel (this runs once per matmul, before the tiles: serial, it was the
        // matmul's main serial fraction in the thread-scaling model of bench-scaling.sh).
        let rows_q = RowsMut::new(&mut a.q, nbp * 32);
        let rows_d = RowsMut::new(&mut a.d, nbp);
        let rows_s = RowsMut::new(&mut a.s, nbp);
        let rows_corr = RowsMut::new(&mut a.corr, nbp);
        let rows_lcorr = RowsMut::new(&mut a.lcorr, units * 16);
        (0..x.rows).into_par_iter().with_min_len(8).for_each(|t| {
            // SAFETY: each task takes row t of each buffer alone; the buffers hold x.rows rows
            // (or are empty and then not used: `s`, `corr`, `lcorr` as set up above).
            let row = unsafe { rows_q.row(t) };
            let row_d = unsafe { rows_d.row(t) };
            for b in 0..nb {
                let src = qs[t * nb + b];
                for (i4, q4) in src.chunks_exact(4).enumerate() {
                    let at = unpack::legacy_pos(b, 4 * i4, nbp, layout);
                    row[at..at + 4].copy_from_slice(q4);
                }
                row_d[b] = d[t * nb + b];
                if let Some(s) = &s {
                    // SAFETY: as above (`a.s` holds x.rows rows when `s` is Some).
                    unsafe { rows_s.row(t)[b] = s[t * nb + b] };
                }
                if per_block_corr {
                    // SAFETY: as above.
                    unsafe { rows_corr.row(t)[b] = c * src.iter().map(|&v| v as i32).sum::<i32>() };
                }
            }
            if lane_corr {
                // Lane L of a unit accumulates its 4-byte chunks i with i % 16 == L (each
                // 64-byte load of the unit feeds all 16 lanes).
                let full = nbp / unpack::GROUP * unpack::GROUP * 32;
                let (groups, tail) = row.split_at(full);
                // SAFETY: as above.
                let lc = unsafe { rows_lcorr.row(t) };
                for (unit, bytes) in groups.chunks_exact(256).chain(tail.chunks_exact(64)).enumerate() {
                    let lanes = &mut lc[unit * 16..(unit + 1) * 16];
                    for (i, q4) in bytes.chunks_exact(4).enumerate() {
                        lanes[i % 16] -= c * q4.iter().map(|&v| v as i32).sum::<i32>();
                    }
                }
            }
        });
        return a;
    }
    let ActData::Q8_K(v) = &x.data else { unreachable!("K-quant weights pair with Q8_K activations") };
    a.bs = 256;
    a.nb = x.k / 256;
    a.d = v.iter().map(|b| b.d).collect();
    a.bsums = v.iter().flat_map(|b| b.bsums).collect();
    let Kind::K { float_min, off, signed } = kind else { unreachable!("K kinds here") };
    if !layout.avx512 {
        a.q = v.iter().flat_map(|b| b.qs).collect();
        return a;
    }
    // By-group layout (`unpack::by_group`); weights multiplied as q + c (c = 128 for the
    // flipped signed weights, `off` for Q3_K/Q6_K): each group's sum starts at −c·Σy, Σy
    // being Q8_K's exact per-16 `bsums`.
    a.q = vec![0; v.len() * 256];
    a.q.par_chunks_exact_mut(256).zip(v.par_iter()).with_min_len(16).for_each(|(dst, b)| {
        for (e, &y) in b.qs.iter().enumerate() {
            dst[unpack::by_group(e)] = y;
        }
    });
    let c = if signed { 128 } else { off as i32 };
    if c != 0 {
        a.kneg = a.bsums.iter().map(|&s| -c * s as i32).collect();
    }
    if float_min {
        a.bsf = a.bsums.iter().map(|&s| s as f32).collect();
    }
    a
}

fn run_quant(w: &WeightView, x: &Activations, out: &mut [f32], isa: Isa, kind: Kind) {
    let row_bytes = w.k / w.ty.block_size() * w.ty.type_size();
    let rows = w.rows;
    run_tiles(rows, x, out, isa, kind, |task, local, f| {
        let r0 = task * QUANT_ROWS_PER_TASK;
        let nr = QUANT_ROWS_PER_TASK.min(rows - r0);
        local.fill(w.ty, &w.bytes[r0 * row_bytes..(r0 + nr) * row_bytes], nr, w.k, isa.layout());
        f(local)
    });
}

/// Unpacks every tile of `w` once for `isa`'s kernels (see [`super::PackedWeights`]).
pub(super) fn pack(w: &WeightView, isa: Isa) -> Vec<Tile> {
    let row_bytes = w.k / w.ty.block_size() * w.ty.type_size();
    (0..w.rows.div_ceil(QUANT_ROWS_PER_TASK))
        .into_par_iter()
        .map(|task| {
            let r0 = task * QUANT_ROWS_PER_TASK;
            let nr = QUANT_ROWS_PER_TASK.min(w.rows - r0);
            let mut tile = Tile::default();
            tile.fill(w.ty, &w.bytes[r0 * row_bytes..(r0 + nr) * row_bytes], nr, w.k, isa.layout());
            tile.shrink();
            tile
        })
        .collect()
}

/// `matmul` on tiles unpacked by [`pack`] (shapes checked by the caller).
pub(super) fn run_packed(tiles: &[Tile], rows: usize, x: &Activations, out: &mut [f32], isa: Isa, kind: Kind) {
    run_tiles(rows, x, out, isa, kind, |task, _, f| f(&tiles[task]));
}

/// The quantized product over tiles of `QUANT_ROWS_PER_TASK` weight rows, rayon over tiles;
/// `tile_of(task, scratch, f)` calls `f` with tile `task` (unpacked into `scratch`, or prepacked).
fn run_tiles(
    rows: usize,
    x: &Activations,
    out: &mut [f32],
    isa: Isa,
    kind: Kind,
    tile_of: impl Fn(usize, &mut Tile, &mut dyn FnMut(&Tile)) + Sync,
) {
    let acts = act_ints(x, kind, isa);
    let n = x.rows;
    let ptr = SharedOut::new(out);
    let n_tasks = rows.div_ceil(QUANT_ROWS_PER_TASK);
    let act_rows: Vec<_> = (0..n).map(|t| acts.row(t)).collect();
    (0..n_tasks).into_par_iter().for_each_init(Tile::default, |scratch, task| {
        let r0 = task * QUANT_ROWS_PER_TASK;
        tile_of(task, scratch, &mut |tile: &Tile| {
            let w_rows: Vec<_> = (0..tile.rows).map(|r| tile.row(r, kind)).collect();
            // SAFETY (all arms): cells (t, r0 + r) for t < n, r < tile.rows lie inside `out`
            // (n × rows) and rows r0..r0+tile.rows belong to this task alone; every row holds
            // k values; the instruction set was checked by the caller.
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { kernel::avx2::dot_tile(kind, &w_rows, &act_rows, ptr.get().add(r0), rows) },
                #[cfg(target_arch = "x86_64")]
                Isa::AvxVnni => unsafe {
                    kernel::avx2::dot_tile_vnni(kind, &w_rows, &act_rows, ptr.get().add(r0), rows)
                },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512Vnni => unsafe {
                    super::kernel_avx512::dot_tile(kind, &w_rows, &act_rows, ptr.get().add(r0), rows)
                },
                _ => {
                    for (t, a) in act_rows.iter().enumerate() {
                        for (r, wr) in w_rows.iter().enumerate() {
                            unsafe { *ptr.get().add(t * rows + r0 + r) = kernel::dot_scalar(kind, x.k, *wr, *a) };
                        }
                    }
                }
            }
        });
    });
}

/// F32 / F16 / BF16 weights.
///
/// ggml converts the activations to the weight type (`vec_dot_type`) and multiplies in f32
/// (F16C/FMA `ggml_vec_dot_f16`). We keep that rounding of the activations (done in
/// `prepare_activations`), widen both operands to f32 — exact — and use `matrixmultiply`'s
/// sgemm on tiles of weight rows: the products are the same f32 values as ggml's, only the
/// summation order differs. Chosen over an f16 dot kernel because sgemm's register-blocked
/// kernel reuses each loaded value across a 8×8 (AVX2) tile, which a dot product cannot;
/// see the benchmark example for the figures.
///
/// With AVX-512 (`Isa::Avx512Vnni`) the packing-free register tiles of `float_avx512.rs` run
/// on the stored weights instead: F16 SmolLM2 `perplexity` (4 windows of 512, 2 threads)
/// 895 → 1151 tokens/s, its matmuls at about 231 GFLOP/s on one core (2026-12-08).
fn run_float(w: &WeightView, x: &Activations, out: &mut [f32], isa: Isa) {
    let (rows, n, k) = (w.rows, x.rows, w.k);
    let acts: Vec<f32> = match &x.data {
        ActData::F32(v) => v.clone(),
        ActData::Half(_) => {
            let mut v = vec![0f32; n * k];
            float::widen(x.ty, x.bytes(), &mut v);
            v
        }
        _ => unreachable!("float weights pair with float activations"),
    };
    let es = w.ty.type_size();
    let ptr = SharedOut::new(out);
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni && super::float_avx512::available() {
        // Tasks of 16–64 rows, about 8 per thread (so that 576-row matrices still balance).
        let per_task = rows.div_ceil(8 * rayon::current_num_threads()).next_multiple_of(4).clamp(16, 64);
        (0..rows.div_ceil(per_task)).into_par_iter().for_each(|task| {
            let r0 = task * per_task;
            // SAFETY: AVX-512 checked; a float type (`run` sends only those here); `w.bytes`
            // holds rows × k elements and `acts` n × k (checked by the caller); the task owns
            // rows r0..r0 + nr of every token's output row.
            unsafe {
                super::float_avx512::rows_task(w.ty, w.bytes, k, r0, per_task.min(rows - r0), &acts, rows, ptr.get())
            }
        });
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    // Each task's sgemm packs the whole activation matrix again: with many tokens, fewer and
    // larger tasks (about two per thread, at least FLOAT_ROWS_PER_TASK rows, the widened tile
    // at most 4 MiB) pack it less often. Measured (bench_matmul, 2 threads, 512 tokens): F16
    // 576×1536 174 → 230, 49152×576 220 → 279 GFLOP/s.
    let per_task = if n < SGEMM_MIN_TOKENS {
        FLOAT_ROWS_PER_TASK
    } else {
        let max_rows = (FLOAT_TILE_BYTES / 4 / k).max(FLOAT_ROWS_PER_TASK);
        rows.div_ceil(2 * rayon::current_num_threads()).next_multiple_of(16).clamp(FLOAT_ROWS_PER_TASK, max_rows)
    };
    let n_tasks = rows.div_ceil(per_task);
    (0..n_tasks).into_par_iter().for_each_init(Vec::new, |buf: &mut Vec<f32>, task| {
        let r0 = task * per_task;
        let nr = per_task.min(rows - r0);
        buf.resize(nr * k, 0.0);
        let src = &w.bytes[r0 * k * es..(r0 + nr) * k * es];
        float::widen(w.ty, src, buf);
        if n < SGEMM_MIN_TOKENS {
            // A few tokens (generation): plain dot products; sgemm would repack the weights.
            for (t, a) in acts.chunks_exact(k).enumerate() {
                for (r, wr) in buf.chunks_exact(k).enumerate() {
                    // SAFETY: cell (t, r0 + r) is inside `out` and owned by this task.
                    unsafe { *ptr.get().add(t * rows + r0 + r) = dot_f32(wr, a) };
                }
            }
            return;
        }
        // C (n × nr, row stride `rows`) = A (n × k) · Bᵀ, B = buf (nr × k).
        // SAFETY: A is n×k, B nr×k, and the C block (rows 0..n, columns r0..r0+nr with row
        // stride `rows`) lies inside `out` and belongs to this task alone.
        unsafe {
            matrixmultiply::sgemm(
                n,
                k,
                nr,
                1.0,
                acts.as_ptr(),
                k as isize,
                1,
                buf.as_ptr(),
                1,
                k as isize,
                0.0,
                ptr.get().add(r0),
                rows as isize,
                1,
            )
        }
    });
}

/// Σ a·b in f32 with 8 independent partial sums (vectorized by the compiler).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}
