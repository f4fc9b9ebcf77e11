//! `llmtool quantize --device gpu` end to end on the real model: the output file must be
//! byte-identical to `--device cpu`'s. A custom harness (libtest-mimic) decides at run time:
//! with no GPU adapter the comparisons are reported *ignored* (never passed), unless
//! `LLMTOOL_REQUIRE_GPU=1`, which makes the missing adapter a failure. The no-adapter error
//! itself is tested everywhere by hiding the Vulkan drivers from the loader.

mod common;

use common::{llmtool, real_model};
use libtest_mimic::{Arguments, Failed, Trial};
use llmtool_kernels::gpu::GpuContext;
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Quantizes the real model to `ty` on the CPU and on the GPU and compares the files.
fn same_output(ty: &str) -> Result<(), Failed> {
    let model = real_model();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (cpu, gpu) = (dir.path().join("cpu.gguf"), dir.path().join("gpu.gguf"));
    let mut stderr_gpu = String::new();
    for (out, device) in [(&cpu, "cpu"), (&gpu, "gpu")] {
        let o = llmtool(&["quantize", s(&model), s(out), "-t", ty, "--device", device]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if !o.status.success() {
            return Err(format!("quantize -t {ty} --device {device} failed:\n{err}").into());
        }
        if device == "gpu" {
            stderr_gpu = err;
        }
    }
    let line = stderr_gpu
        .lines()
        .find(|l| l.starts_with("device: GPU"))
        .ok_or(format!("no 'device: GPU' summary line in:\n{stderr_gpu}"))?;
    if line.contains(": 0 tensor(s) quantized on the GPU") {
        return Err(format!("nothing ran on the GPU: {line}").into());
    }
    let (a, b) = (std::fs::read(&cpu).map_err(|e| e.to_string())?, std::fs::read(&gpu).map_err(|e| e.to_string())?);
    if a != b {
        let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        return Err(format!(
            "{ty}: GPU output differs from CPU output ({} vs {} bytes, first at byte {at})",
            b.len(),
            a.len()
        )
        .into());
    }
    println!("{ty}: {line}");
    Ok(())
}

/// With the Vulkan loader pointed at no driver, `--device gpu` fails before writing.
fn no_adapter_is_a_clear_error() -> Result<(), Failed> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = dir.path().join("o.gguf");
    let fixture = common::root().join("fixtures/models/llama");
    let none = dir.path().join("no-such-icd.json");
    let o = Command::new(env!("CARGO_BIN_EXE_llmtool"))
        .args(["quantize", s(&fixture), s(&out), "-t", "Q8_0", "--device", "gpu"])
        .env("VK_ICD_FILENAMES", &none)
        .env("VK_DRIVER_FILES", &none)
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        return Err(format!("--device gpu without a driver succeeded:\n{err}").into());
    }
    if !err.contains("--device gpu: no GPU adapter found") {
        return Err(format!("unclear error without a driver:\n{err}").into());
    }
    if out.exists() {
        return Err("a failed run left an output file".into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let required = std::env::var("LLMTOOL_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let probe = GpuContext::new();
    let mut gpu_trials: Vec<Trial> = ["Q8_0", "Q4_0", "Q4_K_M"]
        .into_iter()
        .map(|ty| Trial::test(format!("gpu_output_equals_cpu_{}", ty.to_lowercase()), move || same_output(ty)))
        .collect();
    match probe {
        Ok(c) => eprintln!("GPU adapter: {}", c.describe()),
        Err(e) if required => {
            let msg = format!("LLMTOOL_REQUIRE_GPU=1: {e}");
            gpu_trials = gpu_trials.into_iter().map(|t| t.with_ignored_flag(true)).collect();
            gpu_trials.push(Trial::test("gpu_adapter_present", move || Err(msg.into())));
        }
        Err(e) => {
            println!("skipped: no GPU adapter ({e}); set LLMTOOL_REQUIRE_GPU=1 to make this a failure");
            gpu_trials = gpu_trials.into_iter().map(|t| t.with_ignored_flag(true)).collect();
        }
    }
    gpu_trials.push(Trial::test("no_adapter_is_a_clear_error", no_adapter_is_a_clear_error));
    libtest_mimic::run(&args, gpu_trials).exit();
}
