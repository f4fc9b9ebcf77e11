#![allow(clippy::excessive_precision)] // near-tie test values are written out in full on purpose
//! f16/bf16 conversion against numpy (f16) and ml_dtypes (bf16, numpy's bfloat16 dtype), and
//! convert_bytes paths.

mod common;

use common::{judge, read_f32, read_u16, Rng};
use llmtool_kernels::convert::{can_decode, convert_bytes, from_f32, to_f32};
use llmtool_kernels::GgmlType;

/// f32 test values: random bit patterns (all classes) plus named edge cases.
fn values() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7F80_0001), // signalling NaN
        f32::from_bits(0xFFC1_2345), // NaN with payload
        65504.0,
        65519.0,
        65519.996,
        65520.0,
        -65520.0,
        65536.0,
        f32::MAX,
        f32::MIN,
        6.1035156e-5,
        5.9604645e-8,
        2.9802322e-8,
        2.9802326e-8,
        8.9406967e-8,
        1e-10,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x807F_FFFF),
        1.0 + f32::EPSILON,
        1.00390625,
        1.005859375,
        3.3895314e38,
        3.3961775e38,
        f32::from_bits(0x3F80_8000),
        f32::from_bits(0x3F81_8000),
        f32::from_bits(0x3F80_8001),
    ];
    let mut rng = Rng(42);
    for i in 0..200_000 {
        v.push(match i % 4 {
            0 => f32::from_bits(rng.next_u32()),
            // f16 range, subnormals included
            1 => f32::from_bits((rng.next_u32() & 0x807F_FFFF) | ((rng.next_u32() % 40 + 98) << 23)),
            2 => (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 140_000.0,
            _ => f32::from_bits(rng.next_u32() & 0x80FF_FFFF), // tiny / subnormal f32
        });
    }
    v
}

fn same(a: u16, b: u16, nan_exp: u16) -> bool {
    let is_nan = |x: u16| x & nan_exp == nan_exp && x & !(nan_exp | 0x8000) != 0;
    a == b || (is_nan(a) && is_nan(b))
}

#[test]
fn f32_to_f16_and_bf16_match_numpy_and_ml_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let vals = values();
    let inp = dir.path().join("in.f32");
    let mut bytes = Vec::new();
    from_f32(GgmlType::F32, &vals, &mut bytes).unwrap();
    std::fs::write(&inp, &bytes).unwrap();
    let (o16, obf) = (dir.path().join("f16.u16"), dir.path().join("bf16.u16"));
    judge("convert.py", &["encode", inp.to_str().unwrap(), o16.to_str().unwrap(), obf.to_str().unwrap()]);
    for (ty, path, nan_exp) in [(GgmlType::F16, &o16, 0x7C00u16), (GgmlType::BF16, &obf, 0x7F80)] {
        let want = read_u16(path);
        // Both the f32 path and the direct byte path must agree with the judge.
        let mut via_f32 = Vec::new();
        from_f32(ty, &vals, &mut via_f32).unwrap();
        let direct = convert_bytes(GgmlType::F32, ty, &bytes).unwrap();
        assert_eq!(via_f32, direct, "{ty}: from_f32 vs convert_bytes");
        let got: Vec<u16> = via_f32.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(got.len(), want.len());
        for i in 0..got.len() {
            assert!(
                same(got[i], want[i], nan_exp),
                "{ty}: {} ({:#010x}) -> ours {:#06x}, judge {:#06x}",
                vals[i],
                vals[i].to_bits(),
                got[i],
                want[i]
            );
        }
    }
    // Documented: f32 NaN stays NaN; 65520 overflows f16 to inf.
    let mut b = Vec::new();
    from_f32(GgmlType::BF16, &[f32::NAN, f32::from_bits(0x7F80_0001)], &mut b).unwrap();
    let mut back = [0f32; 2];
    to_f32(GgmlType::BF16, &b, &mut back).unwrap();
    assert!(back.iter().all(|x| x.is_nan()));
    let mut h = Vec::new();
    from_f32(GgmlType::F16, &[65520.0, 65519.0], &mut h).unwrap();
    assert_eq!(h, [0x00, 0x7C, 0xFF, 0x7B]);
}

