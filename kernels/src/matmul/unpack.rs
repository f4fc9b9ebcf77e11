//! Weight rows → one integer form shared by every quantized type, so that one pair of SIMD
//! kernels serves them all. A row tile is unpacked once and then multiplied by every token
//! of the batch, so the unpacking is amortized over the batch (ggml instead unpacks inside
//! each `vec_dot`, once per (row, token) pair).
//!
//! Per row of `k` weights:
//! - `q`: the `k` integer weights as i8, or as u8 shifted by an offset (see [`Kind`]);
//! - legacy 32-blocks (Q4_0 … Q8_0, IQ4_NL): `d` (f16 scale as f32) and, for Q4_1/Q5_1,
//!   `m` (the minimum) per block; weight = d·q + m;
//! - K super-blocks of 256: `d`, `dmin` per super-block and per 16-weight group an integer
//!   scale and minimum; weight = d·sc·q − dmin·min. The scales are stored expanded for the
//!   SIMD kernel: `sc` holds, per 32 weights, 16 i16 lanes (8 × the scale of the first
//!   16-weight group, 8 × the second), matching `_mm256_madd_epi16` of `_mm256_maddubs_epi16`
//!   pairs.
//! - i-quant super-blocks of 256 (IQ1_S … IQ4_XS, `iq.rs`) take the K form with signed
//!   weights and no minimum: weight = d·sc·q with `d` the f16 super-scale times the constant
//!   factor ggml applies to the whole dot product (1/8, 1/4; exact in f32).
//!
//! Bit layouts from ggml `ggml-quants.c` `dequantize_row_*` (the crate's `dequant` modules).

use super::{float, iq};
use crate::dequant::k_quants::scale_min_k4;
use crate::dequant::{
    BlockIQ4_NL, BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K, BlockQ6_K,
    BlockQ8_0, KVALUES_IQ4NL,
};
use crate::GgmlType;
use half::f16;

/// How a type's integer weights combine with their scales.
///
/// Weights are stored unsigned wherever their range allows (`_mm256_maddubs_epi16` takes the
/// weight as its unsigned operand, so no sign juggling is needed, as in ggml's AVX2 Q4_1/Q4_K
/// kernels): Q4_0 as q + 8, Q5_0 as q + 16, Q3_K as q + 4, Q6_K as q + 32 (`off`); the
/// kernels subtract the products `off·y` in integers, so every partial sum equals ggml's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 32-weight blocks with an f32 scale, activations Q8_0/Q8_1. `signed`: i8 weights
    /// (Q8_0, IQ4_NL); else stored weight = q + `off`; `has_min`: + m per block (Q8_1 `s`);
    /// `narrow`: stored weights ≤ 15 (4-bit types).
    Legacy { signed: bool, off: u8, has_min: bool, narrow: bool },
    /// 256-weight super-blocks with per-16 integer scales, activations Q8_K; stored weight =
    /// q + `off` (unsigned), or q itself when `signed` (the i-quants: |q| ≤ 127, so the
    /// kernels' sign trick `maddubs(|q|, ±y)` cannot saturate: 2·127·127 < 2¹⁵).
    /// `float_min`: − dmin·Σ min·bsum (Q2_K/Q4_K/Q5_K).
    K { float_min: bool, off: u8, signed: bool },
}

pub(crate) fn kind(ty: GgmlType) -> Option<Kind> {
    use GgmlType::*;
    Some(match ty {
        Q8_0 | IQ4_NL => Kind::Legacy { signed: true, off: 0, has_min: false, narrow: false },
        Q4_0 => Kind::Legacy { signed: false, off: 8, has_min: false, narrow: true },
        Q5_0 => Kind::Legacy { signed: false, off: 16, has_min: false, narrow: false },
        Q4_1 => Kind::Legacy { signed: false, off: 0, has_min: true, narrow: true },
        Q5_1 => Kind::Legacy { signed: false, off: 0, has_min: true, narrow: false },
        Q2_K | Q4_K | Q5_K => Kind::K { float_min: true, off: 0, signed: false },
        Q3_K => Kind::K { float_min: false, off: 4, signed: false },
        Q6_K => Kind::K { float_min: false, off: 32, signed: false },
        IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS | IQ3_S | IQ1_S | IQ1_M | IQ4_XS => {
            Kind::K { float_min: false, off: 0, signed: true }
        }
        _ => return None,
    })
}

