//! Test helpers: python judges, a deterministic PRNG, file helpers.
#![allow(dead_code)]

use llmtool_kernels::GgmlType;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the kernels crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("kernels has a parent").to_path_buf()
}

/// Runs `python3 kernels/tests/judges/<script> args…`; panics (fails the test) with the
/// judge's stderr when python or a package is missing or the judge fails.
pub fn judge(script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/judges").join(script);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (needed for the judge {script}): {e}"));
    assert!(
        out.status.success(),
        "judge {script} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `scripts/fetch-models.sh` and returns the path of the real GGUF model.
pub fn real_model() -> PathBuf {
    let root = workspace_root();
    let out = Command::new("bash")
        .arg(root.join("scripts/fetch-models.sh"))
        .current_dir(&root)
        .output()
        .expect("cannot run scripts/fetch-models.sh");
    assert!(out.status.success(), "fetch-models.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let path = PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim());
    assert!(path.is_file(), "fetch-models.sh printed {path:?}, which is not a file");
    path
}

/// SplitMix64: small, deterministic, good enough for test inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
    /// A random finite f16 bit pattern (any sign, subnormals and zero included).
    pub fn finite_f16_bits(&mut self) -> u16 {
        loop {
            let b = self.next_u64() as u16;
            if b & 0x7C00 != 0x7C00 {
                return b;
            }
        }
    }
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("read {path:?}: {e}"))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn read_u16(path: &Path) -> Vec<u16> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("read {path:?}: {e}"))
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Asserts bitwise equality, reporting the first differing index.
pub fn assert_bits_eq(what: &str, ours: &[f32], theirs: &[f32]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    if let Some(i) = (0..ours.len()).find(|&i| ours[i].to_bits() != theirs[i].to_bits()) {
        panic!(
            "{what}: element {i}: ours {} ({:#010x}), judge {} ({:#010x})",
            ours[i],
            ours[i].to_bits(),
            theirs[i],
            theirs[i].to_bits()
        );
    }
}

/// Our dequantization of whole blocks of `ty` (output pre-filled with NaN, so an element the
/// kernel forgets to write cannot pass a bitwise comparison).
pub fn dequantized(ty: llmtool_kernels::GgmlType, src: &[u8]) -> Vec<f32> {
    let mut out = vec![f32::NAN; src.len() / ty.type_size() * ty.block_size()];
    llmtool_kernels::dequant::dequantize(ty, src, &mut out).unwrap();
    out
}

/// The weight types `llmtool_kernels::matmul` supports (every type ggml-cpu gives a
/// `vec_dot_type`), listed independently of the library so a dropped type fails the tests.
pub const MATMUL_WEIGHT_TYPES: &[GgmlType] = &[
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
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::IQ3_S,
    GgmlType::IQ3_XXS,
    GgmlType::IQ2_S,
    GgmlType::IQ2_XS,
    GgmlType::IQ2_XXS,
    GgmlType::IQ1_M,
    GgmlType::IQ1_S,
];

/// The i-quants (IQ4_NL and the 256-element ones).
pub const IQ_TYPES: &[GgmlType] = &[
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::IQ3_S,
    GgmlType::IQ3_XXS,
    GgmlType::IQ2_S,
    GgmlType::IQ2_XS,
    GgmlType::IQ2_XXS,
    GgmlType::IQ1_M,
    GgmlType::IQ1_S,
];

/// `n_blocks` blocks of the i-quant `ty` from random bytes — every bit pattern of their
/// index, sign and scale fields is a valid block — with a random f16 super-scale of either
/// sign and magnitude 1e-3…2e-2 (in bytes 0..2; IQ1_M keeps it in the top nibbles of its
/// four u16 scales, ggml `iq1m_scale_t`, bytes 48..56).
pub fn random_iq_blocks(rng: &mut Rng, ty: GgmlType, n_blocks: usize) -> Vec<u8> {
    assert!(IQ_TYPES.contains(&ty), "{ty} is not an i-quant");
    let mut out = vec![0u8; n_blocks * ty.type_size()];
    rng.fill(&mut out);
    for blk in out.chunks_exact_mut(ty.type_size()) {
        let mag = 1e-3 + (rng.next_u32() % 1000) as f32 * 1.9e-5;
        let d = half::f16::from_f32(if rng.next_u32().is_multiple_of(2) { mag } else { -mag }).to_bits();
        if ty == GgmlType::IQ1_M {
            for k in 0..4 {
                let hi = &mut blk[48 + 2 * k + 1];
                *hi = (*hi & 0x0F) | ((((d >> (4 * k)) & 0x0F) as u8) << 4);
            }
        } else {
            blk[..2].copy_from_slice(&d.to_le_bytes());
        }
    }
    out
}

/// The committed judge outputs and inputs (`kernels/tests/data`).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// `quant::quantize_rows` into a fresh buffer.
pub fn quantized_rows(ty: GgmlType, x: &[f32], n_per_row: usize, imatrix: Option<&[f32]>) -> Vec<u8> {
    let mut out = Vec::new();
    llmtool_kernels::quant::quantize_rows(ty, x, n_per_row, imatrix, &mut out).unwrap();
    out
}

/// Panics naming the first differing blocks (up to 3) when `ours != theirs`.
pub fn assert_blocks_eq(what: &str, ty: GgmlType, ours: &[u8], theirs: &[u8]) {
    assert_eq!(ours.len(), theirs.len(), "{what} {ty}: byte length");
    let size = ty.type_size();
    let bad: Vec<String> = ours
        .chunks_exact(size)
        .zip(theirs.chunks_exact(size))
        .enumerate()
        .filter(|(_, (o, t))| o != t)
        .map(|(b, (o, t))| format!("block {b}\n ours  {o:02x?}\n judge {t:02x?}"))
        .collect();
    assert!(bad.is_empty(), "{what} {ty}: {} blocks differ:\n{}", bad.len(), bad[..bad.len().min(3)].join("\n"));
}
