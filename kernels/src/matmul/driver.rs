//! The fast matmul: partitioning, tiling and kernel dispatch.

use super::kernel::{self, ActInts};
use super::unpack::{self, Kind, Tile};
use super::{ActData, Activations, WeightView};
use crate::{convert, GgmlType};
use rayon::prelude::*;

/// Instruction set of the quantized kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust loops.
    Scalar,
    /// x86-64 AVX2 + FMA (`_mm256_maddubs_epi16` integer dot products, like ggml).
    Avx2,
}

impl Isa {
    /// The fastest instruction set this CPU supports.
    pub fn best() -> Isa {
        if kernel::has_avx2() {
            Isa::Avx2
        } else {
            Isa::Scalar
        }
    }
}

/// Weight rows per rayon task on the quantized path (unpacked: 16 × k bytes + scales, which
/// stay in L1 while every token streams past them).
const QUANT_ROWS_PER_TASK: usize = 16;
/// Weight rows per rayon task on the float path (widened to f32 for sgemm).
const FLOAT_ROWS_PER_TASK: usize = 64;

/// The output pointer shared by tasks that write disjoint (token, row) cells.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint cells (each task owns a distinct range of weight rows).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Shapes were checked by the caller (`check_shapes`); `out` is n_tokens × w.rows.
pub(super) fn run(w: &WeightView, x: &Activations, out: &mut [f32], isa: Isa) {
    match unpack::kind(w.ty) {
        Some(kind) => run_quant(w, x, out, isa, kind),
        None => run_float(w, x, out),
    }
}

/// Activations in integer form.
fn act_ints(x: &Activations) -> ActInts {
    let mut a = ActInts { k: x.k, ..Default::default() };
    match &x.data {
        ActData::Q8_0(v) => {
            a.bs = 32;
            a.q = v.iter().flat_map(|b| b.qs).collect();
            a.d = v.iter().map(|b| b.d.to_f32()).collect();
        }
        ActData::Q8_1(v) => {
            a.bs = 32;
            a.q = v.iter().flat_map(|b| b.qs).collect();
            a.d = v.iter().map(|b| b.d.to_f32()).collect();
            a.s = v.iter().map(|b| b.s.to_f32()).collect();
        }
        ActData::Q8_K(v) => {
            a.bs = 256;
            a.q = v.iter().flat_map(|b| b.qs).collect();
            a.d = v.iter().map(|b| b.d).collect();
            a.bsums = v.iter().flat_map(|b| b.bsums).collect();
        }
        _ => unreachable!("quantized weights pair with Q8 activations"),
    }
    a
}

fn run_quant(w: &WeightView, x: &Activations, out: &mut [f32], isa: Isa, kind: Kind) {
    let acts = act_ints(x);
    let (rows, n) = (w.rows, x.rows);
    let row_bytes = w.k / w.ty.block_size() * w.ty.type_size();
    let ptr = OutPtr(out.as_mut_ptr());
    let n_tasks = rows.div_ceil(QUANT_ROWS_PER_TASK);
    (0..n_tasks).into_par_iter().for_each_init(Tile::default, |tile, task| {
        let ptr = ptr;
        let r0 = task * QUANT_ROWS_PER_TASK;
        let nr = QUANT_ROWS_PER_TASK.min(rows - r0);
        tile.fill(w.ty, &w.bytes[r0 * row_bytes..(r0 + nr) * row_bytes], nr, w.k);
        let mut res = [0f32; 4];
        for t in 0..n {
            let a = acts.row(t);
            let mut r = 0;
            while r < nr {
                let step = if nr - r >= 4 { 4 } else { 1 };
                match (isa, step) {
                    #[cfg(target_arch = "x86_64")]
                    (Isa::Avx2, 4) => {
                        let rr =
                            [tile.row(r, kind), tile.row(r + 1, kind), tile.row(r + 2, kind), tile.row(r + 3, kind)];
                        // SAFETY: AVX2/FMA checked by the caller; all rows and `a` hold w.k values.
                        unsafe { kernel::avx2::dot_rows::<4>(kind, rr, a, &mut res) }
                    }
                    #[cfg(target_arch = "x86_64")]
                    (Isa::Avx2, _) => {
                        // SAFETY: as above.
                        unsafe { kernel::avx2::dot_rows::<1>(kind, [tile.row(r, kind)], a, &mut res) }
                    }
                    _ => {
                        for (i, v) in res.iter_mut().enumerate().take(step) {
                            *v = kernel::dot_scalar(kind, tile.row(r + i, kind), a);
                        }
                    }
                }
                for (i, &v) in res.iter().enumerate().take(step) {
                    // SAFETY: t < n and r0 + r + i < rows, so the cell is inside `out`
                    // (n × rows); rows r0..r0+nr belong to this task alone.
                    unsafe { *ptr.0.add(t * rows + r0 + r + i) = v };
                }
                r += step;
            }
        }
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
fn run_float(w: &WeightView, x: &Activations, out: &mut [f32]) {
    let (rows, n, k) = (w.rows, x.rows, w.k);
    let acts: Vec<f32> = match &x.data {
        ActData::F32(v) => v.clone(),
        ActData::Half(_) => {
            let mut v = vec![0f32; n * k];
            convert::to_f32(x.ty, x.bytes(), &mut v).expect("checked lengths");
            v
        }
        _ => unreachable!("float weights pair with float activations"),
    };
    let es = w.ty.type_size();
    let ptr = OutPtr(out.as_mut_ptr());
    let n_tasks = rows.div_ceil(FLOAT_ROWS_PER_TASK);
    (0..n_tasks).into_par_iter().for_each_init(Vec::new, |buf: &mut Vec<f32>, task| {
        let ptr = ptr;
        let r0 = task * FLOAT_ROWS_PER_TASK;
        let nr = FLOAT_ROWS_PER_TASK.min(rows - r0);
        buf.resize(nr * k, 0.0);
        let src = &w.bytes[r0 * k * es..(r0 + nr) * k * es];
        if w.ty == GgmlType::F32 {
            for (d, c) in buf.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        } else {
            convert::to_f32(w.ty, src, buf).expect("checked lengths");
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
                ptr.0.add(r0),
                rows as isize,
                1,
            )
        }
    });
}
