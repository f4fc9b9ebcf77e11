//! GPU block-codec bandwidth: Q8_0, Q4_0, Q4_K, Q6_K quantize and dequantize with the data
//! resident on the GPU, GB/s = (f32 bytes + block bytes) / kernel time (GPU timestamps when
//! the adapter has them, else wall time of submit + wait; best of the repetitions), and the
//! end-to-end rate of `GpuContext::quantize` / `dequantize` (upload, kernel, download).
//!
//!   cargo run --release -p llmtool-kernels --example gpu_bench [-- ELEMENTS [REPS]]
//!
//! ELEMENTS defaults to 256 Mi floats, or 4 Mi on a CPU (software) adapter. `GPU_PEAK_GBPS`
//! is the peak memory bandwidth the rates are compared with (default 3000, an H100's HBM3,
//! on real GPUs; on CPU adapters no fraction is printed unless it is set).

use llmtool_kernels::gpu::{bench_codec, GpuContext};
use llmtool_kernels::GgmlType;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("gpu_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let t = Instant::now();
    let ctx = GpuContext::new()?;
    let info = ctx.info();
    let cpu_adapter = info.device_type == wgpu::DeviceType::Cpu;
    println!("adapter: {} (device setup {:.2} s)", ctx.describe(), t.elapsed().as_secs_f64());
    let elements: usize = match args.first() {
        Some(a) => a.parse()?,
        None if cpu_adapter => 4 << 20,
        None => 256 << 20,
    };
    let reps: usize = args.get(1).map(|a| a.parse()).transpose()?.unwrap_or(5);
    let peak: Option<f64> = match std::env::var("GPU_PEAK_GBPS") {
        Ok(v) => Some(v.parse()?),
        Err(_) if cpu_adapter => None,
        Err(_) => Some(3000.0),
    };
    println!(
        "elements: {elements} f32 per kernel, best of {reps}; peak: {}",
        peak.map_or("not set (CPU adapter)".into(), |p| format!("{p} GB/s (GPU_PEAK_GBPS)"))
    );
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut fill = |buf: &mut [f32]| {
        // xorshift64*, mapped to roughly uniform (-1, 1): cheap for 1 GiB of input.
        for v in buf {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            let r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
            *v = ((r >> 40) as f32 / (1u64 << 23) as f32) - 1.0;
        }
    };
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K] {
        for r in bench_codec(&ctx, ty, elements, reps, &mut fill)? {
            let frac = peak.map_or(String::new(), |p| format!("  {:5.1}% of peak", 100.0 * r.gbps() / p));
            println!(
                "kernel  {:<5} {:<10} {:>11} elems  {:9.3} ms  {:8.2} GB/s{frac}  ({})",
                ty.name(),
                format!("{:?}", r.op).to_lowercase(),
                r.elements,
                r.secs * 1e3,
                r.gbps(),
                r.timer
            );
        }
    }
    // End to end through the public API: host f32 → GPU → host blocks, and back.
    let n = (elements.min(64 << 20) / 256).max(1) * 256;
    let mut host = vec![0f32; n];
    fill(&mut host);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K] {
        let _ = ctx.quantize(ty, &host[..256])?; // pipeline creation outside the timing
        let _ = ctx.dequantize(ty, &vec![0u8; ty.type_size()])?;
        let (mut tq, mut td) = (f64::INFINITY, f64::INFINITY);
        let mut blocks = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            blocks = ctx.quantize(ty, &host)?;
            tq = tq.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let back = ctx.dequantize(ty, &blocks)?;
            td = td.min(t.elapsed().as_secs_f64());
            assert_eq!(back.len(), n);
        }
        let bytes = (n * 4 + blocks.len()) as f64;
        println!(
            "e2e     {:<5} quantize {:8.2} GB/s ({:.3} s), dequantize {:8.2} GB/s ({:.3} s) on {n} elems incl. upload/download",
            ty.name(),
            bytes / tq / 1e9,
            tq,
            bytes / td / 1e9,
            td
        );
    }
    Ok(())
}
