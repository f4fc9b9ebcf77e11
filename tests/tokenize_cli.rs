//! `llmtool tokenize`: the ids llama.cpp's `llama-tokenize` printed for the fixture strings
//! (fixtures/tokenizer/llama_cpp_strings.json), from the HF dir and from its GGUF, in each
//! output form; and clear errors for bad input.

mod common;

use common::{llmtool, llmtool_ok, root};
use llmtool::tokenizer::load_tokenizer;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root().join("fixtures/tokenizer").join(name)).unwrap()).unwrap()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn stdout_of(args: &[&str]) -> String {
    String::from_utf8(llmtool_ok(args).stdout).unwrap()
}

#[test]
fn ids_equal_llama_tokenize_from_hf_dir_and_gguf() {
    let strings: Vec<String> = serde_json::from_value(fixture("strings.json")).unwrap();
    let fx = fixture("llama_cpp_strings.json");
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for name in ["llama", "qwen2", "gemma"] {
        let hf = root().join("fixtures/models").join(name);
        let gguf = dir.path().join(format!("{name}.gguf"));
        llmtool_ok(&["convert", "--quiet", hf.to_str().unwrap(), gguf.to_str().unwrap()]);
        let rows = fx["models"][name].as_array().unwrap();
        for (s, row) in strings.iter().zip(rows) {
            if s.contains('\0') {
                continue; // not passable as an argument
            }
            for model in [&hf, &gguf] {
                let m = model.to_str().unwrap();
                // llama-tokenize's defaults: the model's BOS, special texts parsed.
                let got: Vec<u32> = serde_json::from_str(&stdout_of(&["tokenize", m, "--text", s, "--ids"])).unwrap();
                assert_eq!(got, ids_of(&row["special"]), "{name} {m} {s:?}");
                let args = ["tokenize", m, "--text", s, "--ids", "--no-bos", "--no-parse-special"];
                let got: Vec<u32> = serde_json::from_str(&stdout_of(&args)).unwrap();
                assert_eq!(got, ids_of(&row["plain"]), "{name} {m} --no-bos --no-parse-special {s:?}");
                compared += 2;
            }
        }
    }
    assert!(compared > 100, "only {compared} comparisons");
}

#[test]
fn listing_and_json_show_each_token_and_piece() {
    let hf = root().join("fixtures/models/qwen2");
    let m = hf.to_str().unwrap();
    let tok = load_tokenizer(&hf).unwrap();
    let text = "Hello world, 123<|im_end|>";
    let ids = tok.encode(text, tok.add_bos(), true).unwrap();
    let want: String = ids
        .iter()
        .map(|&id| format!("{id:6} -> '{}'\n", String::from_utf8(tok.token_to_piece(id).unwrap()).unwrap()))
        .collect();
    assert_eq!(stdout_of(&["tokenize", m, "--text", text]), want);
    assert!(want.contains("-> '<|im_end|>'"), "{want}");
    let with_count = stdout_of(&["tokenize", m, "--text", text, "--show-count"]);
    assert_eq!(with_count, format!("{want}Total number of tokens: {}\n", ids.len()));

    let j: Value = serde_json::from_str(&stdout_of(&["tokenize", m, "--text", text, "--json"])).unwrap();
    assert_eq!(ids_of(&j["ids"]), ids);
    let pieces: Vec<&str> = j["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(pieces.concat(), text);
    assert_eq!(j["n_tokens"], ids.len());

    // A file is read verbatim (its trailing newline is a token, too).
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.txt");
    std::fs::write(&f, format!("{text}\n")).unwrap();
    let j: Value = serde_json::from_str(&stdout_of(&["tokenize", m, "--file", f.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(ids_of(&j["ids"]), tok.encode(&format!("{text}\n"), tok.add_bos(), true).unwrap());
}

#[test]
fn no_bos_drops_the_bos_the_model_adds() {
    let hf = root().join("fixtures/models/gemma");
    let m = hf.to_str().unwrap();
    let tok = load_tokenizer(&hf).unwrap();
    assert!(tok.add_bos());
    let with: Vec<u32> = serde_json::from_str(&stdout_of(&["tokenize", m, "--text", "Hi there", "--ids"])).unwrap();
    let without: Vec<u32> =
        serde_json::from_str(&stdout_of(&["tokenize", m, "--text", "Hi there", "--ids", "--no-bos"])).unwrap();
    assert_eq!(with[0], tok.bos().unwrap());
    assert_eq!(&with[1..], &without[..]);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = root().join("fixtures/models/llama");
    let m = m.to_str().unwrap();
    let fail = |args: &[&str]| {
        let out = llmtool(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let bad = dir.path().join("latin1.txt");
    std::fs::write(&bad, b"caf\xe9 au lait").unwrap();
    let err = fail(&["tokenize", m, "--file", bad.to_str().unwrap()]);
    assert!(err.contains("latin1.txt") && err.contains("UTF-8") && err.contains("offset 3"), "{err}");
    let err = fail(&["tokenize", m, "--file", "/nonexistent/prompt.txt"]);
    assert!(err.contains("/nonexistent/prompt.txt"), "{err}");
    let err = fail(&["tokenize", "/nonexistent/model.gguf", "--text", "x"]);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
    let err = fail(&["tokenize", dir.path().to_str().unwrap(), "--text", "x"]);
    assert!(err.contains("tokenizer.json"), "{err}");
    let err = fail(&["tokenize", m]);
    assert!(err.contains("--text") || err.contains("--file"), "{err}");
}
