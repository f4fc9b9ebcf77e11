//! Command R / Command R7B through the CLI on the tiny fixtures: `generate --chat` renders
//! the fixture's Cohere-style template and continues greedily exactly as the library's
//! forward pass ranks the tokens.

mod common;

use llmtool::infer::InferModel;
use llmtool::model::Model;
use serde_json::Value;

#[test]
fn generate_chat_is_greedy_over_the_cohere_template() {
    for arch in ["command_r", "cohere2"] {
        let dir = common::root().join("fixtures/models").join(arch);
        let d = dir.to_str().unwrap();
        let out = common::llmtool_ok(&[
            "generate",
            d,
            "--chat",
            "--system",
            "Be brief.",
            "-p",
            "Hello there",
            "-n",
            "6",
            "--json",
            "--threads",
            "2",
        ]);
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids =
            |k: &str| -> Vec<u32> { j[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect() };
        let (prompt, gen) = (ids("prompt_ids"), ids("ids"));
        // <BOS_TOKEN>=5 <|START_OF_TURN_TOKEN|>=7 <|SYSTEM_TOKEN|>=11 … <|END_OF_TURN_TOKEN|>=8,
        // then the user turn (9) and the opened chatbot turn (10).
        assert_eq!(&prompt[..3], &[5, 7, 11], "{arch}: {prompt:?}");
        assert_eq!(&prompt[prompt.len() - 3..], &[8, 7, 10], "{arch}: {prompt:?}");
        assert!(prompt.contains(&9), "{arch}: user turn in {prompt:?}");
        assert_eq!(gen.len(), 6, "{arch}");
        // Greedy: each generated token is the argmax of the library's logits.
        let model = Model::open(&dir).unwrap();
        let m = InferModel::load(&model).unwrap();
        let all: Vec<u32> = prompt.iter().chain(&gen).copied().collect();
        let mut kv = m.new_cache(all.len());
        let logits = m.forward(&all, &mut kv, 0).unwrap();
        let nv = m.cfg.n_vocab;
        for (i, &g) in gen.iter().enumerate() {
            let row = &logits[(prompt.len() + i - 1) * nv..][..nv];
            let best = (0..nv).max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a))).unwrap() as u32;
            assert_eq!(g, best, "{arch}: generated token {i}");
        }
    }
}

/// `convert --outtype f16/bf16` keeps Command R+'s 2-D per-head q/k norms F32, as
/// convert_hf_to_gguf.py does for every `*_norm.weight`; the matrices take the out type.
#[test]
fn qk_norms_stay_f32_at_half_precision() {
    let tmp = tempfile::tempdir().unwrap();
    let src = common::root().join("fixtures/models/command_r");
    for ty in ["f16", "bf16"] {
        let out = tmp.path().join(format!("{ty}.gguf"));
        common::llmtool_ok(&["convert", "--quiet", "--outtype", ty, src.to_str().unwrap(), out.to_str().unwrap()]);
        let f = llmtool_formats::gguf::GgufFile::open(&out).unwrap();
        let ty_of = |n: &str| f.tensors.iter().find(|t| t.name == n).unwrap().ty.name();
        assert_eq!(ty_of("blk.0.attn_q_norm.weight"), "F32", "{ty}");
        assert_eq!(ty_of("blk.1.attn_k_norm.weight"), "F32", "{ty}");
        assert_eq!(ty_of("blk.0.attn_q.weight"), ty.to_uppercase(), "{ty}");
    }
}
