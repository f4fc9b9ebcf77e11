//! `merge --evolve` on the real SmolLM2-135M: W is the model (Q4_1, dequantized), A = W + δ and
//! B = W − δ written as F16 GGUF files (δ seeded uniform noise, 0.5·rms of each matrix, large
//! enough to hurt perplexity a lot), so the linear merge `(w_a·A + w_b·B)/(w_a + w_b)` is W at
//! equal weights. The search starts away from there (x0 = [0.8, 0.2]) and must find a ratio
//! near 0.5 whose perplexity is within 1 % of the original model's (W as F16), at a small budget.

mod common;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use common::*;
use llmtool::evolve::search::{run_search, Evaluator, SearchOptions};
use llmtool::evolve::EvolveConfig;
use llmtool::infer::InferModel;
use llmtool::model::Model;
use llmtool_formats::gguf::{write_gguf, GgufHeader};
use llmtool_formats::{GgmlType, TensorInfo};
use llmtool_kernels::convert;

/// Writes W + sign·δ as an F16 GGUF (1-D tensors kept as they are, unperturbed).
fn plus_minus(w: &Model, path: &Path, sign: f32, amp: f32) {
    let mut infos = Vec::new();
    let mut datas: Vec<Vec<u8>> = Vec::new();
    let mut rng = 0x5eed_u64.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for t in w.tensors.tensor_infos() {
        let bytes = w.tensors.tensor_bytes(&t.name).unwrap();
        if t.ne.len() < 2 {
            infos.push(t.clone());
            datas.push(bytes.into_owned());
            continue;
        }
        let n: u64 = t.ne.iter().product();
        let mut f = vec![0f32; n as usize];
        convert::to_f32(t.ty, &bytes, &mut f).unwrap();
        let rms = (f.iter().map(|x| (x * x) as f64).sum::<f64>() / f.len() as f64).sqrt() as f32;
        for x in &mut f {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let u = ((rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            *x += sign * amp * rms * u;
        }
        let mut out = Vec::new();
        convert::from_f32(GgmlType::F16, &f, &mut out).unwrap();
        infos.push(TensorInfo::new(t.name.clone(), GgmlType::F16, t.ne.clone()));
        datas.push(out);
    }
    let mut md = w.metadata.clone();
    llmtool::model::set_file_type(&mut md, GgmlType::F16);
    let header = GgufHeader::new(md, infos).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write_gguf(&mut file, &header, |i, _| Ok(Cow::Borrowed(&datas[i][..])), |_| {}).unwrap();
}

fn wiki() -> PathBuf {
    common::wiki_text()
}

#[test]
fn evolve_recovers_the_original_model_from_w_plus_and_minus_delta() {
    let tmp = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let d = tmp.path();
    let w = Model::open(&real_model()).unwrap();
    plus_minus(&w, &d.join("a.gguf"), 1.0, 0.5);
    plus_minus(&w, &d.join("b.gguf"), -1.0, 0.5);
    // The original in the same storage type (F16): the core runs Q4_1 matrices with 8-bit
    // quantized activations (as llama.cpp does), which alone moves PPL by about 1 %.
    plus_minus(&w, &d.join("w.gguf"), 0.0, 0.0);
    drop(w);
    let w = Model::open(&d.join("w.gguf")).unwrap();
    let yaml = format!(
        "merge_method: linear\nmodels: [a.gguf, b.gguf]\nfitness:\n  perplexity: [{{file: {}}}]\n\
         eval: {{ctx: 128, chunks: 2}}\nsearch: {{max_evals: 18, population: 6, sigma: 0.25, seed: 3, x0: [0.8, 0.2]}}\n",
        wiki().display()
    );
    let cfg = EvolveConfig::parse(&yaml, "real.yml", Some(d)).unwrap();
    let ev = Evaluator::new(cfg, 0).unwrap();
    let original = ev.score(&InferModel::load(&w).unwrap()).unwrap();
    let ppl0 = original.components[0].value;
    let ppl_a = ev.evaluate(&[1.0, 0.0]).unwrap().score.components[0].value;
    let start = ev.evaluate(&[0.8, 0.2]).unwrap().score.components[0].value;
    eprintln!("original PPL {ppl0:.3}; A alone {ppl_a:.3}; start (0.8, 0.2) {start:.3}");
    assert!(ppl_a > 1.5 * ppl0, "δ must hurt: A {ppl_a} vs W {ppl0}");
    let t0 = std::time::Instant::now();
    let state =
        run_search(&ev, &d.join("out"), &SearchOptions { resume: false, quiet: true, max_generations_this_run: None })
            .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let best = state.best().unwrap();
    let (a, b) = (best.genome[0].abs(), best.genome[1].abs());
    let ratio = a / (a + b);
    let ppl = best.score.components[0].value;
    eprintln!(
        "best ratio {ratio:.4} (weights {a:.4}, {b:.4}); PPL {ppl:.3} vs original {ppl0:.3} ({:+.3} %); {} evals in {secs:.1} s ({:.0} evals/h)",
        (ppl / ppl0 - 1.0) * 100.0,
        state.history.len(),
        state.history.len() as f64 / secs * 3600.0
    );
    assert!((ratio - 0.5).abs() < 0.05, "ratio {ratio}");
    assert!((ppl / ppl0 - 1.0).abs() < 0.01, "PPL {ppl} vs original {ppl0}");
}
