//! Legacy block quantizers (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) byte-for-byte against gguf-py
//! (llama.cpp's numpy port of ggml's `quantize_row_*_ref`), Q5_0/Q5_1 dequantization against
//! gguf-py, the parallel paths against the scalar reference, and `convert_bytes` into
//! quantized targets.

mod common;

use common::{assert_bits_eq, judge, read_f32, real_model, Rng};
use llmtool_kernels::convert::{can_encode, convert_bytes, from_f32, to_f32};
use llmtool_kernels::dequant::{dequantize, dequantize_parallel, dequantize_reference};
use llmtool_kernels::quant::{can_quantize, has_simd, quantize, quantize_parallel, quantize_reference};
use llmtool_kernels::{GgmlType, KernelError};
use std::path::Path;

const TYPES: [GgmlType; 5] = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1];

fn write_f32(path: &Path, x: &[f32]) {
    std::fs::write(path, x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

/// Runs the judge on `x` for every type in `TYPES`; returns gguf-py's bytes per type.
fn judged(dir: &Path, tag: &str, x: &[f32]) -> Vec<Vec<u8>> {
    let inp = dir.join(format!("{tag}.f32"));
    let prefix = dir.join(tag);
    write_f32(&inp, x);
    let mut args = vec!["quantize", inp.to_str().unwrap(), prefix.to_str().unwrap()];
    args.extend(TYPES.iter().map(|t| t.name()));
    judge("quant.py", &args);
    TYPES.iter().map(|t| std::fs::read(dir.join(format!("{tag}.{}.bin", t.name()))).unwrap()).collect()
}

/// gguf-py's bytes with its one known departure from ggml undone. For Q4_0/Q5_0, ggml's
/// `quantize_row_q4_0_ref`/`_q5_0_ref` start from `float max = 0.0f` and only replace it on a
/// strictly larger |v|, so a block of zeros gets d = +0 / −8 = −0 (f16 0x8000); gguf-py takes
/// `max` from the block (`argmax` picks element 0), so when element 0 is −0.0 its d is +0.
/// We follow ggml; the quants are the same either way and still come from gguf-py.
///
/// Likewise for Q4_1/Q5_1: numpy's `min`/`max` reductions do not specify which zero they
/// return when +0 and −0 tie (its SIMD reduction returns either), while ggml's
/// `if (v < min) min = v;` keeps the first. So for a block whose minimum is zero and that
/// holds zeros of both signs, m takes the sign of the first zero, and an all-zero block has
/// d = first − first = +0. (These signs never change a dequantized value.)
fn ggml_expected(ty: GgmlType, x: &[f32], theirs: &[u8]) -> Vec<u8> {
    let mut want = theirs.to_vec();
    if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        for (xs, block) in x.chunks_exact(32).zip(want.chunks_exact_mut(ty.type_size())) {
            let zeros = || xs.iter().filter(|v| **v == 0.0);
            let min_is_zero = xs.iter().all(|&v| v >= 0.0) && zeros().next().is_some();
            if min_is_zero && zeros().any(|v| v.is_sign_positive()) && zeros().any(|v| v.is_sign_negative()) {
                let first = *zeros().next().unwrap();
                block[2..4].copy_from_slice(&half::f16::from_f32(first).to_le_bytes());
                if xs.iter().all(|&v| v == 0.0) {
                    block[..2].copy_from_slice(&[0x00, 0x00]);
                }
            }
        }
    }
    if matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0) {
        for (xs, block) in x.chunks_exact(32).zip(want.chunks_exact_mut(ty.type_size())) {
            if xs.iter().all(|&v| v == 0.0) && xs[0].is_sign_negative() {
                assert_eq!(block[..2], [0x00, 0x00], "gguf-py's d for a −0.0-first zero block");
                block[..2].copy_from_slice(&half::f16::from_f32(-0.0).to_le_bytes());
            }
        }
    }
    want
}

/// Compares two encodings of `x` block by block; returns a message naming the differing
/// blocks (up to 5) and their inputs.
fn diff_blocks(
    what: &str,
    ty: GgmlType,
    x: &[f32],
    ours: &[u8],
    theirs: &[u8],
    label: &dyn Fn(usize) -> String,
) -> Option<String> {
    if ours.len() != theirs.len() {
        return Some(format!("{what} {ty}: byte length ours {} judge {}", ours.len(), theirs.len()));
    }
    let size = ty.type_size();
    let bad: Vec<String> = ours
        .chunks_exact(size)
        .zip(theirs.chunks_exact(size))
        .enumerate()
        .filter(|(_, (o, t))| o != t)
        .map(|(b, (o, t))| {
            let xs = &x[b * 32..(b + 1) * 32];
            format!("block {b} ({})\n ours  {o:02x?}\n judge {t:02x?}\n input {xs:?}", label(b))
        })
        .collect();
    (!bad.is_empty()).then(|| {
        format!("{what} {ty}: {} blocks differ, first ones:\n{}", bad.len(), bad[..bad.len().min(5)].join("\n"))
    })
}

