//! Speed of `quantize_rows` (ggml `ggml_quantize_chunk`) for the importance-weighted types,
//! with and without an imatrix, in MB/s of f32 input, best of 5, one thread and all threads,
//! and of the scalar reference with the imatrix (`quantize_rows_reference`, one thread; the
//! fast path's bytes are checked equal to it).
//! Not a test: `cargo bench -p llmtool-kernels --bench quant_rows_speed [-- TYPE...]`.
//! The matrix is 576 × 1536 of normal(0, 0.02) values (a SmolLM2 FFN weight's shape), or
//! the f32 file named by QUANT_ROWS_INPUT; the imatrix is exp(normal) per column, or the
//! file named by QUANT_ROWS_IMATRIX (`benches/quant_rows_llamacpp.py` writes both and times
//! llama.cpp's own quantizers on them).

use llmtool_kernels::quant::{quantize_rows, quantize_rows_reference, requires_imatrix};
use llmtool_kernels::GgmlType;
use std::time::Instant;

const ROWS: usize = 576;
const COLS: usize = 1536;

fn best_secs(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Box–Muller normals from a xorshift generator.
fn normals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut uniform = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

/// The f32 file named by the environment variable `var`, if set (`n` values).
fn from_env(var: &str, n: usize) -> Option<Vec<f32>> {
    let path = std::env::var(var).ok()?;
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(v.len(), n, "{path} must hold {n} f32");
    Some(v)
}

fn main() {
    let names: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let types: Vec<GgmlType> = if names.is_empty() {
        use GgmlType::*;
        vec![
            Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS,
            IQ2_S, IQ1_S, IQ1_M,
        ]
    } else {
        names.iter().map(|n| GgmlType::from_name(n).unwrap_or_else(|| panic!("unknown type {n}"))).collect()
    };
    let x = from_env("QUANT_ROWS_INPUT", ROWS * COLS)
        .unwrap_or_else(|| normals(ROWS * COLS, 0x9E37_79B9_7F4A_7C15).iter().map(|v| v * 0.02).collect());
    let imatrix =
        from_env("QUANT_ROWS_IMATRIX", COLS).unwrap_or_else(|| normals(COLS, 7).iter().map(|v| v.exp()).collect());
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mb = (x.len() * 4) as f64 / 1e6;
    println!("{ROWS} x {COLS}, MB/s of f32 input");
    println!(
        "{:<8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "type", "plain×1", "plain×N", "ref×1", "imatrix×1", "imatrix×N"
    );
    for ty in types {
        let mut want = Vec::new();
        let r1 = mb
            / best_secs(|| {
                want.clear();
                quantize_rows_reference(ty, &x, COLS, Some(&imatrix), &mut want).unwrap();
            });
        let mut q = Vec::new();
        let mut time = |qw: Option<&[f32]>, pool: Option<&rayon::ThreadPool>| {
            mb / best_secs(|| {
                q.clear();
                match pool {
                    Some(p) => p.install(|| quantize_rows(ty, &x, COLS, qw, &mut q).unwrap()),
                    None => quantize_rows(ty, &x, COLS, qw, &mut q).unwrap(),
                }
            })
        };
        let (p1, pn) = if requires_imatrix(ty) {
            ("-".to_string(), "-".to_string())
        } else {
            (format!("{:.1}", time(None, Some(&one))), format!("{:.1}", time(None, None)))
        };
        let (w1, wn) = (time(Some(&imatrix), Some(&one)), time(Some(&imatrix), None));
        assert!(q == want, "{ty}: the fast path differs from the reference");
        println!("{:<8} {p1:>10} {pn:>10} {r1:>10.1} {w1:>10.1} {wn:>10.1}", ty.name());
    }
}
