//! Dequantization against gguf-py (llama.cpp's numpy reference) and scalar vs parallel.

mod common;

use common::{assert_bits_eq, dequantized as ours, judge, read_f32, real_model, Rng};
use llmtool_kernels::dequant::{dequantize, dequantize_parallel, dequantize_reference};
use llmtool_kernels::{GgmlType, KernelError};

const TYPES: [GgmlType; 3] = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1];

/// Random blocks whose f16 fields (d, and m for Q4_1) are finite: random bytes everywhere,
/// then the scale fields overwritten with random finite f16 bit patterns.
fn random_blocks(ty: GgmlType, n_blocks: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let size = ty.type_size();
    let mut buf = vec![0u8; n_blocks * size];
    rng.fill(&mut buf);
    let n_scales = if ty == GgmlType::Q4_1 { 2 } else { 1 };
    for block in buf.chunks_exact_mut(size) {
        for s in 0..n_scales {
            block[2 * s..2 * s + 2].copy_from_slice(&rng.finite_f16_bits().to_le_bytes());
        }
    }
    buf
}

#[test]
fn random_blocks_equal_gguf_py_bitwise() {
    let dir = tempfile::tempdir().unwrap();
    // 33 blocks: scalar path; 5000 blocks: above PARALLEL_MIN_BLOCKS, the parallel path.
    for (i, &ty) in TYPES.iter().enumerate() {
        for n_blocks in [33usize, 5000] {
            let src = random_blocks(ty, n_blocks, 1000 + i as u64 * 7 + n_blocks as u64);
            let inp = dir.path().join(format!("{ty}-{n_blocks}.bin"));
            let out = dir.path().join(format!("{ty}-{n_blocks}.f32"));
            std::fs::write(&inp, &src).unwrap();
            judge("dequant.py", &["blocks", ty.name(), inp.to_str().unwrap(), out.to_str().unwrap()]);
            assert_bits_eq(&format!("{ty} × {n_blocks} blocks"), &ours(ty, &src), &read_f32(&out));
        }
    }
}

#[test]
fn parallel_equals_scalar_on_odd_block_counts() {
    for &ty in &TYPES {
        for n_blocks in [1usize, 31, 33, 1023] {
            let src = random_blocks(ty, n_blocks, n_blocks as u64);
            let n = n_blocks * ty.block_size();
            let mut reference = vec![0f32; n];
            dequantize_reference(ty, &src, &mut reference).unwrap();
            for chunk in [1usize, 7, 32, 1024] {
                let mut par = vec![f32::NAN; n];
                dequantize_parallel(ty, &src, &mut par, chunk).unwrap();
                assert_bits_eq(&format!("{ty} {n_blocks} blocks, chunk {chunk}"), &par, &reference);
            }
        }
    }
}

#[test]
fn unaligned_input_decodes_like_aligned() {
    for &ty in &TYPES {
        let src = random_blocks(ty, 77, 5);
        // Place the blocks at an odd address: f16 fields are then misaligned.
        let mut shifted = vec![0u8; src.len() + 1];
        shifted[1..].copy_from_slice(&src);
        let unaligned = &shifted[1..];
        assert_eq!(unaligned.as_ptr() as usize % 2, 1);
        let n = 77 * ty.block_size();
        let (mut a, mut b, mut c) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        dequantize_reference(ty, &src, &mut a).unwrap();
        dequantize_reference(ty, unaligned, &mut b).unwrap();
        dequantize_parallel(ty, unaligned, &mut c, 5).unwrap();
        assert_bits_eq(&format!("{ty} unaligned"), &b, &a);
        assert_bits_eq(&format!("{ty} unaligned parallel"), &c, &a);
    }
}

#[test]
fn nibble_order_low_first_then_high() {
    // ggml dequantize_row_q4_0: y[j] = ((qs[j] & 0xF) - 8) * d, y[j + 16] = ((qs[j] >> 4) - 8) * d.
    let mut block = vec![0x00, 0x3C]; // d = 1.0
    block.extend((0..16u8).map(|j| (j << 4) | (15 - j)));
    let y = ours(GgmlType::Q4_0, &block);
    for j in 0..16 {
        assert_eq!(y[j], (15 - j as i32 - 8) as f32);
        assert_eq!(y[j + 16], (j as i32 - 8) as f32);
    }
}

#[test]
fn wrong_lengths_are_errors() {
    let mut dst = vec![0f32; 64];
    assert_eq!(
        dequantize(GgmlType::Q4_0, &[0u8; 35], &mut dst),
        Err(KernelError::ByteLength { ty: GgmlType::Q4_0, n_elements: 64, expected: 36, found: 35 })
    );
    let mut dst = vec![0f32; 40];
    assert_eq!(
        dequantize(GgmlType::Q8_0, &[0u8; 68], &mut dst),
        Err(KernelError::RaggedBlocks { ty: GgmlType::Q8_0, n_elements: 40, block_size: 32 })
    );
}

#[test]
fn real_model_tensors_equal_gguf_py_bitwise() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let names = ["token_embd.weight", "blk.0.attn_k.weight", "blk.29.ffn_down.weight", "blk.0.attn_norm.weight"];
    let mut args = vec!["model", model.to_str().unwrap(), dir.path().to_str().unwrap()];
    args.extend(names);
    judge("dequant.py", &args);
    let manifest = std::fs::read_to_string(dir.path().join("manifest.tsv")).unwrap();
    let mut seen = Vec::new();
    for line in manifest.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, ty, n): (&str, GgmlType, usize) = (f[0], GgmlType::from_name(f[1]).unwrap(), f[2].parse().unwrap());
        let raw = std::fs::read(dir.path().join(format!("{name}.raw"))).unwrap();
        let mut out = vec![f32::NAN; n];
        dequantize(ty, &raw, &mut out).unwrap();
        assert_bits_eq(name, &out, &read_f32(&dir.path().join(format!("{name}.f32"))));
        seen.push(ty);
    }
    // The model holds these three types; make sure each was really compared.
    for ty in [GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::F32] {
        assert!(seen.contains(&ty), "no {ty} tensor compared");
    }
}