/// Asserts ours equals gguf-py's bytes, adjusted by [`ggml_expected`].
fn assert_judged(what: &str, ty: GgmlType, x: &[f32], ours: &[u8], theirs: &[u8], label: &dyn Fn(usize) -> String) {
    if let Some(msg) = diff_blocks(what, ty, x, ours, &ggml_expected(ty, x, theirs), label) {
        panic!("{msg}");
    }
}

fn ours(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    quantize(ty, x, &mut out).unwrap();
    out
}

fn uniform(rng: &mut Rng) -> f32 {
    (rng.next_u32() as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32
}

fn normal(rng: &mut Rng) -> f32 {
    // Box–Muller in f64.
    let u1 = (rng.next_u32() as f64 + 1.0) / (u32::MAX as f64 + 2.0);
    let u2 = rng.next_u32() as f64 / u32::MAX as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Synthetic blocks by category: (name, 32 values per block × blocks).
fn synthetic() -> Vec<(&'static str, Vec<f32>)> {
    let mut rng = Rng(2024);
    let mut cats: Vec<(&'static str, Vec<f32>)> = Vec::new();
    let mut cat = |name, n_blocks: usize, f: &mut dyn FnMut(usize, usize) -> f32| {
        let v = (0..n_blocks * 32).map(|i| f(i / 32, i % 32)).collect();
        cats.push((name, v));
    };
    cat("normal σ=0.02", 300, &mut |_, _| normal(&mut rng) * 0.02);
    cat("normal σ=1", 300, &mut |_, _| normal(&mut rng));
    cat("uniform [-1,1]", 300, &mut |_, _| uniform(&mut rng));
    cat("uniform [0,1) (positive only)", 100, &mut |_, _| uniform(&mut rng).abs());
    cat("uniform (-1,0] (negative only)", 100, &mut |_, _| -uniform(&mut rng).abs());
    cat("half exact zeros", 200, &mut |_, _| if rng.next_u32().is_multiple_of(2) { 0.0 } else { normal(&mut rng) });
    cat("all zero / negative zero", 4, &mut |b, _| if b % 2 == 0 { 0.0 } else { -0.0 });
    cat("mixed ±0 zeros", 6, &mut |b, j| match b {
        0 => {
            if j % 2 == 0 {
                -0.0
            } else {
                0.0
            }
        }
        1 => {
            if j % 2 == 0 {
                0.0
            } else {
                -0.0
            }
        }
        2 => {
            if j == 0 {
                -0.0
            } else {
                0.0
            }
        }
        3 => {
            if j == 31 {
                -0.0
            } else {
                0.0
            }
        }
        4 => [0.0, -0.0, 0.5][j % 3],
        _ => [-0.0, 0.0, -0.25][j % 3],
    });
    cat("one non-zero", 64, &mut |b, j| {
        if j == b % 32 {
            if b % 2 == 0 {
                1.5
            } else {
                -0.7
            }
        } else {
            0.0
        }
    });
    let consts = [1.0f32, -1.0, 0.1, -3.7, 1e-3, 65504.0, -1e5];
    cat("all-equal blocks", consts.len(), &mut |b, _| consts[b]);
    cat("large magnitudes (d overflows f16 in part)", 200, &mut |b, _| normal(&mut rng) * [1e3, 3e4, 1e5, 1e6][b % 4]);
    cat("small magnitudes (d underflows f16)", 200, &mut |b, _| normal(&mut rng) * [1e-5, 1e-8, 1e-20, 1e-30][b % 4]);
    // The element of largest magnitude is negative, and ± ties of the largest magnitude
    // (the first one sets the sign of d in Q4_0/Q5_0).
    cat("negative max", 100, &mut |_, j| if j == 7 { -2.0 } else { uniform(&mut rng) });
    cat("± tie of the max", 100, &mut |b, j| match j {
        3 => {
            if b % 2 == 0 {
                1.25
            } else {
                -1.25
            }
        }
        20 => {
            if b % 2 == 0 {
                -1.25
            } else {
                1.25
            }
        }
        _ => uniform(&mut rng),
    });
    // Grids of half-integers scaled so that x / d lands on .5 ties of the rounding steps.
    for (name, top) in [("grid ties for Q4_0", 8), ("grid ties for Q5_0", 16), ("grid ties for Q8_0", 127)] {
        let mut f = |_: usize, j: usize| {
            if j == 0 {
                -(top as f32)
            } else {
                (rng.next_u32() % (4 * top + 1)) as f32 / 2.0 - top as f32
            }
        };
        cat(name, 100, &mut f);
    }
    cat("Q4_1/Q5_1 grids (min 0, max 15 or 31)", 100, &mut |b, j| match j {
        0 => 0.0,
        1 => [15.0, 31.0][b % 2],
        _ => (rng.next_u32() % 63) as f32 / 2.0,
    });
    cat("random f32 bit patterns in [1e-30, 1e30]", 200, &mut |_, _| loop {
        let v = f32::from_bits(rng.next_u32());
        if v.is_finite() && (v == 0.0 || (1e-30..1e30).contains(&v.abs())) {
            break v;
        }
    });
    cats
}

#[test]
fn synthetic_blocks_quantize_like_gguf_py_bytewise() {
    let cats = synthetic();
    let mut x = Vec::new();
    let mut ranges = Vec::new();
    for (name, v) in &cats {
        ranges.push((x.len() / 32, *name));
        x.extend_from_slice(v);
    }
    let label = |b: usize| ranges.iter().rev().find(|(start, _)| *start <= b).unwrap().1.to_string();
    let dir = tempfile::tempdir().unwrap();
    let theirs = judged(dir.path(), "synthetic", &x);
    // Both the fast path (SIMD where available) and the scalar reference against gguf-py.
    let failures: Vec<String> = TYPES
        .iter()
        .zip(&theirs)
        .flat_map(|(&ty, t)| {
            let want = ggml_expected(ty, &x, t);
            let mut reference = Vec::new();
            quantize_reference(ty, &x, &mut reference).unwrap();
            [
                diff_blocks("synthetic (fast path)", ty, &x, &ours(ty, &x), &want, &label),
                diff_blocks("synthetic (reference)", ty, &x, &reference, &want, &label),
            ]
        })
        .flatten()
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn large_input_takes_the_parallel_path_and_matches_gguf_py() {
    // 5000 blocks: above dequant::PARALLEL_MIN_BLOCKS, so `quantize` runs in parallel.
    let mut rng = Rng(77);
    let x: Vec<f32> = (0..5000 * 32).map(|_| normal(&mut rng) * 0.05).collect();
    let dir = tempfile::tempdir().unwrap();
    let theirs = judged(dir.path(), "large", &x);
    for (&ty, t) in TYPES.iter().zip(&theirs) {
        assert_judged("5000 blocks", ty, &x, &ours(ty, &x), t, &|_| "normal".into());
    }
}

#[test]
fn real_model_tensors_quantize_like_gguf_py_bytewise() {
    // The model is Q4_1 (with Q8_0 and F32 tensors): gguf-py dequantizes them to realistic
    // f32 weights, which must equal ours bit for bit, and then both quantize those weights.
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let names = ["blk.0.attn_k.weight", "blk.3.attn_q.weight", "blk.29.ffn_down.weight", "blk.0.attn_norm.weight"];
    let mut args = vec!["model", model.to_str().unwrap(), dir.path().to_str().unwrap()];
    args.extend(names);
    judge("dequant.py", &args);
    let manifest = std::fs::read_to_string(dir.path().join("manifest.tsv")).unwrap();
    let mut compared = 0;
    for line in manifest.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, ty, n): (&str, GgmlType, usize) = (f[0], GgmlType::from_name(f[1]).unwrap(), f[2].parse().unwrap());
        let raw = std::fs::read(dir.path().join(format!("{name}.raw"))).unwrap();
        let mut x = vec![f32::NAN; n];
        dequantize(ty, &raw, &mut x).unwrap();
        assert_bits_eq(name, &x, &read_f32(&dir.path().join(format!("{name}.f32"))));
        let theirs = judged(dir.path(), name, &x);
        for (&qt, t) in TYPES.iter().zip(&theirs) {
            assert_judged(name, qt, &x, &ours(qt, &x), t, &|_| name.into());
            compared += 1;
        }
    }
    assert_eq!(compared, names.len() * TYPES.len());
}

#[test]
fn parallel_quantize_equals_reference_on_odd_block_counts() {
    for &ty in &TYPES {
        for n_blocks in [1usize, 31, 33, 1023, 4097] {
            let mut rng = Rng(n_blocks as u64 + 5);
            let x: Vec<f32> = (0..n_blocks * 32).map(|_| normal(&mut rng)).collect();
            let mut reference = vec![0xAA];
            quantize_reference(ty, &x, &mut reference).unwrap();
            assert_eq!(reference.len(), 1 + n_blocks * ty.type_size());
            let mut auto = vec![0xAA];
            quantize(ty, &x, &mut auto).unwrap();
            assert!(auto == reference, "{ty} {n_blocks} blocks: quantize != reference");
            for chunk in [1usize, 7, 32, 1024] {
                let mut par = vec![0xAA];
                quantize_parallel(ty, &x, &mut par, chunk).unwrap();
                assert!(par == reference, "{ty} {n_blocks} blocks, chunk {chunk}: parallel != reference");
            }
        }
    }
}

#[test]
fn simd_fast_path_equals_reference() {
    // Synthetic categories plus random finite bit patterns over the whole f32 range
    // (magnitudes ≥ 1e-30 so that 1/d stays finite, see quant's module docs), shuffled
    // into blocks, and an unaligned output position.
    let mut x: Vec<f32> = synthetic().into_iter().flat_map(|(_, v)| v).collect();
    let mut rng = Rng(31337);
    while x.len() < 40_000 * 32 {
        let v = f32::from_bits(rng.next_u32());
        if v.is_finite() && (v == 0.0 || v.abs() >= 1e-30) {
            x.push(v);
        }
    }
    for &ty in &TYPES {
        eprintln!("{ty}: SIMD kernel in use: {}", has_simd(ty));
        let mut reference = vec![0x55];
        quantize_reference(ty, &x, &mut reference).unwrap();
        let mut fast = vec![0x55];
        quantize(ty, &x, &mut fast).unwrap();
        let diff = diff_blocks("fast vs reference", ty, &x, &fast[1..], &reference[1..], &|_| String::new());
        assert!(diff.is_none(), "{}", diff.unwrap());
    }
}

#[test]
fn quantize_then_dequantize_stays_within_half_a_step() {
    // A property of the formats, independent of gguf-py: every value comes back within half
    // a quantization step (plus the f16 rounding of d and m) of the input.
    let mut rng = Rng(9);
    let x: Vec<f32> = (0..64 * 32).map(|_| normal(&mut rng)).collect();
    for &ty in &TYPES {
        let q = ours(ty, &x);
        let mut y = vec![0f32; x.len()];
        dequantize(ty, &q, &mut y).unwrap();
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let (lo, hi) = xb.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            let amax = lo.abs().max(hi.abs());
            let step = match ty {
                GgmlType::Q8_0 => amax / 127.0,
                GgmlType::Q4_0 => amax / 8.0,
                GgmlType::Q5_0 => amax / 16.0,
                GgmlType::Q4_1 => (hi - lo) / 15.0,
                _ => (hi - lo) / 31.0,
            };
            for (j, (a, c)) in xb.iter().zip(yb).enumerate() {
                // Q4_0/Q5_0 clamp the top level (+8/+16 steps is not representable): one step.
                let tol = step * 0.5 + step * 0.01 + amax * 2e-3;
                let tol = if matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0) { tol + step * 0.5 } else { tol };
                assert!((a - c).abs() <= tol, "{ty} block {b}[{j}]: {a} → {c} (step {step})");
            }
        }
    }
}