#[test]
fn every_f16_and_bf16_pattern_decodes_like_numpy_and_ml_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let (o16, obf) = (dir.path().join("f16.f32"), dir.path().join("bf16.f32"));
    judge("convert.py", &["decode", o16.to_str().unwrap(), obf.to_str().unwrap()]);
    let all: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
    for (ty, path) in [(GgmlType::F16, &o16), (GgmlType::BF16, &obf)] {
        let want = read_f32(path);
        let mut got = vec![0f32; 65536];
        to_f32(ty, &all, &mut got).unwrap();
        let direct = convert_bytes(ty, GgmlType::F32, &all).unwrap();
        for i in 0..65536 {
            let d = f32::from_le_bytes(direct[4 * i..4 * i + 4].try_into().unwrap());
            if want[i].is_nan() {
                assert!(got[i].is_nan() && d.is_nan(), "{ty} {i:#06x}: NaN expected");
            } else {
                assert_eq!(got[i].to_bits(), want[i].to_bits(), "{ty} {i:#06x}");
                assert_eq!(d.to_bits(), want[i].to_bits(), "{ty} {i:#06x} convert_bytes");
            }
        }
    }
}

#[test]
fn f16_bf16_direct_paths_equal_going_through_f32() {
    let all: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
    for (from, to) in [(GgmlType::F16, GgmlType::BF16), (GgmlType::BF16, GgmlType::F16)] {
        let direct = convert_bytes(from, to, &all).unwrap();
        let mut tmp = vec![0f32; 65536];
        to_f32(from, &all, &mut tmp).unwrap();
        let mut via = Vec::new();
        from_f32(to, &tmp, &mut via).unwrap();
        assert_eq!(direct, via, "{from} -> {to}");
    }
}

#[test]
fn large_inputs_take_the_parallel_path_with_the_same_result() {
    // 2^19 elements: above the parallel threshold; compare against per-element conversion.
    let mut rng = Rng(7);
    let vals: Vec<f32> = (0..1 << 19).map(|_| f32::from_bits(rng.next_u32())).collect();
    let mut bytes = Vec::new();
    from_f32(GgmlType::BF16, &vals, &mut bytes).unwrap();
    for (i, &v) in vals.iter().enumerate() {
        assert_eq!(&bytes[2 * i..2 * i + 2], &half::bf16::from_f32(v).to_le_bytes());
    }
    let mut back = vec![0f32; vals.len()];
    to_f32(GgmlType::BF16, &bytes, &mut back).unwrap();
    for (i, &b) in back.iter().enumerate() {
        let want = half::bf16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32();
        assert!(b.to_bits() == want.to_bits() || (b.is_nan() && want.is_nan()));
    }
}

#[test]
fn integer_and_f64_decoding_and_identity_copy() {
    let mut out = [0f32; 3];
    to_f32(GgmlType::I16, &[0x00, 0x80, 0xFF, 0xFF, 0x07, 0x00], &mut out).unwrap();
    assert_eq!(out, [-32768.0, -1.0, 7.0]);
    let mut out = [0f32; 1];
    to_f32(GgmlType::F64, &0.1f64.to_le_bytes(), &mut out).unwrap();
    assert_eq!(out[0], 0.1f32);
    let q = vec![1u8; 36];
    assert_eq!(convert_bytes(GgmlType::Q4_0, GgmlType::Q4_0, &q).unwrap(), q);
    assert!(convert_bytes(GgmlType::Q4_0, GgmlType::Q4_0, &q[..35]).is_err());
    assert!(can_decode(GgmlType::Q4_1) && !can_decode(GgmlType::Q1_0));
    // Quantized → F16 via the f32 buffer.
    let mut block = vec![0x00, 0x3C];
    block.extend([0x88u8; 16]);
    let h = convert_bytes(GgmlType::Q4_0, GgmlType::F16, &block).unwrap();
    assert_eq!(h, vec![0u8; 64]);
}

#[test]
fn chunked_dequantizing_conversion_equals_whole_tensor_path_on_odd_lengths() {
    // Blocks with finite f16 scales (0x3C00 = 1.0, 0x3800 = 0.5) and varied quants.
    fn q4_1_blocks(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut b = vec![0x00, 0x38, 0x00, if i % 2 == 0 { 0x3C } else { 0xBC }];
                b.extend((0..16).map(|j| (i * 7 + j * 13) as u8));
                b
            })
            .collect()
    }
    for n_blocks in [1usize, 31, 33, 2047, 2049, 5001] {
        let src = q4_1_blocks(n_blocks);
        let mut f = vec![0f32; n_blocks * 32];
        to_f32(GgmlType::Q4_1, &src, &mut f).unwrap();
        for to in [GgmlType::F16, GgmlType::BF16, GgmlType::F32] {
            let mut want = Vec::new();
            from_f32(to, &f, &mut want).unwrap();
            assert_eq!(convert_bytes(GgmlType::Q4_1, to, &src).unwrap(), want, "{n_blocks} blocks → {to}");
        }
    }
}
