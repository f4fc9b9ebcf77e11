//! Measured arithmetic peak of this CPU, the denominator of `scripts/bench-perplexity.sh`'s
//! roofline line: every thread runs a loop of independent vector instructions (16 accumulator
//! chains: enough to cover 2 ports × 4–5 cycles of latency) and nothing else, so the rate is
//! what the core actually sustains at its current clock (turbo included — a nominal-clock
//! formula undercounts it and gave fractions above 100 %).
//!
//! - `f32_fma`: `vfmadd` on the widest vectors the kernels use (AVX-512 zmm, else AVX2 ymm),
//!   2 flops per lane.
//! - `int8_dot`: `vpdpbusd` (AVX512-VNNI zmm, else AVX-VNNI ymm), 2 ops per byte pair — or,
//!   without VNNI, `vpmaddubsw` + `vpmaddwd` (the AVX2 kernels' pair, 2 ops per byte pair per
//!   two instructions).
//!
//! - `dram_read`: GB/s of summing a 1 GiB buffer split between the threads (memory bandwidth,
//!   for the thread-scaling model of `scripts/bench-scaling.sh`).
//!
//! `cargo run --release -p llmtool-kernels --example peak [THREADS]` (default 2) prints
//! `peak f32_fma GFLOP/s`, `peak int8_dot GOP/s` and `peak dram_read GB/s` lines (best of 5).

use std::time::Instant;

const ITERS: u64 = 20_000_000;
const CHAINS: u64 = 16;

fn main() {
    let threads: usize = std::env::args().nth(1).map(|s| s.parse().expect("THREADS is a number")).unwrap_or(2);
    #[cfg(target_arch = "x86_64")]
    {
        let (fma_ops, fma) = x86::fma_kernel();
        let (dot_ops, dot, dot_name) = x86::dot_kernel();
        let fma_rate = best_rate(threads, fma, fma_ops);
        println!("peak f32_fma {:.1} GFLOP/s ({threads} threads, {})", fma_rate, x86::fma_name());
        match dot {
            Some(dot) => {
                println!("peak int8_dot {:.1} GOP/s ({threads} threads, {dot_name})", best_rate(threads, dot, dot_ops))
            }
            None => println!("peak int8_dot unavailable (no AVX2)"),
        }
    }
    println!("peak dram_read {:.1} GB/s ({threads} threads, 1 GiB summed)", dram_read(threads));
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        println!("peak: only measured on x86-64");
    }
}

/// Operations per second (×1e9) of `kernel` (which performs `ops_per_iter` operations per
/// iteration) on `threads` threads at once, best of 5.
fn best_rate(threads: usize, kernel: fn(u64) -> f32, ops_per_iter: u64) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| std::hint::black_box(kernel(ITERS)));
            }
        });
        let secs = t0.elapsed().as_secs_f64();
        best = best.max((threads as u64 * ITERS * ops_per_iter) as f64 / secs / 1e9);
    }
    best
}

/// GB/s of reading a 1 GiB buffer (u64 sums, each thread its own quarter-aligned part), best
/// of 5 after one pass that faults the pages in.
fn dram_read(threads: usize) -> f64 {
    let buf: Vec<u64> = (0..(1u64 << 27)).collect();
    let part = buf.len().div_ceil(threads);
    let mut best = 0.0f64;
    for rep in 0..6 {
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for chunk in buf.chunks(part) {
                s.spawn(move || std::hint::black_box(chunk.iter().fold(0u64, |a, &b| a.wrapping_add(b))));
            }
        });
        if rep > 0 {
            best = best.max((buf.len() * 8) as f64 / t0.elapsed().as_secs_f64() / 1e9);
        }
    }
    best
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;

    fn has(f: &str) -> bool {
        match f {
            "avx512f" => is_x86_feature_detected!("avx512f"),
            "avx512vnni" => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"),
            "avxvnni" => is_x86_feature_detected!("avxvnni"),
            "avx2" => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            _ => false,
        }
    }

    pub fn fma_name() -> &'static str {
        if has("avx512f") {
            "AVX-512 vfmadd zmm"
        } else {
            "AVX2 vfmadd ymm"
        }
    }

    /// (flops per iteration, kernel).
    /// A timed loop: iterations in, a value to keep alive out.
    pub type Kernel = fn(u64) -> f32;

    pub fn fma_kernel() -> (u64, Kernel) {
        if has("avx512f") {
            (CHAINS * 16 * 2, |n| unsafe { fma512(n) })
        } else {
            (CHAINS * 8 * 2, |n| unsafe { fma256(n) })
        }
    }

    /// (ops per iteration, kernel, name).
    pub fn dot_kernel() -> (u64, Option<Kernel>, &'static str) {
        if has("avx512vnni") {
            (CHAINS * 64 * 2, Some(|n| unsafe { vnni512(n) }), "AVX512-VNNI vpdpbusd zmm")
        } else if has("avxvnni") {
            (CHAINS * 32 * 2, Some(|n| unsafe { vnni256(n) }), "AVX-VNNI vpdpbusd ymm")
        } else if has("avx2") {
            (CHAINS * 32 * 2 / 2, Some(|n| unsafe { maddubs256(n) }), "AVX2 vpmaddubsw+vpmaddwd ymm")
        } else {
            (0, None, "")
        }
    }

    macro_rules! chains {
        ($n:expr, $zero:expr, $step:expr, $fold:expr) => {{
            let mut acc = [$zero; CHAINS as usize];
            for _ in 0..$n {
                for a in acc.iter_mut() {
                    *a = $step(*a);
                }
            }
            acc.iter().copied().fold($zero, $fold)
        }};
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn fma512(n: u64) -> f32 {
        let (x, y) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let v = chains!(n, _mm512_set1_ps(1.0), |a| _mm512_fmadd_ps(a, x, y), |s, a| _mm512_add_ps(s, a));
        _mm512_reduce_add_ps(v)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma256(n: u64) -> f32 {
        let (x, y) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let v = chains!(n, _mm256_set1_ps(1.0), |a| _mm256_fmadd_ps(a, x, y), |s, a| _mm256_add_ps(s, a));
        let mut l = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), v);
        l.iter().sum()
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn vnni512(n: u64) -> f32 {
        let (x, y) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
        let v = chains!(n, _mm512_setzero_si512(), |a| _mm512_dpbusd_epi32(a, x, y), |s, a| _mm512_add_epi32(s, a));
        _mm512_reduce_add_epi32(v) as f32
    }

    #[target_feature(enable = "avx2,avxvnni")]
    unsafe fn vnni256(n: u64) -> f32 {
        let (x, y) = (_mm256_set1_epi8(3), _mm256_set1_epi8(-2));
        let v = chains!(n, _mm256_setzero_si256(), |a| _mm256_dpbusd_avx_epi32(a, x, y), |s, a| _mm256_add_epi32(s, a));
        _mm256_extract_epi32::<0>(v) as f32
    }

    #[target_feature(enable = "avx2")]
    unsafe fn maddubs256(n: u64) -> f32 {
        let (x, y, ones) = (_mm256_set1_epi8(3), _mm256_set1_epi8(-2), _mm256_set1_epi16(1));
        let v = chains!(
            n,
            _mm256_setzero_si256(),
            // The xor makes each step depend on the last (else the product is hoisted).
            |a| _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_xor_si256(a, x), y), ones)),
            |s, a| _mm256_add_epi32(s, a)
        );
        _mm256_extract_epi32::<0>(v) as f32
    }
}
