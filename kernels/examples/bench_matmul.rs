//! GFLOP/s of `matmul` per weight type on SmolLM2-135M shapes, 512 tokens, against
//! `matrixmultiply` f32 sgemm (via `gemm_f32`, same threads) measured in the same run.
//!
//! `cargo run --release -p llmtool-kernels --example bench_matmul [THREADS] [TYPE,...|all] [avx2|scalar]`
//! (default 2 threads, all types). Best of 5 runs per cell; FLOPs = 2·rows·k·tokens.
//! Times include `prepare_activations` (the activation quantization) as a separate column.

use llmtool_kernels::attention::{attention_with, key_stride, AttnParams, KvView};
use llmtool_kernels::matmul::{gemm_f32, matmul_with, prepare_activations, Isa, Trans, WeightView};
use llmtool_kernels::{quant, GgmlType};
use std::time::Instant;

const TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn values(seed: &mut u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

/// Runs per measurement (the minimum is kept): the shared machine is noisy.
const REPEATS: usize = 5;

/// CPU time of this process (all threads), from /proc/self/stat utime + stime (clock ticks,
/// 100 per second on Linux): insensitive to the time slices other processes take.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn best_of(mut f: impl FnMut()) -> f64 {
    (0..REPEATS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let filter: Option<Vec<GgmlType>> = args
        .get(2)
        .filter(|s| *s != "all")
        .map(|s| s.split(',').map(|n| GgmlType::from_name(n).expect("a ggml type name")).collect());
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().expect("rayon pool");
    let n_tokens = 512;
    let shapes = [
        (576usize, 576usize, "attn 576x576"),
        (1536, 576, "ffn_up 1536x576"),
        (576, 1536, "ffn_down 576x1536"),
        (49152, 576, "output 49152x576"),
    ];
    // The instruction set by its name in any case (scalar, avx2, avxvnni, avx512vnni).
    let isa = match args.get(3) {
        Some(name) => *Isa::ALL
            .iter()
            .find(|i| i.name() == name.to_ascii_lowercase())
            .expect("an instruction set: scalar, avx2, avxvnni or avx512vnni"),
        None => Isa::best(),
    };
    println!("kernels: {isa:?}");
    if let Ok(reps) = std::env::var("BENCH_REPEAT_ONLY") {
        // Profiling mode: only `reps` matmuls of the first listed type, 576x1536 by 512 tokens,
        // reported per CPU-second (robust on a shared machine) and per wall second.
        let ty = filter.as_ref().and_then(|f| f.first().copied()).unwrap_or(GgmlType::Q4_1);
        let (rows, k) = (576, 1536);
        let mut seed = 3u64;
        let w32 = values(&mut seed, rows * k);
        let x = values(&mut seed, 512 * k);
        let mut wb = Vec::new();
        quant::quantize(ty, &w32, &mut wb).unwrap();
        let w = WeightView { ty, rows, k, bytes: &wb };
        let acts = prepare_activations(ty, &x, k).unwrap();
        let mut out = vec![0f32; rows * 512];
        let reps: usize = reps.parse().expect("a count");
        let (c0, t0) = (cpu_seconds(), Instant::now());
        for _ in 0..reps {
            matmul_with(&w, &acts, &mut out, isa).unwrap();
        }
        let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
        let gflop = 2.0 * (rows * k * 512 * reps) as f64 / 1e9;
        println!(
            "{} 576x1536x512 x{reps}: {:.1} GFLOP per CPU-second, {:.1} GFLOP/s wall (threads {threads})",
            ty.name(),
            gflop / cpu,
            gflop / wall
        );
        return;
    }
    println!("threads {threads}, tokens {n_tokens}, best of 5; GFLOP/s = 2*rows*k*tokens / time (matmul incl. activation prep)");
    let mut seed = 1u64;
    for (rows, k, name) in shapes {
        let w32 = values(&mut seed, rows * k);
        let x = values(&mut seed, n_tokens * k);
        let flops = 2.0 * (rows * k * n_tokens) as f64;
        let mut out = vec![0f32; rows * n_tokens];
        let t_sgemm = best_of(|| {
            gemm_f32(&x, Trans::N, &w32, Trans::T, &mut out, n_tokens, rows, k, 1.0, 0.0).unwrap();
        });
        let sgemm = flops / t_sgemm / 1e9;
        println!("\n{name}: matrixmultiply sgemm f32 (gemm_f32): {sgemm:.1} GFLOP/s");
        println!("{:<6} {:>9} {:>9} {:>12} {:>11}", "type", "GFLOP/s", "vs sgemm", "prep ms", "scalar GF/s");
        for &ty in TYPES {
            if filter.as_ref().is_some_and(|f| !f.contains(&ty)) || !k.is_multiple_of(ty.block_size()) {
                continue;
            }
            let mut wb = Vec::new();
            quant::quantize(ty, &w32, &mut wb).unwrap();
            let w = WeightView { ty, rows, k, bytes: &wb };
            let t_prep = best_of(|| {
                prepare_activations(ty, &x, k).unwrap();
            });
            let acts = prepare_activations(ty, &x, k).unwrap();
            let t = best_of(|| matmul_with(&w, &acts, &mut out, isa).unwrap()) + t_prep;
            let gf = flops / t / 1e9;
            // The scalar kernels only on the small shape (they are slow).
            let scalar = if rows * k <= 576 * 576 && ty.is_quantized() {
                let ts = best_of(|| matmul_with(&w, &acts, &mut out, Isa::Scalar).unwrap()) + t_prep;
                format!("{:.1}", flops / ts / 1e9)
            } else {
                "-".into()
            };
            println!("{:<6} {:>9.1} {:>9.2} {:>12.2} {:>11}", ty.name(), gf, gf / sgemm, t_prep * 1e3, scalar);
        }
    }
    // Generation: one token at a time (the weight tiles are unpacked on every call).
    println!("\none token (generation), 576x576 and 49152x576: microseconds per matmul (best of 5)");
    for (rows, k) in [(576usize, 576usize), (49152, 576)] {
        let w32 = values(&mut seed, rows * k);
        let x = values(&mut seed, k);
        let mut out = vec![0f32; rows];
        let t_sgemm = best_of(|| {
            gemm_f32(&x, Trans::N, &w32, Trans::T, &mut out, 1, rows, k, 1.0, 0.0).unwrap();
        });
        print!("{rows}x{k}: sgemm f32 {:.0} us;", t_sgemm * 1e6);
        for ty in [GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
            let mut wb = Vec::new();
            quant::quantize(ty, &w32, &mut wb).unwrap();
            let w = WeightView { ty, rows, k, bytes: &wb };
            let t = best_of(|| {
                let acts = prepare_activations(ty, &x, k).unwrap();
                matmul_with(&w, &acts, &mut out, isa).unwrap();
            });
            print!(" {} {:.0} us", ty.name(), t * 1e6);
            if let Ok(packed) = llmtool_kernels::matmul::PackedWeights::with_isa(&w, isa) {
                let t = best_of(|| {
                    let acts = prepare_activations(ty, &x, k).unwrap();
                    packed.matmul_with(&acts, &mut out, isa).unwrap();
                });
                print!(" (packed {:.0} us)", t * 1e6);
            }
            print!(";");
        }
        println!();
    }
    // Attention: the fused kernel (kernels::attention) on SmolLM2's geometry — 9 query heads,
    // 3 KV heads of 64, 512 causal positions — against the sgemm pair it replaced (QKᵀ and
    // P·V per head over the full square, as that path computed them per 64-query tile).
    // FLOPs counted: the causal half of QKᵀ and of P·V, 2 per multiply-add.
    let n = 512;
    let p = AttnParams { n_head: 9, n_head_kv: 3, head_dim: 64, scale: 0.125, softcap: None, window: None };
    let q = values(&mut seed, n * 9 * 64);
    let kt = values(&mut seed, 3 * 64 * key_stride(n));
    let v = values(&mut seed, 3 * n * 64);
    let mut o = vec![0f32; n * 9 * 64];
    let causal_flops = 9.0 * 2.0 * 2.0 * (n * (n + 1) / 2 * 64) as f64;
    let isa_attn = isa;
    let t = best_of(|| attention_with(&p, &q, KvView { keys_t: &kt, values: &v, cap: n }, 0, &mut o, isa_attn));
    println!("\nfused attention, 9 heads x 512 causal ({}): {:.1} GFLOP/s", isa_attn.name(), causal_flops / t / 1e9);
    let (qh, kh) = (values(&mut seed, n * 64), values(&mut seed, n * 64));
    let mut s = vec![0f32; n * n];
    let mut oh = vec![0f32; n * 64];
    let t = best_of(|| {
        for _ in 0..9 {
            gemm_f32(&qh, Trans::N, &kh, Trans::T, &mut s, n, n, 64, 1.0, 0.0).unwrap();
            gemm_f32(&s, Trans::N, &kh, Trans::N, &mut oh, n, 64, n, 1.0, 0.0).unwrap();
        }
    });
    println!(
        "sgemm QK^T + PV (full squares, no softmax), same heads: {:.1} GFLOP/s of the causal work",
        causal_flops / t / 1e9
    );
}