/// Random blocks with finite f16 scale fields (d; and m for Q5_1), random bits elsewhere.
fn random_q5_blocks(ty: GgmlType, n_blocks: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let size = ty.type_size();
    let mut buf = vec![0u8; n_blocks * size];
    rng.fill(&mut buf);
    let n_scales = if ty == GgmlType::Q5_1 { 2 } else { 1 };
    for block in buf.chunks_exact_mut(size) {
        for s in 0..n_scales {
            block[2 * s..2 * s + 2].copy_from_slice(&rng.finite_f16_bits().to_le_bytes());
        }
    }
    buf
}

#[test]
fn q5_dequantize_equals_gguf_py_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    for ty in [GgmlType::Q5_0, GgmlType::Q5_1] {
        for n_blocks in [33usize, 5000] {
            let src = random_q5_blocks(ty, n_blocks, 31 + n_blocks as u64 + ty as u64);
            let inp = dir.path().join(format!("{ty}-{n_blocks}.bin"));
            let out = dir.path().join(format!("{ty}-{n_blocks}.f32"));
            std::fs::write(&inp, &src).unwrap();
            judge("dequant.py", &["blocks", ty.name(), inp.to_str().unwrap(), out.to_str().unwrap()]);
            let mut y = vec![f32::NAN; n_blocks * 32];
            dequantize(ty, &src, &mut y).unwrap();
            assert_bits_eq(&format!("{ty} × {n_blocks} blocks"), &y, &read_f32(&out));
        }
    }
}