/// Blocks per interleaved group of the legacy layout (one i32 lane per block in a 256-bit
/// vector).
pub(crate) const GROUP: usize = 8;

/// Legacy 32-blocks per row, padded to whole groups of [`GROUP`] (the padding blocks hold zero
/// weights, activations and scales, so they add exact zeros); in the AVX-512 layout only to an
/// even count (a 64-byte vector holds two blocks of the natural-order tail).
pub(crate) fn padded_blocks(k: usize, layout: Layout) -> usize {
    if layout.avx512 {
        (k / 32).next_multiple_of(2)
    } else {
        (k / 32).next_multiple_of(GROUP)
    }
}

/// Position of element `i` (< 32) of block `b` in a legacy row of `nbp` (padded) blocks:
/// [`interleaved`], except in the AVX-512 layout for the blocks after the last whole group,
/// which follow in natural order (32 bytes each).
#[inline(always)]
pub(crate) fn legacy_pos(b: usize, i: usize, nbp: usize, layout: Layout) -> usize {
    let full = nbp / GROUP * GROUP;
    if layout.avx512 && b >= full {
        full * 32 + (b - full) * 32 + i
    } else {
        interleaved(b, i)
    }
}

/// Position of element `i` (< 32) of block `b` in a legacy row laid out by groups of
/// [`GROUP`] blocks: within a group, "round" `i / 4` holds bytes `4·(i/4)..4·(i/4)+4` of each
/// of the 8 blocks side by side (block `b % 8` at bytes `4·(b % 8)..`), so that one 32-byte
/// load per round feeds one `vpdpbusd` / `maddubs`+`madd` whose i32 lane `j` accumulates
/// block `j`: after the 8 rounds, lane `j` holds block `j`'s exact integer sum, with no
/// horizontal reduction per block.
#[inline(always)]
pub(crate) fn interleaved(b: usize, i: usize) -> usize {
    (b / GROUP) * GROUP * 32 + (i / 4) * 32 + (b % GROUP) * 4 + i % 4
}

/// How an instruction set wants the integer weights and activations laid out (the scalar
/// reference and AVX2 kernels use the plain layout; see `Isa::layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Layout {
    /// Signed weights (Q8_0, IQ4_NL, the i-quants) stored as `q + 128` (u8), the unsigned
    /// operand of `vpdpbusd`; the activations then carry the correction `128·Σy`.
    pub flip_signed: bool,
    /// The AVX-512 kernels' layout: K super-blocks stored "by group" ([`by_group`]) with f32
    /// per-group scales (`gsc`, `gmin`), for kernels whose i32 lane `g` accumulates 16-weight
    /// group `g`; legacy rows padded only to an even block count, the blocks after the last
    /// whole group of 8 in natural order ([`legacy_pos`]).
    pub avx512: bool,
}

/// Position of element `e` (< 256) of a super-block in the by-group layout: 4 rows of 64
/// bytes, row `c` holding bytes `4c..4c+4` of each 16-weight group `g` at bytes `4g..4g+4`, so
/// that four 64-byte `vpdpbusd` leave group `g`'s exact integer sum in i32 lane `g`.
#[inline(always)]
pub(crate) fn by_group(e: usize) -> usize {
    let (g, i) = (e / 16, e % 16);
    64 * (i / 4) + 4 * g + i % 4
}

/// Unpacked rows (`rows` × `k`), reused across tiles.
#[derive(Default)]
pub(crate) struct Tile {
    pub k: usize,
    pub rows: usize,
    /// Legacy: `padded_blocks(k)·32` bytes per row in the [`interleaved`] order; K: `k`
    /// bytes per row in natural order.
    pub q: Vec<i8>,
    /// Legacy: per 32-block scale (`padded_blocks(k)` per row); K: per super-block `d`.
    pub d: Vec<f32>,
    /// Legacy: per 32-block minimum; K: per super-block `dmin`.
    pub m: Vec<f32>,
    /// Scratch: the f16 scales / minimums before their bulk conversion.
    dh: Vec<f16>,
    mh: Vec<f16>,
    /// K: expanded scales, k/2 i16 per row (see the module doc).
    pub sc: Vec<i16>,
    /// K: minimum per 16-weight group, k/16 per row.
    pub mins: Vec<i16>,
    /// K, by-group layout: f32 scale `d·sc` and minimum `dmin·min` per 16-weight group, k/16 per row.
    pub gsc: Vec<f32>,
    pub gmin: Vec<f32>,
    /// The layout the rows were unpacked in.
    pub layout: Layout,
}

