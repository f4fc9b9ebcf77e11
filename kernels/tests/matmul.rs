//! Matrix products with weights in their stored type (`llmtool_kernels::matmul`).
//!
//! Judges: (1) the activation quantizers against hand-derived values of ggml's x86 AVX2
//! scheme (ties to even, 127/amax multiplier); (2) `matmul` against an f64 product of the
//! dequantized weights and the dequantized activations (the crate's dequantizers are judged
//! against gguf-py in dequant*.rs); (3) the fast path against `vec_dot_reference` row by row.

mod common;

use common::Rng;
use half::{bf16, f16};
use llmtool_kernels::matmul::{
    self, prepare_activations, vec_dot_reference, vec_dot_type, Activations, Isa, WeightView,
};
use llmtool_kernels::{dequant, quant, GgmlType, KernelError};

/// Gaussian-ish values (sum of uniforms) with a few outliers, like real activations.
fn values(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let u: f32 = (0..4).map(|_| (rng.next_u32() as f32 / u32::MAX as f32) - 0.5).sum();
            if i % 97 == 13 {
                u * scale * 8.0
            } else {
                u * scale
            }
        })
        .collect()
}

/// Weight bytes of `ty` for `rows × k` values (quantized by the crate's quantizers; the
/// i-quants from random blocks with sane f16 scales, `common::random_iq_blocks`: every grid
/// index, sign and scale pattern is then exercised, not only those a quantizer picks).
fn weights(rng: &mut Rng, ty: GgmlType, rows: usize, k: usize) -> Vec<u8> {
    if common::IQ_TYPES.contains(&ty) {
        return common::random_iq_blocks(rng, ty, rows * k / ty.block_size());
    }
    let x = values(rng, rows * k, 0.05);
    let mut out = Vec::new();
    quant::quantize(ty, &x, &mut out).unwrap();
    out
}

/// The activation rows as the f32 values the product uses (dequantized / decoded).
fn act_values(a: &Activations) -> Vec<f32> {
    let b = a.bytes();
    match a.ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0 | GgmlType::Q8_K => {
            let mut v = vec![f32::NAN; a.k * a.rows];
            dequant::dequantize(a.ty, b, &mut v).unwrap();
            v
        }
        GgmlType::Q8_1 => b
            .chunks_exact(36)
            .flat_map(|blk| {
                let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                blk[4..].iter().map(move |&q| q as i8 as f32 * d).collect::<Vec<_>>()
            })
            .collect(),
        t => panic!("unexpected activation type {t}"),
    }
}

/// Σ_b |m_b·s_b| of a Q4_1/Q5_1 weight row and its Q8_1 activation row (the minimum term
/// ggml adds per block), 0 for other types.
fn min_terms(w_ty: GgmlType, wrow: &[u8], arow: &[u8]) -> f64 {
    if !matches!(w_ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        return 0.0;
    }
    let h = |b: &[u8], o: usize| f16::from_le_bytes([b[o], b[o + 1]]).to_f32().abs() as f64;
    wrow.chunks(w_ty.type_size()).zip(arow.chunks(36)).map(|(wb, ab)| h(wb, 2) * h(ab, 2)).sum()
}

