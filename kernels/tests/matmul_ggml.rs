//! `matmul` against llama.cpp's own CPU backend: fixtures made by
//! `kernels/tools/gen_matmul_fixtures.py` from a llama.cpp build (x86, AVX2) — weights from
//! `ggml_quantize_chunk`, activations from `type_traits_cpu[vec_dot_type].from_float` (what
//! ggml-cpu runs), dot products from `type_traits_cpu[w].vec_dot`.
//!
//! - Activations: our `prepare_activations` must produce the same BYTES (the x86 AVX2 Q8_0 /
//!   Q8_1 quantizers with half-even rounding and the 127/amax multiplier, Q8_K, f16/bf16).
//! - Dot products: both sides compute the same exact integer sum per block; only the f32
//!   accumulation order differs, so the bound is (blocks + 2)·2⁻²³ of Σ|w·a| (+ Σ|m·s| for
//!   the Q8_1 minimum terms); F32/F16/BF16: k·2⁻²³ of Σ|w·a| (sgemm vs ggml's 8-lane sums).

mod common;

use half::f16;
use llmtool_kernels::matmul::{self, prepare_activations, Isa, WeightView};
use llmtool_kernels::GgmlType;
use std::path::Path;

struct Fixture {
    k: usize,
    rows: usize,
    tokens: usize,
    x: Vec<f32>,
    w: Vec<u8>,
    act: Vec<u8>,
    dots: Vec<f32>,
}

fn load(ty: GgmlType) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/matmul_ggml.{}.bin", ty.name()));
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e} (run kernels/tools/gen_matmul_fixtures.py)"));
    let u = |i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    let (k, rows, tokens) = (u(0), u(1), u(2));
    let f32s = |s: &[u8]| s.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
    let act_ty = matmul::vec_dot_type(ty).unwrap();
    let wlen = rows * ty.row_bytes(k as u64).unwrap() as usize;
    let alen = tokens * act_ty.row_bytes(k as u64).unwrap() as usize;
    let mut off = 12;
    let mut take = |n: usize| {
        let s = &b[off..off + n];
        off += n;
        s
    };
    let x = f32s(take(tokens * k * 4));
    let w = take(wlen).to_vec();
    let act = take(alen).to_vec();
    let dots = f32s(take(tokens * rows * 4));
    assert_eq!(off, b.len(), "{path:?}: trailing bytes");
    Fixture { k, rows, tokens, x, w, act, dots }
}

#[test]
fn activations_are_byte_identical_to_ggml_cpu_from_float() {
    for &ty in common::MATMUL_WEIGHT_TYPES {
        let f = load(ty);
        let a = prepare_activations(ty, &f.x, f.k).unwrap();
        if let Some(i) = (0..f.act.len()).find(|&i| a.bytes()[i] != f.act[i]) {
            panic!("{ty}: activation ({}) byte {i} differs: ours {}, ggml {}", a.ty, a.bytes()[i], f.act[i]);
        }
        assert_eq!(a.bytes().len(), f.act.len(), "{ty}");
    }
}

#[test]
fn matmul_matches_ggml_vec_dot() {
    for &ty in common::MATMUL_WEIGHT_TYPES {
        let f = load(ty);
        let w = WeightView { ty, rows: f.rows, k: f.k, bytes: &f.w };
        let acts = prepare_activations(ty, &f.x, f.k).unwrap();
        let wv = common::dequantized(ty, &f.w);
        let mut av = vec![0f32; f.tokens * f.k];
        if acts.ty == GgmlType::Q8_1 {
            for (o, blk) in av.chunks_exact_mut(32).zip(acts.bytes().chunks_exact(36)) {
                let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                for (v, &q) in o.iter_mut().zip(&blk[4..]) {
                    *v = q as i8 as f32 * d;
                }
            }
        } else {
            llmtool_kernels::dequant::dequantize(acts.ty, acts.bytes(), &mut av).unwrap();
        }
        let nb = (f.k / ty.block_size()) as f64;
        let wrb = f.w.len() / f.rows;
        let arb = acts.row_bytes();
        let mut outs = vec![("reference", vec![0f32; f.rows * f.tokens])];
        matmul::matmul_reference(&w, &acts, &mut outs[0].1).unwrap();
        for isa in Isa::ALL {
            if isa.available() {
                let mut o = vec![f32::NAN; f.rows * f.tokens];
                matmul::matmul_with(&w, &acts, &mut o, isa).unwrap();
                outs.push((isa.name(), o));
            }
        }
        for t in 0..f.tokens {
            for r in 0..f.rows {
                let (wr, ar) = (&wv[r * f.k..(r + 1) * f.k], &av[t * f.k..(t + 1) * f.k]);
                let abs: f64 = wr.iter().zip(ar).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
                let ms: f64 = if acts.ty == GgmlType::Q8_1 {
                    let h = |b: &[u8], o: usize| f16::from_le_bytes([b[o], b[o + 1]]).to_f32().abs() as f64;
                    let wrow = &f.w[r * wrb..(r + 1) * wrb];
                    let arow = &acts.bytes()[t * arb..(t + 1) * arb];
                    wrow.chunks(ty.type_size()).zip(arow.chunks(36)).map(|(a, b)| h(a, 2) * h(b, 2)).sum()
                } else {
                    0.0
                };
                let tol = (nb + 2.0) * 2f64.powi(-23) * (abs + ms) + 1e-30;
                let want = f.dots[t * f.rows + r] as f64;
                for (name, o) in &outs {
                    let got = o[t * f.rows + r] as f64;
                    assert!(
                        (got - want).abs() <= tol,
                        "{ty} {name} [{t}][{r}]: ours {got}, ggml {want}, diff {:e}, tolerance {tol:e}",
                        (got - want).abs()
                    );
                }
            }
        }
    }
}