impl Tile {
    /// Frees the scratch buffers (for tiles kept across calls).
    pub fn shrink(&mut self) {
        self.dh = Vec::new();
        self.mh = Vec::new();
    }

    /// Unpacks `rows` rows of `k` weights of `ty` from `bytes` (exactly those rows) in `layout`.
    pub fn fill(&mut self, ty: GgmlType, bytes: &[u8], rows: usize, k: usize, layout: Layout) {
        let kind = kind(ty).expect("a quantized matmul type");
        let nb = k / ty.block_size();
        // Legacy rows are padded to whole groups (scales stay 0 in the padding).
        let nbp = match kind {
            Kind::Legacy { .. } => padded_blocks(k, layout),
            Kind::K { .. } => nb,
        };
        self.layout = layout;
        let row_q = nbp * ty.block_size();
        self.k = k;
        self.rows = rows;
        self.q.clear();
        self.q.resize(rows * row_q, 0);
        self.d.resize(rows * nbp, 0.0);
        self.m.resize(rows * nbp, 0.0);
        self.dh.clear();
        self.dh.resize(rows * nbp, f16::ZERO);
        self.mh.clear();
        self.mh.resize(rows * nbp, f16::ZERO);
        if let Kind::K { .. } = kind {
            self.sc.resize(rows * k / 2, 0);
            self.mins.resize(rows * k / 16, 0);
        }
        let ts = ty.type_size();
        for (r, wrow) in bytes.chunks_exact(nb * ts).enumerate().take(rows) {
            for (b, blk) in wrow.chunks_exact(ts).enumerate() {
                let bi = r * nbp + b;
                match kind {
                    Kind::Legacy { signed, .. } => {
                        let mut q = [0i8; 32];
                        let (d, m) = legacy(ty, blk, &mut q);
                        if signed && layout.flip_signed {
                            q.iter_mut().for_each(|v| *v = (*v as u8 ^ 0x80) as i8);
                        }
                        self.dh[bi] = d;
                        self.mh[bi] = m;
                        let row = &mut self.q[r * row_q..(r + 1) * row_q];
                        for (c, q4) in q.chunks_exact(4).enumerate() {
                            let at = legacy_pos(b, 4 * c, nbp, layout);
                            row[at..at + 4].copy_from_slice(q4);
                        }
                    }
                    Kind::K { .. } => {
                        let q: &mut [i8] = &mut self.q[bi * 256..(bi + 1) * 256];
                        let mut sc = [0i16; 16];
                        let mut mins = [0i16; 16];
                        let q: &mut [i8; 256] = q.try_into().expect("256");
                        let (d, dmin) = match iq::super_factor(ty) {
                            Some(_) => (iq::unpack(ty, blk, q, &mut sc), f16::ZERO),
                            None => k_block(ty, blk, q, &mut sc, &mut mins),
                        };
                        self.dh[bi] = d;
                        self.mh[bi] = dmin;
                        let sce = &mut self.sc[bi * 128..(bi + 1) * 128];
                        for (g, lanes) in sce.chunks_exact_mut(8).enumerate() {
                            lanes.fill(sc[g]);
                        }
                        self.mins[bi * 16..(bi + 1) * 16].copy_from_slice(&mins);
                        if layout.avx512 {
                            let flip = if let Kind::K { signed: true, .. } = kind { 0x80 } else { 0 };
                            let natural = *q;
                            for (e, &v) in natural.iter().enumerate() {
                                q[by_group(e)] = (v as u8 ^ flip) as i8;
                            }
                        }
                    }
                }
            }
        }
        // The f16 scales converted in bulk (F16C when available; `half` is software otherwise).
        float::widen(GgmlType::F16, bytemuck::cast_slice(&self.dh), &mut self.d);
        float::widen(GgmlType::F16, bytemuck::cast_slice(&self.mh), &mut self.m);
        // i-quants: ggml's constant factor of the whole dot product (a power of two: exact).
        if let Some(f) = iq::super_factor(ty).filter(|&f| f != 1.0) {
            self.d.iter_mut().for_each(|d| *d *= f);
        }
        if let (Kind::K { .. }, true) = (kind, layout.avx512) {
            // Per-group f32 scales: the integer group sums are scaled in f32 (the kernels'
            // lanes are groups), instead of ggml's integer Σ sc·Σqy scaled once per block.
            self.gsc.resize(rows * k / 16, 0.0);
            self.gmin.resize(rows * k / 16, 0.0);
            for (bi, (gsc, gmin)) in self.gsc.chunks_exact_mut(16).zip(self.gmin.chunks_exact_mut(16)).enumerate() {
                for g in 0..16 {
                    gsc[g] = self.d[bi] * self.sc[bi * 128 + g * 8] as f32;
                    gmin[g] = self.m[bi] * self.mins[bi * 16 + g] as f32;
                }
            }
        }
    }
}