/// Checks `matmul` (both instruction sets), `matmul_reference` and `vec_dot_reference`:
/// - against the f64 product of the dequantized operands, within: f32 rounding of the per-block
///   scale products and of the sum over blocks (bounded by (nb + 2)·2⁻²³ of Σ|w·a| + Σ|m·s|),
///   plus for Q8_1 the term `m·s` ggml uses for the weight minimum: `s = f16(d32·Σq)` differs
///   from the dequantized `f16(d32)·Σq` by ≤ 2⁻¹¹ (rounding of s) + 2⁻¹¹ (rounding of d);
/// - fast against reference within the f32-rounding part only: both compute the same exact
///   integer sum per block (ggml's scheme) and differ only in the f32 accumulation order.
fn check_product(ty: GgmlType, rows: usize, k: usize, n_tokens: usize, seed: u64) {
    let mut rng = Rng(seed);
    let wbytes = weights(&mut rng, ty, rows, k);
    let x = values(&mut rng, n_tokens * k, 1.0);
    let w = WeightView { ty, rows, k, bytes: &wbytes };
    let acts = prepare_activations(ty, &x, k).unwrap();
    assert_eq!((acts.ty, acts.k, acts.rows), (vec_dot_type(ty).unwrap(), k, n_tokens));
    let mut results = Vec::new();
    for isa in Isa::ALL {
        if !isa.available() {
            eprintln!("this CPU lacks {isa:?}: those kernels are not tested");
            continue;
        }
        let mut out = vec![f32::NAN; rows * n_tokens];
        matmul::matmul_with(&w, &acts, &mut out, isa).unwrap();
        results.push((format!("{isa:?}"), out));
    }
    let mut out = vec![f32::NAN; rows * n_tokens];
    matmul::matmul_reference(&w, &acts, &mut out).unwrap();
    let reference = out;

    let wv = common::dequantized(ty, &wbytes);
    let av = act_values(&acts);
    let wrb = wbytes.len() / rows;
    let nb = (k / ty.block_size()) as f64;
    for t in 0..n_tokens {
        let arow = &av[t * k..(t + 1) * k];
        for r in 0..rows {
            let wrow = &wv[r * k..(r + 1) * k];
            let exact: f64 = wrow.iter().zip(arow).map(|(&w, &a)| w as f64 * a as f64).sum();
            let abs: f64 = wrow.iter().zip(arow).map(|(&w, &a)| (w as f64 * a as f64).abs()).sum();
            let ms = min_terms(ty, &wbytes[r * wrb..(r + 1) * wrb], acts.row(t));
            let f32_tol = (nb + 2.0) * 2f64.powi(-23) * (abs + ms) + 1e-30;
            let tol = f32_tol + ms * 2f64.powi(-10) * 1.01;
            let want = reference[t * rows + r] as f64;
            let rf = vec_dot_reference(ty, &wbytes[r * wrb..(r + 1) * wrb], acts.row(t), k).unwrap() as f64;
            assert_eq!(rf, want, "matmul_reference == vec_dot_reference");
            assert!(
                (want - exact).abs() <= tol,
                "{ty} rows {rows} k {k} tokens {n_tokens}: reference [{t}][{r}] = {want}, f64 product {exact}, tolerance {tol}"
            );
            for (name, out) in &results {
                let got = out[t * rows + r] as f64;
                assert!(
                    (got - want).abs() <= 2.0 * f32_tol,
                    "{ty} rows {rows} k {k} tokens {n_tokens}: {name} [{t}][{r}] = {got}, reference {want}, tolerance {}",
                    2.0 * f32_tol
                );
            }
        }
    }
}

#[test]
fn vec_dot_types_follow_ggml_type_traits_cpu() {
    use GgmlType::*;
    let table = [
        (F32, F32),
        (F16, F16),
        (BF16, BF16),
        (Q4_0, Q8_0),
        (Q4_1, Q8_1),
        (Q5_0, Q8_0),
        (Q5_1, Q8_1),
        (Q8_0, Q8_0),
        (Q2_K, Q8_K),
        (Q3_K, Q8_K),
        (Q4_K, Q8_K),
        (Q5_K, Q8_K),
        (Q6_K, Q8_K),
        (IQ4_NL, Q8_0),
        (IQ4_XS, Q8_K),
        (IQ3_S, Q8_K),
        (IQ3_XXS, Q8_K),
        (IQ2_S, Q8_K),
        (IQ2_XS, Q8_K),
        (IQ2_XXS, Q8_K),
        (IQ1_M, Q8_K),
        (IQ1_S, Q8_K),
    ];
    for (w, a) in table {
        assert_eq!(vec_dot_type(w).unwrap(), a, "{w}");
    }
    assert_eq!(vec_dot_type(TQ2_0), Err(KernelError::Unsupported { ty: TQ2_0, op: "matmul" }));
}

