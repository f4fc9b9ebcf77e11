//! Speed of `quantize_rows` with an importance matrix (ggml `ggml_quantize_chunk`): the
//! scalar reference, the fast path on one thread (SIMD searches alone) and on the default
//! pool, in ms per matrix, best of 5. Not a test:
//! `cargo bench -p llmtool-kernels --bench weighted_speed [-- IN.f32 IMATRIX.f32 N_PER_ROW]`
//! (default: a 576 × 1536 matrix of normal(0, 0.02) values and exp(normal) weights; the
//! optional files are raw little-endian f32, e.g. the ones `tools/weighted_speed_llamacpp.py`
//! times llama.cpp's C on).

use llmtool_kernels::quant::{quantize_rows, quantize_rows_reference};
use llmtool_kernels::GgmlType;
use std::time::Instant;

fn best_ms(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn read_f32(path: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Box–Muller normals from xorshift64.
fn normals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut uniform = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n).map(|_| ((-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()) as f32).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let (x, qw, n_per_row) = if let [inp, imx, n] = &args[..] {
        (read_f32(inp), read_f32(imx), n.parse().expect("N_PER_ROW"))
    } else {
        let n_per_row = 1536;
        let x = normals(576 * n_per_row, 0x9E37_79B9_7F4A_7C15).iter().map(|v| v * 0.02).collect();
        let qw = normals(n_per_row, 7).iter().map(|v| v.exp()).collect();
        (x, qw, n_per_row)
    };
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    println!("{} rows x {n_per_row}, with imatrix; ms per matrix (best of 5)", x.len() / n_per_row);
    println!("{:<7} {:>8} {:>8} {:>8}", "type", "ref", "fast×1", "fast×N");
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K].into_iter().chain([
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::IQ4_NL,
    ]) {
        let mut q = Vec::new();
        let t_ref = best_ms(|| {
            q.clear();
            quantize_rows_reference(ty, &x, n_per_row, Some(&qw), &mut q).unwrap();
        });
        let want = q.clone();
        let t_one = best_ms(|| {
            q.clear();
            one.install(|| quantize_rows(ty, &x, n_per_row, Some(&qw), &mut q).unwrap());
        });
        assert!(q == want, "{ty}: fast path differs from the reference");
        let t_all = best_ms(|| {
            q.clear();
            quantize_rows(ty, &x, n_per_row, Some(&qw), &mut q).unwrap();
        });
        println!("{:<7} {:>8.1} {:>8.1} {:>8.1}", ty.name(), t_ref, t_one, t_all);
    }
}