/// One 32-weight block: integer weights into `q`, returns (d, m).
fn legacy(ty: GgmlType, blk: &[u8], q: &mut [i8; 32]) -> (f16, f16) {
    match ty {
        GgmlType::Q4_0 => {
            let b: BlockQ4_0 = bytemuck::pod_read_unaligned(blk);
            for j in 0..16 {
                // Stored as q + 8 (unsigned); the kernels subtract 8·Σy.
                q[j] = (b.qs[j] & 0x0F) as i8;
                q[j + 16] = (b.qs[j] >> 4) as i8;
            }
            (b.d, f16::ZERO)
        }
        GgmlType::Q4_1 => {
            let b: BlockQ4_1 = bytemuck::pod_read_unaligned(blk);
            for j in 0..16 {
                q[j] = (b.qs[j] & 0x0F) as i8;
                q[j + 16] = (b.qs[j] >> 4) as i8;
            }
            (b.d, b.m)
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            // Q5_0 is stored as q + 16 (unsigned); the kernels subtract 16·Σy.
            let (d, m, qh, qs) = if ty == GgmlType::Q5_0 {
                let b: BlockQ5_0 = bytemuck::pod_read_unaligned(blk);
                (b.d, f16::ZERO, u32::from_le_bytes(b.qh), b.qs)
            } else {
                let b: BlockQ5_1 = bytemuck::pod_read_unaligned(blk);
                (b.d, b.m, u32::from_le_bytes(b.qh), b.qs)
            };
            for j in 0..16 {
                let h0 = ((qh >> j) << 4) & 0x10;
                let h1 = (qh >> (j + 12)) & 0x10;
                q[j] = ((qs[j] & 0x0F) as u32 | h0) as i8;
                q[j + 16] = ((qs[j] >> 4) as u32 | h1) as i8;
            }
            (d, m)
        }
        GgmlType::Q8_0 => {
            let b: BlockQ8_0 = bytemuck::pod_read_unaligned(blk);
            *q = b.qs;
            (b.d, f16::ZERO)
        }
        GgmlType::IQ4_NL => {
            let b: BlockIQ4_NL = bytemuck::pod_read_unaligned(blk);
            for j in 0..16 {
                q[j] = KVALUES_IQ4NL[(b.qs[j] & 0x0F) as usize];
                q[j + 16] = KVALUES_IQ4NL[(b.qs[j] >> 4) as usize];
            }
            (b.d, f16::ZERO)
        }
        _ => unreachable!("legacy kinds only"),
    }
}

