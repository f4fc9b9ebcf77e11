//! GPU block codecs against the CPU reference, byte for byte (quantize) and bit for bit
//! (dequantize). A custom harness (libtest-mimic) decides at run time: with no GPU adapter
//! every trial is reported *ignored* (never passed), unless `LLMTOOL_REQUIRE_GPU=1`, which
//! turns the missing adapter into a failure. Shapes stay ≤ 1M elements per case (CI runs
//! this on Mesa's software Vulkan driver, lavapipe).

mod common;
mod gpu_util;

use common::Rng;
use libtest_mimic::{Arguments, Failed, Trial};
use llmtool_kernels::dequant::dequantize_reference;
use llmtool_kernels::gpu::{supported_types, GpuContext, GpuError, GpuOptions};
use llmtool_kernels::quant::quantize_reference;
use llmtool_kernels::GgmlType;
use std::sync::OnceLock;

static CTX: OnceLock<GpuContext> = OnceLock::new();
/// A context whose slices hold only a few block groups, to exercise slicing on small inputs.
static SMALL: OnceLock<GpuContext> = OnceLock::new();

fn ctx() -> Result<&'static GpuContext, Failed> {
    CTX.get().ok_or_else(|| "no GPU adapter (see the first line of the output)".into())
}

fn small_ctx() -> Result<&'static GpuContext, Failed> {
    ctx()?;
    if let Some(c) = SMALL.get() {
        return Ok(c);
    }
    // 5 KiB: 5 Q4_K/Q6_K-sized f32 groups at most, 20 Q8_0 groups of 64 floats.
    let c = GpuContext::with_options(GpuOptions { max_slice_bytes: Some(5 * 1024 + 512) })
        .map_err(|e| format!("small-slice context: {e}"))?;
    Ok(SMALL.get_or_init(|| c))
}

fn cpu_quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut v = Vec::new();
    quantize_reference(ty, x, &mut v).expect("cpu quantize");
    v
}

fn cpu_dequantize(ty: GgmlType, b: &[u8]) -> Vec<f32> {
    let mut y = vec![0f32; b.len() / ty.type_size() * ty.block_size()];
    dequantize_reference(ty, b, &mut y).expect("cpu dequantize");
    y
}

/// Compares block bytes; on mismatch names the count of differing blocks and the first one.
fn same_blocks(what: &str, ty: GgmlType, gpu: &[u8], cpu: &[u8]) -> Result<(), Failed> {
    if gpu.len() != cpu.len() {
        return Err(format!("{what}: {ty} GPU gave {} bytes, CPU {}", gpu.len(), cpu.len()).into());
    }
    let bs = ty.type_size();
    let diff: Vec<usize> =
        (0..cpu.len() / bs).filter(|&i| gpu[i * bs..(i + 1) * bs] != cpu[i * bs..(i + 1) * bs]).collect();
    if let Some(&i) = diff.first() {
        return Err(format!(
            "{what}: {ty} {} of {} blocks differ; first block {i}:\n  gpu {:02x?}\n  cpu {:02x?}",
            diff.len(),
            cpu.len() / bs,
            &gpu[i * bs..(i + 1) * bs],
            &cpu[i * bs..(i + 1) * bs]
        )
        .into());
    }
    Ok(())
}

fn same_bits(what: &str, ty: GgmlType, gpu: &[f32], cpu: &[f32]) -> Result<(), Failed> {
    if gpu.len() != cpu.len() {
        return Err(format!("{what}: {ty} GPU gave {} floats, CPU {}", gpu.len(), cpu.len()).into());
    }
    let diff: Vec<usize> = (0..cpu.len()).filter(|&i| gpu[i].to_bits() != cpu[i].to_bits()).collect();
    if let Some(&i) = diff.first() {
        return Err(format!(
            "{what}: {ty} dequantize: {} of {} floats differ; first at {i}: gpu {:e} cpu {:e}",
            diff.len(),
            cpu.len(),
            gpu[i],
            cpu[i]
        )
        .into());
    }
    Ok(())
}

/// GPU quantize == CPU reference, and GPU dequantize of those bytes == CPU dequantize.
fn check_round(c: &GpuContext, what: &str, ty: GgmlType, x: &[f32]) -> Result<(), Failed> {
    let cpu = cpu_quantize(ty, x);
    let gpu = c.quantize(ty, x).map_err(|e| format!("{what}: {e}"))?;
    same_blocks(what, ty, &gpu, &cpu)?;
    let back = c.dequantize(ty, &cpu).map_err(|e| format!("{what}: {e}"))?;
    same_bits(what, ty, &back, &cpu_dequantize(ty, &cpu))
}