/// ggml x86 AVX2 `quantize_row_q8_0`: id = 127/amax, then round to nearest EVEN. With
/// amax = 127 the multiplier is exactly 1, so the quants are the inputs rounded half-even —
/// where `quantize_row_q8_0_ref` (roundf) would round 2.5 → 3 and −3.5 → −4 … and 0.5 → 1.
#[test]
fn q8_0_activations_round_half_to_even_like_avx2() {
    let mut x = [0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -3.5;
    x[3] = 0.5;
    x[4] = -0.5;
    x[5] = 1.5;
    x[6] = -126.5;
    let a = prepare_activations(GgmlType::Q8_0, &x, 32).unwrap();
    let b = a.bytes();
    assert_eq!(b.len(), 34);
    assert_eq!(f16::from_le_bytes([b[0], b[1]]), f16::from_f32(1.0));
    let q: Vec<i8> = b[2..9].iter().map(|&v| v as i8).collect();
    assert_eq!(q, [127, 2, -4, 0, 0, 2, -126]);

    // Q8_1 keeps s = f16(d · Σq) with the f32 d = amax/127.
    let mut y = [0f32; 32];
    for (i, v) in y.iter_mut().enumerate() {
        *v = (i as f32 - 10.0) * 0.37;
    }
    let a = prepare_activations(GgmlType::Q4_1, &y, 32).unwrap();
    let b = a.bytes();
    assert_eq!(b.len(), 36);
    let amax = 21.0f32 * 0.37;
    let d = amax / 127.0;
    let id = 127.0 / amax;
    let q: Vec<i32> = y.iter().map(|&v| (v * id).round_ties_even() as i32).collect();
    assert_eq!(f16::from_le_bytes([b[0], b[1]]), f16::from_f32(d));
    assert_eq!(f16::from_le_bytes([b[2], b[3]]), f16::from_f32(d * q.iter().sum::<i32>() as f32));
    assert_eq!(b[4..].iter().map(|&v| v as i8 as i32).collect::<Vec<_>>(), q);

    // An all-zero block: d = 0, quants 0 (ggml: id = 0).
    let a = prepare_activations(GgmlType::Q4_0, &[0.0; 32], 32).unwrap();
    assert!(a.bytes().iter().all(|&v| v == 0));
}

/// F16 / BF16 activations are the f32 inputs rounded to nearest-even (ggml `from_float`).
#[test]
fn half_activations_round_like_ggml() {
    let x: Vec<f32> = (0..8).map(|i| 1.0 + i as f32 * 1.37e-4).collect();
    let a = prepare_activations(GgmlType::F16, &x, 8).unwrap();
    let want: Vec<u8> = x.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
    assert_eq!(a.bytes(), &want[..]);
    let a = prepare_activations(GgmlType::BF16, &x, 8).unwrap();
    let want: Vec<u8> = x.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
    assert_eq!(a.bytes(), &want[..]);
}

#[test]
fn matmul_matches_f64_product_of_dequantized_operands() {
    for (i, &ty) in common::MATMUL_WEIGHT_TYPES.iter().enumerate() {
        let bs = ty.block_size().max(if ty.is_quantized() { 1 } else { 32 });
        for (j, &(rows, tokens)) in [(1, 1), (3, 5), (17, 33)].iter().enumerate() {
            for blocks in [1, 3] {
                check_product(ty, rows, bs * blocks, tokens, (i * 100 + j * 10 + blocks) as u64);
            }
        }
    }
}

#[test]
fn smollm_like_shape_matches_reference() {
    // k = 576 (SmolLM2 n_embd), more rows than one task's tile (16 quantized, 64 float rows),
    // a row count that is not a multiple of the 4-row kernel.
    for &ty in common::MATMUL_WEIGHT_TYPES {
        let k = if ty.block_size() == 256 { 768 } else { 576 };
        check_product(ty, 70, k, 9, 7);
    }
}

#[test]
fn bad_lengths_are_typed_errors() {
    let ty = GgmlType::Q4_0;
    // k not a multiple of the block size.
    assert_eq!(
        prepare_activations(ty, &[0.0; 48], 48).unwrap_err(),
        KernelError::RaggedBlocks { ty, n_elements: 48, block_size: 32 }
    );
    // x not whole rows.
    assert!(matches!(prepare_activations(ty, &[0.0; 65], 32), Err(KernelError::RaggedBlocks { .. })));
    let acts = prepare_activations(ty, &[0.5; 64], 32).unwrap();
    let bytes = vec![0u8; 3 * 18];
    // Weight bytes short by one.
    let w = WeightView { ty, rows: 3, k: 32, bytes: &bytes[..53] };
    let mut out = vec![0f32; 6];
    assert_eq!(
        matmul::matmul(&w, &acts, &mut out).unwrap_err(),
        KernelError::ByteLength { ty, n_elements: 96, expected: 54, found: 53 }
    );
    // Output of the wrong length.
    let w = WeightView { ty, rows: 3, k: 32, bytes: &bytes };
    assert!(matches!(matmul::matmul(&w, &acts, &mut out[..5]), Err(KernelError::ByteLength { .. })));
    // Activations of another k, or of another type.
    let w64 = WeightView { ty, rows: 1, k: 64, bytes: &bytes[..36] };
    assert!(matches!(matmul::matmul(&w64, &acts, &mut out[..2]), Err(KernelError::ByteLength { .. })));
    let acts_q81 = prepare_activations(GgmlType::Q4_1, &[0.5; 64], 32).unwrap();
    assert!(matches!(matmul::matmul(&w, &acts_q81, &mut out), Err(KernelError::Unsupported { .. })));
    // matmul_f32 with x of the wrong length.
    assert!(matches!(matmul::matmul_f32(&w, &[0.0; 63], 2, &mut out), Err(KernelError::ByteLength { .. })));
    // vec_dot_reference with rows of the wrong length; unsupported type.
    assert!(vec_dot_reference(ty, &bytes[..17], &acts.bytes()[..34], 32).is_err());
    assert!(vec_dot_reference(ty, &bytes[..18], &acts.bytes()[..33], 32).is_err());
    assert!(vec_dot_reference(GgmlType::TQ2_0, &[], &[], 0).is_err());
    // A row length that is not whole blocks, even when the tensor is (2 × 48 = 3 blocks).
    let w48 = WeightView { ty, rows: 2, k: 48, bytes: &bytes };
    assert!(matches!(matmul::matmul(&w48, &acts, &mut out[..4]), Err(KernelError::RaggedBlocks { .. })));
    // Activations whose public shape fields were changed after preparation.
    let mut bad = acts.clone();
    bad.rows = 3;
    assert!(matches!(matmul::matmul(&w, &bad, &mut [0f32; 9]), Err(KernelError::ByteLength { .. })));
    // Zero tokens: nothing to do, no error.
    let empty = prepare_activations(ty, &[], 32).unwrap();
    matmul::matmul(&w, &empty, &mut []).unwrap();
}

#[test]
fn gemm_f32_matches_f64_for_all_transposes() {
    use matmul::{gemm_f32, Trans};
    let mut rng = Rng(99);
    // Attention-like (n×64 · 64×n) and odd shapes; the large one takes the parallel path.
    for &(m, n, k) in &[(1, 1, 1), (5, 3, 7), (33, 17, 64), (300, 200, 64)] {
        let a = values(&mut rng, m * k, 1.0);
        let b = values(&mut rng, k * n, 1.0);
        for ta in [Trans::N, Trans::T] {
            for tb in [Trans::N, Trans::T] {
                let at = |i: usize, p: usize| if ta == Trans::N { a[i * k + p] } else { a[p * m + i] };
                let bt = |p: usize, j: usize| if tb == Trans::N { b[p * n + j] } else { b[j * k + p] };
                let mut c = vec![1.0f32; m * n];
                gemm_f32(&a, ta, &b, tb, &mut c, m, n, k, 0.5, 2.0).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k).map(|p| at(i, p) as f64 * bt(p, j) as f64).sum();
                        let abs: f64 = (0..k).map(|p| (at(i, p) as f64 * bt(p, j) as f64).abs()).sum();
                        let want = 0.5 * dot + 2.0;
                        let got = c[i * n + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-6 * (abs + 2.0),
                            "{m}x{n}x{k} {ta:?}{tb:?} [{i},{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
    let mut c = vec![0f32; 4];
    assert!(gemm_f32(&[0.0; 3], Trans::N, &[0.0; 4], Trans::N, &mut c, 2, 2, 2, 1.0, 0.0).is_err());
}

/// The activation path (AVX2 when available) is byte-identical to the scalar transcription
/// `quantize_row_q8_0/1` on random rows, halfway cases, zeros and tiny values.
#[test]
fn q8_activation_fast_path_equals_scalar_reference() {
    let mut rng = Rng(5);
    let mut x = values(&mut rng, 64 * 32, 1.0);
    for (i, v) in x[..32].iter_mut().enumerate() {
        *v = if i == 3 { 127.0 } else { i as f32 - 15.5 };
    }
    x[32..64].fill(0.0);
    x[64..96].iter_mut().enumerate().for_each(|(i, v)| *v = i as f32 * 1e-40);
    let n = x.len() / 32;
    let mut r0 = vec![bytemuck::Zeroable::zeroed(); n];
    matmul::quantize_row_q8_0(&x, &mut r0);
    let a = prepare_activations(GgmlType::Q4_0, &x, 32).unwrap();
    assert_eq!(a.bytes(), bytemuck::cast_slice::<_, u8>(&r0));
    let mut r1 = vec![bytemuck::Zeroable::zeroed(); n];
    matmul::quantize_row_q8_1(&x, &mut r1);
    let a = prepare_activations(GgmlType::Q5_1, &x, 32).unwrap();
    assert_eq!(a.bytes(), bytemuck::cast_slice::<_, u8>(&r1));
}

/// The Q8_K activation path (AVX2 when available) is byte-identical to the reference
/// quantizer (ggml `quantize_row_q8_K_ref`) on random rows, ties, zeros, a repeated largest
/// magnitude of both signs, NaN, subnormal maxima (iscale overflows) and huge values.
#[test]
fn q8_k_activation_fast_path_equals_reference() {
    use llmtool_kernels::quant;
    let mut rng = Rng(9);
    let mut x = values(&mut rng, 8 * 256, 3.0);
    for (i, v) in x[..256].iter_mut().enumerate() {
        *v = (i as f32 - 127.5) * 0.5; // halfway cases after scaling
    }
    x[256..512].fill(0.0);
    x[512 + 7] = -4.0;
    x[512 + 9] = 4.0; // first largest magnitude is the negative one
    x[768 + 3] = f32::NAN;
    x[1024..1280].iter_mut().enumerate().for_each(|(i, v)| *v = i as f32 * 1e-43);
    x[1280 + 5] = 3.0e38;
    x[1536] = -0.0;
    let mut want = Vec::new();
    quant::quantize(GgmlType::Q8_K, &x, &mut want).unwrap();
    let a = prepare_activations(GgmlType::Q4_K, &x, 256).unwrap();
    for (b, (got, want)) in a.bytes().chunks(292).zip(want.chunks(292)).enumerate() {
        assert_eq!(got, want, "block {b}");
    }
}

/// Float weights take any k (not only multiples of the 8-wide F16C conversion / sgemm tiles).
#[test]
fn float_types_with_odd_k() {
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for (rows, k, tokens) in [(1, 1, 1), (5, 13, 3), (67, 61, 2)] {
            check_product(ty, rows, k, tokens, 41);
        }
    }
}

/// The float register tiles (4 rows × up to 6 tokens, 16-wide steps): every token remainder
/// 1–6, row counts that leave 1–3 rows, a masked k tail, and more rows than one task.
#[test]
fn float_register_tiles_cover_every_remainder() {
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for (rows, k, tokens) in [(70, 589, 13), (5, 16, 7), (131, 32, 11), (6, 47, 12)] {
            check_product(ty, rows, k, tokens, 43);
        }
    }
}

/// `PackedWeights` (tiles unpacked once) gives the same bits as `matmul`, for 1 and many
/// tokens, and rejects float types, bad lengths and mismatched activations.
#[test]
fn packed_weights_equal_matmul() {
    use matmul::PackedWeights;
    let mut rng = Rng(77);
    for ty in [
        GgmlType::Q4_1,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q6_K,
        GgmlType::Q4_K,
        GgmlType::IQ4_XS,
        GgmlType::IQ1_M,
    ] {
        let (rows, k) = (37, if ty.block_size() == 256 { 512 } else { 576 });
        let wb = weights(&mut rng, ty, rows, k);
        let w = WeightView { ty, rows, k, bytes: &wb };
        let packed = PackedWeights::new(&w).unwrap();
        for n in [1, 6] {
            let acts = prepare_activations(ty, &values(&mut rng, n * k, 1.0), k).unwrap();
            let mut a = vec![f32::NAN; rows * n];
            let mut b = vec![f32::NAN; rows * n];
            matmul::matmul(&w, &acts, &mut a).unwrap();
            packed.matmul(&acts, &mut b).unwrap();
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{ty} n {n}"
            );
            assert!(packed.matmul(&acts, &mut b[1..]).is_err());
        }
        let other = prepare_activations(GgmlType::F32, &[0.0; 576], 576).unwrap();
        assert!(packed.matmul(&other, &mut [0.0; 37]).is_err());
    }
    let f = vec![0u8; 64];
    assert!(PackedWeights::new(&WeightView { ty: GgmlType::F16, rows: 1, k: 32, bytes: &f }).is_err());
    assert!(PackedWeights::new(&WeightView { ty: GgmlType::Q4_0, rows: 2, k: 32, bytes: &f[..35] }).is_err());
}

/// The i-quants: the fast product (every instruction set) against `vec_dot_reference` and the
/// f64 product of the dequantized operands, for 1, 3 and 17 tokens and 37 rows (two full
/// 16-row tiles and a 5-row one: the 4-row kernel and its 1-row remainder), k of 1 and 3
/// super-blocks; random blocks, so every grid index, sign and scale value occurs.
#[test]
fn iquants_match_reference_and_dequantized_product() {
    for (i, &ty) in common::IQ_TYPES.iter().enumerate() {
        for (j, tokens) in [1, 3, 17].into_iter().enumerate() {
            for k in [256, 768] {
                check_product(ty, 37, k, tokens, (1000 + i * 10 + j) as u64 + k as u64);
            }
        }
    }
}

/// Extreme i-quant blocks: all index/sign/scale bits set (largest grid values, all negative,
/// largest scales) and all clear (IQ4_XS: every weight −127 with scale −32), against Q8_K
/// activations of −127 — the largest products the `maddubs` pairs see (2·127·127 < 2¹⁵: no
/// i16 saturation).
#[test]
fn iquant_extreme_blocks_do_not_saturate() {
    let k = 256;
    for &ty in &common::IQ_TYPES[1..] {
        let mut rng = Rng(3);
        let mut w = common::random_iq_blocks(&mut rng, ty, 2);
        // Keep the super-scale, set everything else to all ones (largest indices, all signs,
        // largest scales) in the first row, and to zero in the second (IQ4_XS: index 0 = −127
        // with scale −32).
        let ts = ty.type_size();
        let d_end = if ty == GgmlType::IQ1_M { 0 } else { 2 };
        w[d_end..ts].iter_mut().for_each(|b| *b = 0xFF);
        w[ts + d_end..].iter_mut().for_each(|b| *b = 0);
        if ty == GgmlType::IQ1_M {
            // Restore the super-scale nibbles (top nibbles of bytes 49, 51, 53, 55).
            let fresh = common::random_iq_blocks(&mut Rng(3), ty, 2);
            for b in [0, ts] {
                for n in [49, 51, 53, 55] {
                    w[b + n] = (w[b + n] & 0x0F) | (fresh[b + n] & 0xF0);
                }
            }
        }
        // Q8_K maps the first largest |x| to −127: all quants are −127, all products of one
        // sign, the pair sums largest where the weights are −127 (IQ4_XS, second row).
        let x = vec![1.0f32; 2 * k];
        let wv = WeightView { ty, rows: 2, k, bytes: &w };
        let acts = prepare_activations(ty, &x, k).unwrap();
        let mut want = vec![0f32; 4];
        matmul::matmul_reference(&wv, &acts, &mut want).unwrap();
        let deq = common::dequantized(ty, &w);
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let mut got = vec![f32::NAN; 4];
            matmul::matmul_with(&wv, &acts, &mut got, isa).unwrap();
            for (c, (&g, &r)) in got.iter().zip(&want).enumerate() {
                let (t, row) = (c / 2, c % 2);
                let exact: f64 = (0..k).map(|e| deq[row * k + e] as f64 * x[t * k + e] as f64).sum();
                assert!((g as f64 - r as f64).abs() <= 1e-5 * r.abs() as f64 + 1e-30, "{ty} {isa:?} [{c}]: {g} vs {r}");
                assert!((r as f64 - exact).abs() <= 1e-5 * exact.abs(), "{ty} [{c}]: reference {r} vs f64 {exact}");
            }
        }
    }
}
