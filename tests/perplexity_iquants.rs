//! `llmtool perplexity` on a real model whose `ffn_down` matrices (k = 1536, whole 256-blocks)
//! are i-quants — IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_M and IQ1_S, layer by
//! layer in turn — against the same model with exactly those weights stored as F32.
//!
//! The i-quant file runs the quantized matmul (weights in their blocks, activations as Q8_K,
//! as llama.cpp does); the F32 file multiplies the same weight values in f32. The two
//! perplexities must agree within the effect of the 8-bit activations (about 1 % on this model
//! for Q4_1, see `tests/evolve_real.rs`). The blocks are the model's own `ffn_down` weights
//! quantized by our i-quant quantizers (flat importance weights, which the IQ2_XXS/IQ2_XS/IQ1
//! quantizers require).

mod common;

use std::borrow::Cow;
use std::path::Path;

use llmtool::model::Model;
use llmtool_formats::gguf::{write_gguf, GgufHeader};
use llmtool_formats::{GgmlType, TensorInfo};
use llmtool_kernels::{convert, dequant, quant};

const TYPES: [GgmlType; 8] = [
    GgmlType::IQ4_XS,
    GgmlType::IQ3_S,
    GgmlType::IQ3_XXS,
    GgmlType::IQ2_S,
    GgmlType::IQ2_XS,
    GgmlType::IQ2_XXS,
    GgmlType::IQ1_M,
    GgmlType::IQ1_S,
];

/// Writes `model` twice: with every `ffn_down` as random i-quant blocks (`iq`), and with those
/// blocks' values as F32 (`f32`); the other tensors as they are.
fn write_pair(model: &Model, iq: &Path, f32_path: &Path) {
    let (mut infos_q, mut infos_f, mut datas_q, mut datas_f) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut layer = 0;
    for t in model.tensors.tensor_infos() {
        let bytes = model.tensors.tensor_bytes(&t.name).unwrap().into_owned();
        if !t.name.ends_with("ffn_down.weight") {
            infos_q.push(t.clone());
            infos_f.push(t.clone());
            datas_q.push(bytes.clone());
            datas_f.push(bytes);
            continue;
        }
        let n = t.ne.iter().product::<u64>() as usize;
        assert_eq!(t.ne[0] % 256, 0, "{}: rows of whole 256-blocks", t.name);
        let mut orig = vec![0f32; n];
        convert::to_f32(t.ty, &bytes, &mut orig).unwrap();
        let ty = TYPES[layer % TYPES.len()];
        layer += 1;
        let n_per_row = t.ne[0] as usize;
        let mut q = Vec::new();
        quant::quantize_rows(ty, &orig, n_per_row, Some(&vec![1.0; n_per_row]), &mut q).unwrap();
        let mut vals = vec![0f32; n];
        dequant::dequantize(ty, &q, &mut vals).unwrap();
        infos_q.push(TensorInfo::new(t.name.clone(), ty, t.ne.clone()));
        datas_q.push(q);
        infos_f.push(TensorInfo::new(t.name.clone(), GgmlType::F32, t.ne.clone()));
        datas_f.push(vals.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    assert_eq!(layer, 30, "SmolLM2-135M has 30 ffn_down matrices");
    for (path, infos, datas) in [(iq, infos_q, datas_q), (f32_path, infos_f, datas_f)] {
        let header = GgufHeader::new(model.metadata.clone(), infos).unwrap();
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        write_gguf(&mut file, &header, |i, _| Ok(Cow::Borrowed(&datas[i][..])), |_| {}).unwrap();
    }
}

fn ppl(model: &Path) -> f64 {
    let text = common::wiki_text();
    let out = common::llmtool_ok(&[
        "perplexity",
        model.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "128",
        "--chunks",
        "3",
        "--json",
        "--quiet",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["ppl"].as_f64().unwrap()
}

#[test]
fn iquant_matrices_give_the_perplexity_of_their_f32_values() {
    let tmp = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let (iq, f32_path) = (tmp.path().join("iq.gguf"), tmp.path().join("f32.gguf"));
    let model = Model::open(&common::real_model()).unwrap();
    write_pair(&model, &iq, &f32_path);
    drop(model);
    let (p_iq, p_f32) = (ppl(&iq), ppl(&f32_path));
    eprintln!("PPL with i-quant ffn_down {p_iq:.4}, same values as F32 {p_f32:.4}");
    assert!(p_iq.is_finite() && p_f32.is_finite());
    let rel = (p_iq - p_f32).abs() / p_f32;
    assert!(rel < 0.02, "i-quant {p_iq} vs F32 {p_f32}: relative difference {rel:.4}");
}