/// Standard normal (Box–Muller) from the test PRNG.
fn normal(rng: &mut Rng) -> f32 {
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Blocks of many kinds, `n_blocks` blocks of `ty` in all: normal at several scales,
/// large magnitudes, all-zero, negative-only, positive-only, constant, sparse, ±0 mixes,
/// one outlier per block.
fn varied(ty: GgmlType, n_blocks: usize, seed: u64) -> Vec<f32> {
    let bs = ty.block_size();
    let mut rng = Rng(seed);
    let mut x = Vec::with_capacity(n_blocks * bs);
    for b in 0..n_blocks {
        let kind = b % 12;
        let scale = [1.0f32, 1e-3, 0.02, 1e4, 1e30, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0][kind];
        for i in 0..bs {
            let z = normal(&mut rng);
            let v = match kind {
                5 => 0.0,
                6 => -z.abs() - 0.01,
                7 => z.abs() + 0.5,
                8 => 0.75,
                9 if i % 7 != 0 => 0.0,
                10 => [0.0, -0.0][i % 2],
                11 if i == bs / 3 => 50.0 * z,
                _ => z * scale,
            };
            x.push(v);
        }
    }
    x
}

fn trial_random(ty: GgmlType) -> Result<(), Failed> {
    // 96 blocks of every kind (≤ 24K floats for the K-quants).
    let x = varied(ty, 96, 17 + ty.id() as u64);
    check_round(ctx()?, "varied blocks", ty, &x)?;
    // Dequantize arbitrary block bytes (finite f16 scales) too.
    let mut rng = Rng(99 + ty.id() as u64);
    let mut bytes = vec![0u8; 300 * ty.type_size()];
    rng.fill(&mut bytes);
    let f16_at: &[usize] = match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    };
    for blk in bytes.chunks_exact_mut(ty.type_size()) {
        for &o in f16_at {
            blk[o..o + 2].copy_from_slice(&rng.finite_f16_bits().to_le_bytes());
        }
    }
    let gpu = ctx()?.dequantize(ty, &bytes).map_err(|e| e.to_string())?;
    same_bits("random block bytes", ty, &gpu, &cpu_dequantize(ty, &bytes))
}

fn trial_lengths(ty: GgmlType) -> Result<(), Failed> {
    for n_blocks in [1usize, 2, 3, 31, 33, 1023] {
        let mut rng = Rng(n_blocks as u64);
        let x: Vec<f32> = (0..n_blocks * ty.block_size()).map(|_| normal(&mut rng)).collect();
        check_round(ctx()?, &format!("{n_blocks} blocks"), ty, &x)?;
    }
    Ok(())
}

fn trial_slicing(ty: GgmlType) -> Result<(), Failed> {
    let c = small_ctx()?;
    for n_blocks in [1usize, 7, 41, 97] {
        let x = varied(ty, n_blocks, 1000 + n_blocks as u64);
        check_round(c, &format!("{n_blocks} blocks in slices of {} bytes", c.slice_cap()), ty, &x)?;
    }
    Ok(())
}

const MODEL_TENSORS: [&str; 4] =
    ["blk.0.attn_k.weight", "blk.3.attn_q.weight", "blk.29.ffn_down.weight", "blk.0.attn_norm.weight"];

fn trial_real_model(ty: GgmlType) -> Result<(), Failed> {
    let path = gpu_util::real_model()?;
    let tensors = gpu_util::read_tensors(&path, &MODEL_TENSORS)?;
    if tensors.len() != MODEL_TENSORS.len() {
        return Err(format!("{}: found {} of the tensors {MODEL_TENSORS:?}", path.display(), tensors.len()).into());
    }
    for t in &tensors {
        // The model's own tensors, decoded by the CPU: realistic weights.
        let mut x = vec![0f32; t.n];
        dequantize_reference(t.ty, &t.data, &mut x).map_err(|e| format!("{}: {e}", t.name))?;
        if t.n % ty.block_size() != 0 {
            continue;
        }
        check_round(ctx()?, &t.name, ty, &x)?;
        if t.ty == ty {
            let gpu = ctx()?.dequantize(ty, &t.data).map_err(|e| e.to_string())?;
            same_bits(&format!("{} as stored", t.name), ty, &gpu, &x)?;
        }
    }
    Ok(())
}

fn trial_errors() -> Result<(), Failed> {
    match ctx()?.quantize(GgmlType::Q8_0, &[0.0; 33]) {
        Err(GpuError::BadLength { len: 33, multiple: 32, .. }) => {}
        other => return Err(format!("33 floats as Q8_0: {other:?}").into()),
    }
    match ctx()?.dequantize(GgmlType::Q4_K, &[0u8; 145]) {
        Err(GpuError::BadLength { len: 145, multiple: 144, .. }) => {}
        other => return Err(format!("145 bytes as Q4_K: {other:?}").into()),
    }
    match ctx()?.quantize(GgmlType::IQ4_NL, &[0.0; 32]) {
        Err(GpuError::Unsupported { ty: GgmlType::IQ4_NL, .. }) => {}
        other => return Err(format!("IQ4_NL: {other:?}").into()),
    }
    let empty = ctx()?.quantize(GgmlType::Q4_0, &[]).map_err(|e| e.to_string())?;
    if !empty.is_empty() {
        return Err("empty input gave bytes".into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let required = std::env::var("LLMTOOL_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let probe = GpuContext::new();
    let mut trials = Vec::new();
    for ty in supported_types() {
        let n = ty.name().to_lowercase();
        trials.push(Trial::test(format!("{n}_varied_and_random_bytes"), move || trial_random(ty)));
        trials.push(Trial::test(format!("{n}_odd_lengths"), move || trial_lengths(ty)));
        trials.push(Trial::test(format!("{n}_slicing"), move || trial_slicing(ty)));
        trials.push(Trial::test(format!("{n}_real_model"), move || trial_real_model(ty)));
    }
    trials.push(Trial::test("errors_name_type_and_length", trial_errors));
    match probe {
        Ok(c) => {
            eprintln!("GPU adapter: {}", c.describe());
            let _ = CTX.set(c);
        }
        Err(e) if required => {
            eprintln!("LLMTOOL_REQUIRE_GPU=1 but {e}");
            trials = trials.into_iter().map(|t| t.with_ignored_flag(true)).collect();
            let msg = e.to_string();
            trials
                .push(Trial::test("gpu_adapter_present", move || Err(format!("LLMTOOL_REQUIRE_GPU=1: {msg}").into())));
        }
        Err(e) => {
            println!("skipped: no GPU adapter ({e}); set LLMTOOL_REQUIRE_GPU=1 to make this a failure");
            trials = trials.into_iter().map(|t| t.with_ignored_flag(true)).collect();
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
