//! Golden test of greedy generation on the real model: continuations of fixed prompts equal
//! llama.cpp's (`fixtures/generate/expected.json`, made by `fixtures/generate/gen_expected.py`
//! with llama-completion `--temp 0`), and the CLI's streaming / JSON outputs agree.
//!
//! Two engines that sum floats in different orders can pick different tokens where the top
//! two logits are nearly equal. So each continuation must equal llama.cpp's up to the end, or
//! up to a near-tie: there our runner-up is llama.cpp's token and our top-2 margin is under
//! `NEAR_TIE` logits; and at least `MIN_AGREED` tokens must agree first.

mod common;

use common::{llmtool_ok, real_model, root};
use llmtool::infer::InferModel;
use llmtool::model::Model;
use llmtool::tokenizer::Tokenizer;
use serde_json::Value;

/// The largest top-1/top-2 logit gap accepted where our greedy choice differs from llama.cpp's.
/// Measured near-ties on this model: " Nova"/" New" 0.08–0.12 after "Once upon a time, the city
/// of"; "2"/"1" 0.07 after "approximately 3" (France prompt). llama.cpp's own Q4_1
/// logits differ from its F16 run's by a mean KLD of 0.0028 (shared/reference), so such gaps
/// are within engine noise.
const NEAR_TIE: f32 = 0.2;
/// Tokens that must agree with llama.cpp before any near-tie. (Measured: "Once upon a time"
/// can tie after 4 tokens, at " Nova" 5.757 vs " New" 5.680.)
const MIN_AGREED: usize = 4;

/// Our greedy continuation (ids) of `prompt`.
fn greedy_ids(infer: &InferModel, tok: &Tokenizer, prompt: &str, n: usize) -> Vec<u32> {
    let ids = tok.encode(prompt, true, false).unwrap();
    let mut kv = infer.new_cache(ids.len() + n);
    let mut logits = infer.forward_from(&ids, &mut kv, 0, ids.len() - 1).unwrap();
    let mut out = Vec::new();
    for pos in ids.len()..ids.len() + n {
        let id = top2(&logits).0 .0;
        out.push(id);
        logits = infer.forward(&[id], &mut kv, pos).unwrap();
    }
    out
}

fn expected() -> Value {
    let text = std::fs::read_to_string(root().join("fixtures/generate/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn top2(logits: &[f32]) -> ((u32, f32), (u32, f32)) {
    let mut best = (0u32, f32::NEG_INFINITY);
    let mut second = (0u32, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if l > best.1 {
            second = best;
            best = (i as u32, l);
        } else if l > second.1 {
            second = (i as u32, l);
        }
    }
    (best, second)
}

#[test]
fn greedy_continuations_equal_llama_cpp() {
    let path = real_model();
    let model = Model::open(&path).unwrap();
    let tok = Tokenizer::from_model(&model).unwrap();
    let infer = InferModel::load(&model).unwrap();
    let fixture = expected();
    let n_predict = fixture["n_predict"].as_u64().unwrap() as usize;
    for case in fixture["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let want = case["continuation"].as_str().unwrap();
        let ids = tok.encode(prompt, true, false).unwrap();
        let mut kv = infer.new_cache(ids.len() + n_predict);
        let mut logits = infer.forward_from(&ids, &mut kv, 0, ids.len() - 1).unwrap();
        let mut got = String::new();
        let mut diverged = false;
        for (agreed, pos) in (0..n_predict).zip(ids.len()..) {
            let ((id, l1), (id2, l2)) = top2(&logits);
            assert!(!tok.is_eog(id), "{prompt:?}: unexpected end of generation after {got:?}");
            let piece = String::from_utf8(tok.token_to_piece(id).unwrap()).unwrap();
            let rest = &want[got.len()..];
            if !rest.starts_with(&piece) {
                let runner_up = String::from_utf8(tok.token_to_piece(id2).unwrap()).unwrap();
                assert!(
                    agreed >= MIN_AGREED,
                    "{prompt:?}: only {agreed} tokens agree: after {got:?} we chose {piece:?} ({l1}) over \
                     {runner_up:?} ({l2}); llama.cpp continues {rest:?}"
                );
                eprintln!("{prompt:?}: near-tie after {agreed} tokens: {piece:?} {l1} vs {runner_up:?} {l2}");
                assert!(
                    rest.starts_with(&runner_up) && l1 - l2 < NEAR_TIE,
                    "{prompt:?}: after {got:?} we chose {piece:?} ({l1}) over {runner_up:?} ({l2}); llama.cpp \
                     continues {rest:?}: not a near-tie"
                );
                diverged = true;
                break;
            }
            got.push_str(&piece);
            logits = infer.forward(&[id], &mut kv, pos).unwrap();
        }
        if !diverged {
            assert_eq!(got, want, "{prompt:?}");
        }
    }
}

#[test]
fn cli_json_and_streamed_text_equal_the_library_greedy_run() {
    let path = real_model();
    let fixture = expected();
    let prompt = fixture["cases"][0]["prompt"].as_str().unwrap();
    let n = fixture["n_predict"].as_u64().unwrap() as usize;
    let model = Model::open(&path).unwrap();
    let tok = Tokenizer::from_model(&model).unwrap();
    let infer = InferModel::load(&model).unwrap();
    let want_ids = greedy_ids(&infer, &tok, prompt, n);
    let want = tok.decode(&want_ids).unwrap();
    let (p, n) = (path.to_str().unwrap(), n.to_string());
    let json = llmtool_ok(&["generate", p, "--prompt", prompt, "-n", &n, "--json", "--threads", "2"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    let ids: Vec<u32> = v["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    assert_eq!(ids, want_ids);
    assert_eq!(v["text"].as_str().unwrap(), want);
    assert_eq!(v["stop"], "length");
    let text = llmtool_ok(&["generate", p, "--prompt", prompt, "-n", &n, "--threads", "2"]);
    assert_eq!(String::from_utf8(text.stdout).unwrap(), format!("{want}\n"));
}

#[test]
fn chat_mode_renders_the_template_and_sampling_is_seeded() {
    let path = real_model();
    let p = path.to_str().unwrap();
    let run = |seed: &str| {
        let out = llmtool_ok(&[
            "generate",
            p,
            "--prompt",
            "Name a colour.",
            "--chat",
            "-n",
            "8",
            "--temp",
            "0.9",
            "--seed",
            seed,
            "--json",
        ]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let a = run("7");
    assert_eq!(a, run("7"), "same seed, same tokens");
    // The chat prompt starts with the template's `<|im_start|>` turns (SmolLM2: id 1).
    let prompt_ids = a["prompt_ids"].as_array().unwrap();
    assert_eq!(prompt_ids[0], 1, "{prompt_ids:?}");
    assert!(prompt_ids.len() > 10);
}

#[test]
fn errors_are_clear() {
    let path = real_model();
    let p = path.to_str().unwrap();
    let out = common::llmtool(&["generate", p, "--prompt", "hi", "--top-p", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("top_p"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = common::llmtool(&["generate", "/nonexistent.gguf", "--prompt", "hi"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.gguf"));
}