#[test]
fn q5_parallel_and_unaligned_dequantize_equal_reference() {
    for ty in [GgmlType::Q5_0, GgmlType::Q5_1] {
        for n_blocks in [1usize, 31, 33, 1023] {
            let src = random_q5_blocks(ty, n_blocks, n_blocks as u64);
            let n = n_blocks * 32;
            let mut reference = vec![0f32; n];
            dequantize_reference(ty, &src, &mut reference).unwrap();
            let mut shifted = vec![0u8; src.len() + 1];
            shifted[1..].copy_from_slice(&src);
            for chunk in [1usize, 7, 1024] {
                let mut par = vec![f32::NAN; n];
                dequantize_parallel(ty, &shifted[1..], &mut par, chunk).unwrap();
                assert_bits_eq(&format!("{ty} {n_blocks} blocks, unaligned, chunk {chunk}"), &par, &reference);
            }
        }
    }
}

#[test]
fn q5_bit_layout_fifth_bit_from_qh() {
    // ggml dequantize_row_q5_0: element j takes bit j of qh as its bit 4, element j + 16
    // takes bit j + 16; low nibbles as Q4_0. Set only qh bits 0 and 17, all nibbles 0xF/0x0.
    let mut block = vec![0x00, 0x3C]; // d = 1.0
    block.extend(((1u32 << 0) | (1u32 << 17)).to_le_bytes());
    block.extend([0x0Fu8; 16]); // low nibble 15 (elements 0..16), high nibble 0 (16..32)
    let mut y = vec![0f32; 32];
    dequantize(GgmlType::Q5_0, &block, &mut y).unwrap();
    for j in 0..16 {
        assert_eq!(y[j], if j == 0 { 31.0 - 16.0 } else { 15.0 - 16.0 }, "element {j}");
        assert_eq!(y[j + 16], if j == 1 { 16.0 - 16.0 } else { -16.0 }, "element {}", j + 16);
    }
}

