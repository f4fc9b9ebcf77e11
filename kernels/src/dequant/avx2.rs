//! AVX2 row kernels (x86_64, chosen at run time) for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
//! Q3_K, Q4_K, Q5_K and Q6_K, bit-identical to the per-block references of `q4_0.rs` …
//! `k_quants/q6_k.rs`.
//!
//! Why the bits agree: the quants are small integers, unpacked exactly in byte lanes and
//! widened to i32 then f32 (exact); every scale product that the reference computes once per
//! block or sub-block (`d·sc`, `dmin·m`) is computed by the same scalar code; and each value
//! is then the reference's own IEEE operations lane by lane — `q·d`, `q·d + m` or
//! `dl·q − ml`: a multiply then an add or subtract, never a fused multiply-add (for these
//! formats an FMA would often agree, since `q·d` is exact for q < 2⁸ and an 11-bit f16 `d`,
//! but not for `dl·q` where `dl = d·sc` has a full 24-bit significand).

use super::k_quants::scale_min_k4;
use half::f16;
use std::arch::x86_64::*;

/// A row kernel: whole blocks of bytes → their values.
pub(super) type RowKernel = unsafe fn(&[u8], &mut [f32]);

/// The AVX2 kernel for `ty` when this CPU has AVX2 (and the type has one).
pub(super) fn row_kernel(ty: crate::GgmlType) -> Option<RowKernel> {
    use crate::GgmlType::*;
    if !std::arch::is_x86_feature_detected!("avx2") {
        return None;
    }
    Some(match ty {
        Q4_0 => q4_0,
        Q4_1 => q4_1,
        Q5_0 => q5_0,
        Q5_1 => q5_1,
        Q8_0 => q8_0,
        Q2_K => q2_k,
        Q3_K => q3_k,
        Q4_K => q4_k,
        Q5_K => q5_k,
        Q6_K => q6_k,
        _ => return None,
    })
}

/// What follows the multiply: nothing, `+ m`, or `− ml` (per 16 values).
#[derive(Clone, Copy)]
enum Off {
    None,
    Add(f32),
    Sub([f32; 2]),
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

#[target_feature(enable = "avx2")]
fn load16(b: &[u8]) -> __m128i {
    assert!(b.len() >= 16);
    // SAFETY: at least 16 readable bytes (asserted), unaligned load.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[target_feature(enable = "avx2")]
fn load32(b: &[u8]) -> __m256i {
    assert!(b.len() >= 32);
    // SAFETY: at least 32 readable bytes (asserted), unaligned load.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Writes 32 values `q[i]·dl[i / 16]` then the offset, from 32 signed byte quants.
#[target_feature(enable = "avx2")]
fn emit32(q: __m256i, dl: [f32; 2], off: Off, out: &mut [f32]) {
    assert!(out.len() >= 32);
    let halves = [_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q)];
    for g in 0..4 {
        let bytes = if g % 2 == 0 { halves[g / 2] } else { _mm_srli_si128::<8>(halves[g / 2]) };
        let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
        let mut y = _mm256_mul_ps(v, _mm256_set1_ps(dl[g / 2]));
        y = match off {
            Off::None => y,
            Off::Add(m) => _mm256_add_ps(y, _mm256_set1_ps(m)),
            Off::Sub(ml) => _mm256_sub_ps(y, _mm256_set1_ps(ml[g / 2])),
        };
        // SAFETY: `out` holds at least 32 f32 (asserted); unaligned store of 8 at 8·g.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * g), y) };
    }
}

/// The 32 nibbles of a legacy block in element order: byte j's low nibble is element j,
/// its high nibble element j + 16.
#[target_feature(enable = "avx2")]
fn legacy_nibbles(qs: &[u8]) -> __m256i {
    let v = load16(qs);
    let m = _mm_set1_epi8(0x0F);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16::<4>(v), m), _mm_and_si128(v, m))
}

/// 0x10 in byte i where bit i of the little-endian `qh` is set (ggml's fifth bits).
#[target_feature(enable = "avx2")]
fn legacy_fifth_bits(qh: &[u8]) -> __m256i {
    let bits = _mm256_set1_epi32(i32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]));
    // Byte i takes byte i / 8 of qh (each 128-bit lane holds all four), then bit i % 8.
    let spread = _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303);
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let hit = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(bits, spread), select), select);
    _mm256_and_si256(hit, _mm256_set1_epi8(0x10))
}

/// Bytes of `v` shifted right by `shift` (0..8) and masked with `mask`.
#[target_feature(enable = "avx2")]
fn bits_at(v: __m256i, shift: u32, mask: i8) -> __m256i {
    let shifted = _mm256_srl_epi16(v, _mm_cvtsi32_si128(shift as i32));
    _mm256_and_si256(shifted, _mm256_set1_epi8(mask))
}

#[target_feature(enable = "avx2")]
fn q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let q = _mm256_sub_epi8(legacy_nibbles(&b[2..]), _mm256_set1_epi8(8));
        emit32(q, [d, d], Off::None, y);
    }
}

#[target_feature(enable = "avx2")]
fn q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(20).zip(dst.chunks_exact_mut(32)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        emit32(legacy_nibbles(&b[4..]), [d, d], Off::Add(m), y);
    }
}