/// One 256-weight super-block: integer weights into `q`, per-16 scales and minimums; returns
/// (d, dmin).
fn k_block(ty: GgmlType, blk: &[u8], q: &mut [i8; 256], sc: &mut [i16; 16], mins: &mut [i16; 16]) -> (f16, f16) {
    match ty {
        GgmlType::Q2_K => {
            let b: BlockQ2_K = bytemuck::pod_read_unaligned(blk);
            for n in 0..2 {
                for j in 0..4 {
                    for l in 0..32 {
                        q[n * 128 + j * 32 + l] = ((b.qs[n * 32 + l] >> (2 * j)) & 3) as i8;
                    }
                }
            }
            for g in 0..16 {
                sc[g] = (b.scales[g] & 0x0F) as i16;
                mins[g] = (b.scales[g] >> 4) as i16;
            }
            (b.d, b.dmin)
        }
        GgmlType::Q3_K => {
            let b: BlockQ3_K = bytemuck::pod_read_unaligned(blk);
            for n in 0..2 {
                for j in 0..4 {
                    let hbit = 1u8 << (n * 4 + j);
                    for l in 0..32 {
                        let low = ((b.qs[n * 32 + l] >> (2 * j)) & 3) as i8;
                        // q = low − 4·(1 − hbit), stored as q + 4.
                        q[n * 128 + j * 32 + l] = low + if b.hmask[l] & hbit != 0 { 4 } else { 0 };
                    }
                }
            }
            // ggml dequantize_row_q3_K: 16 six-bit scales from 12 bytes (kmask1/kmask2 shuffle).
            let w = |i: usize| u32::from_le_bytes(b.scales[4 * i..4 * i + 4].try_into().expect("4"));
            let (a0, a1, tmp) = (w(0), w(1), w(2));
            const KM1: u32 = 0x0303_0303;
            const KM2: u32 = 0x0f0f_0f0f;
            let aux = [
                (a0 & KM2) | ((tmp & KM1) << 4),
                (a1 & KM2) | (((tmp >> 2) & KM1) << 4),
                ((a0 >> 4) & KM2) | (((tmp >> 4) & KM1) << 4),
                ((a1 >> 4) & KM2) | (((tmp >> 6) & KM1) << 4),
            ];
            for g in 0..16 {
                sc[g] = ((aux[g / 4] >> (8 * (g % 4))) & 0xFF) as i16 - 32;
            }
            mins.fill(0);
            (b.d, f16::ZERO)
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let (d, dmin, scales, qs, qh) = if ty == GgmlType::Q4_K {
                let b: BlockQ4_K = bytemuck::pod_read_unaligned(blk);
                (b.d, b.dmin, b.scales, b.qs, None)
            } else {
                let b: BlockQ5_K = bytemuck::pod_read_unaligned(blk);
                (b.d, b.dmin, b.scales, b.qs, Some(b.qh))
            };
            for j in 0..4 {
                for l in 0..32 {
                    let lo = qs[j * 32 + l] & 0x0F;
                    let hi = qs[j * 32 + l] >> 4;
                    let (h0, h1) = match &qh {
                        Some(qh) => (((qh[l] >> (2 * j)) & 1) << 4, ((qh[l] >> (2 * j + 1)) & 1) << 4),
                        None => (0, 0),
                    };
                    q[j * 64 + l] = (lo | h0) as i8;
                    q[j * 64 + 32 + l] = (hi | h1) as i8;
                }
            }
            for s in 0..8 {
                let (scv, mv) = scale_min_k4(s, &scales);
                sc[2 * s] = scv as i16;
                sc[2 * s + 1] = scv as i16;
                mins[2 * s] = mv as i16;
                mins[2 * s + 1] = mv as i16;
            }
            (d, dmin)
        }
        GgmlType::Q6_K => {
            let b: BlockQ6_K = bytemuck::pod_read_unaligned(blk);
            for n in 0..2 {
                let (ql, qh) = (&b.ql[n * 64..n * 64 + 64], &b.qh[n * 32..n * 32 + 32]);
                for l in 0..32 {
                    let base = n * 128 + l;
                    // Stored as q + 32 (unsigned 0..63).
                    q[base] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i8;
                    q[base + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i8;
                    q[base + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8;
                    q[base + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8;
                }
            }
            for (s, &v) in sc.iter_mut().zip(&b.scales) {
                *s = v as i16;
            }
            mins.fill(0);
            (b.d, f16::ZERO)
        }
        _ => unreachable!("K kinds only"),
    }
}