#[test]
fn convert_bytes_into_quantized_targets_is_chunked_quantize() {
    assert!(TYPES.iter().all(|&t| can_quantize(t) && can_encode(t)));
    assert!(!can_quantize(GgmlType::TQ1_0) && !can_quantize(GgmlType::F16));
    // Three and a bit chunks of convert's 64 Ki elements, through F16 like a real checkpoint.
    let mut rng = Rng(123);
    let n = 3 * 65536 + 5 * 32;
    let x: Vec<f32> = (0..n).map(|_| normal(&mut rng) * 0.1).collect();
    let mut h = Vec::new();
    from_f32(GgmlType::F16, &x, &mut h).unwrap();
    let mut xh = vec![0f32; n];
    to_f32(GgmlType::F16, &h, &mut xh).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let theirs = judged(dir.path(), "from-f16", &xh);
    for (&ty, t) in TYPES.iter().zip(&theirs) {
        let q = convert_bytes(GgmlType::F16, ty, &h).unwrap();
        assert_judged("convert_bytes(F16 → …)", ty, &xh, &q, t, &|_| "normal σ=0.1 via f16".into());
        let mut via = Vec::new();
        from_f32(ty, &xh, &mut via).unwrap();
        assert!(via == q, "{ty}: from_f32 != convert_bytes");
        // Block type → block type: Q4_1 → Q8_0 equals dequantize-then-quantize.
        if ty == GgmlType::Q4_1 {
            let q8 = convert_bytes(GgmlType::Q4_1, GgmlType::Q8_0, &q).unwrap();
            let mut y = vec![0f32; n];
            dequantize(GgmlType::Q4_1, &q, &mut y).unwrap();
            assert!(q8 == ours(GgmlType::Q8_0, &y), "Q4_1 → Q8_0");
        }
    }
}

#[test]
fn ragged_inputs_are_errors() {
    let mut v = Vec::new();
    assert_eq!(
        from_f32(GgmlType::Q4_0, &[0.0; 33], &mut v),
        Err(KernelError::RaggedBlocks { ty: GgmlType::Q4_0, n_elements: 33, block_size: 32 })
    );
    assert_eq!(
        convert_bytes(GgmlType::F32, GgmlType::Q8_0, &[0u8; 4 * 48]),
        Err(KernelError::RaggedBlocks { ty: GgmlType::Q8_0, n_elements: 48, block_size: 32 })
    );
    assert_eq!(
        quantize_parallel(GgmlType::Q5_0, &[0.0; 31], &mut v, 4),
        Err(KernelError::RaggedBlocks { ty: GgmlType::Q5_0, n_elements: 31, block_size: 32 })
    );
    assert!(v.is_empty());
}