#[target_feature(enable = "avx2")]
fn q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(22).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        let q = _mm256_or_si256(legacy_nibbles(&b[6..]), legacy_fifth_bits(&b[2..6]));
        emit32(_mm256_sub_epi8(q, _mm256_set1_epi8(16)), [d, d], Off::None, y);
    }
}

#[target_feature(enable = "avx2")]
fn q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(24).zip(dst.chunks_exact_mut(32)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let q = _mm256_or_si256(legacy_nibbles(&b[8..]), legacy_fifth_bits(&b[4..8]));
        emit32(q, [d, d], Off::Add(m), y);
    }
}

#[target_feature(enable = "avx2")]
fn q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
        let d = f16_at(b, 0);
        emit32(load32(&b[2..]), [d, d], Off::None, y);
    }
}

/// Q2_K (84 bytes): scales 0..16, qs 16..80, d 80, dmin 82.
#[target_feature(enable = "avx2")]
fn q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(84).zip(dst.chunks_exact_mut(256)) {
        let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
        for half in 0..2 {
            let qs = load32(&b[16 + 32 * half..]);
            for shift in 0..4 {
                let e = 128 * half + 32 * shift;
                let sc = [b[e / 16], b[e / 16 + 1]];
                let dl = sc.map(|s| d * (s & 0x0F) as f32);
                let ml = sc.map(|s| dmin * (s >> 4) as f32);
                emit32(bits_at(qs, 2 * shift as u32, 3), dl, Off::Sub(ml), &mut y[e..]);
            }
        }
    }
}

/// Q3_K (110 bytes): hmask 0..32, qs 32..96, scales 96..108, d 108.
#[target_feature(enable = "avx2")]
fn q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(110).zip(dst.chunks_exact_mut(256)) {
        let d = f16_at(b, 108);
        let s = &b[96..108];
        let scale = |i: usize| {
            let low = (s[i % 8] >> (4 * (i / 8))) & 0x0F;
            let high = (s[8 + i % 4] >> (2 * (i / 4))) & 0x03;
            d * ((low | (high << 4)) as i8 - 32) as f32
        };
        let hmask = load32(b);
        for half in 0..2 {
            let qs = load32(&b[32 + 32 * half..]);
            for shift in 0..4 {
                let e = 128 * half + 32 * shift;
                let bit = _mm256_set1_epi8((1u8 << (e / 32)) as i8);
                // 4 where the mask bit is clear (ggml: `(hm[l] & m) ? 0 : 4`).
                let clear = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), _mm256_setzero_si256());
                let q = _mm256_sub_epi8(bits_at(qs, 2 * shift as u32, 3), _mm256_and_si256(clear, _mm256_set1_epi8(4)));
                emit32(q, [scale(e / 16), scale(e / 16 + 1)], Off::None, &mut y[e..]);
            }
        }
    }
}

/// Q4_K (144 bytes): d 0, dmin 2, scales 4..16, qs 16..144.
#[target_feature(enable = "avx2")]
fn q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(144).zip(dst.chunks_exact_mut(256)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales: &[u8; 12] = b[4..16].try_into().expect("12 bytes");
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, scales);
            let (d1, m1) = (d * sc as f32, dmin * m as f32);
            let q = bits_at(load32(&b[16 + 32 * (j / 2)..]), 4 * (j % 2) as u32, 0x0F);
            emit32(q, [d1, d1], Off::Sub([m1, m1]), &mut y[32 * j..]);
        }
    }
}

/// Q5_K (176 bytes): d 0, dmin 2, scales 4..16, qh 16..48, qs 48..176.
#[target_feature(enable = "avx2")]
fn q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(176).zip(dst.chunks_exact_mut(256)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales: &[u8; 12] = b[4..16].try_into().expect("12 bytes");
        let qh = load32(&b[16..]);
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, scales);
            let (d1, m1) = (d * sc as f32, dmin * m as f32);
            let low = bits_at(load32(&b[48 + 32 * (j / 2)..]), 4 * (j % 2) as u32, 0x0F);
            let bit = _mm256_set1_epi8((1u8 << j) as i8);
            let high = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit), _mm256_set1_epi8(0x10));
            emit32(_mm256_or_si256(low, high), [d1, d1], Off::Sub([m1, m1]), &mut y[32 * j..]);
        }
    }
}

/// Q6_K (210 bytes): ql 0..128, qh 128..192, scales 192..208 (i8), d 208.
#[target_feature(enable = "avx2")]
fn q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(210).zip(dst.chunks_exact_mut(256)) {
        let d = f16_at(b, 208);
        // ggml: `d * sc[is] * q`, the scale product first.
        let dl = |i: usize| d * b[192 + i] as i8 as f32;
        for half in 0..2 {
            let qh = load32(&b[128 + 32 * half..]);
            for c in 0..4 {
                let ql = load32(&b[64 * half + 32 * (c % 2)..]);
                let low = bits_at(ql, 4 * (c / 2) as u32, 0x0F);
                let high = bits_at(qh, 2 * c as u32, 0x03);
                let q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16::<4>(high)), _mm256_set1_epi8(32));
                let e = 128 * half + 32 * c;
                emit32(q, [dl(e / 16), dl(e / 16 + 1)], Off::None, &mut y[e..]);
            }
        }
    }
}
