//! Speed of the fast (SIMD) quantize/dequantize paths against the scalar reference, in MB/s
//! of f32 input (quantize) or f32 output (dequantize), best of 5, all in the same run.
//! Not a test: `cargo bench -p llmtool-kernels --bench quant_speed [-- TYPE...]`.
//! "fast×1" runs the fast path on one thread (SIMD alone), "fast×N" on the default pool.

use llmtool_kernels::dequant::{dequantize, dequantize_reference};
use llmtool_kernels::quant::{quantize, quantize_reference};
use llmtool_kernels::GgmlType;
use std::time::Instant;

fn best_secs(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let names: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let types: Vec<GgmlType> = if names.is_empty() {
        use GgmlType::*;
        vec![Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL]
    } else {
        names.iter().map(|n| GgmlType::from_name(n).unwrap_or_else(|| panic!("unknown type {n}"))).collect()
    };
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let n = 1 << 21; // 8 MB of f32
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let x: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect();
    let mb = (n * 4) as f64 / 1e6;
    println!("{:<7} {:>26} | {:>26}", "", "quantize MB/s (f32 in)", "dequantize MB/s (f32 out)");
    println!(
        "{:<7} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}",
        "type", "ref", "fast×1", "fast×N", "ref", "fast×1", "fast×N"
    );
    for ty in types {
        let mut q = Vec::new();
        let t_ref = best_secs(|| {
            q.clear();
            quantize_reference(ty, &x, &mut q).unwrap();
        });
        let want = q.clone();
        let t_one = best_secs(|| {
            q.clear();
            one.install(|| quantize(ty, &x, &mut q).unwrap());
        });
        assert!(q == want, "{ty}: fast quantize differs");
        let t_all = best_secs(|| {
            q.clear();
            quantize(ty, &x, &mut q).unwrap();
        });
        let mut y = vec![0f32; n];
        let d_ref = best_secs(|| dequantize_reference(ty, &q, &mut y).unwrap());
        let d_one = best_secs(|| one.install(|| dequantize(ty, &q, &mut y).unwrap()));
        let d_all = best_secs(|| dequantize(ty, &q, &mut y).unwrap());
        println!(
            "{:<7} {:>8.0} {:>8.0} {:>8.0} | {:>8.0} {:>8.0} {:>8.0}",
            ty.name(),
            mb / t_ref,
            mb / t_one,
            mb / t_all,
            mb / d_ref,
            mb / d_one,
            mb / d_all
        );
    }
}
