//! HF → GGUF → HF on the tiny committed fixture of every architecture: every tensor comes
//! back under the same name with the same dtype, shape and bytes; the PyPI packages read
//! both directions' outputs.

mod common;

use std::path::Path;

use common::*;
use llmtool_formats::hf::HfDir;

fn round_trip(arch: &str) {
    let src = root().join("fixtures/models").join(arch);
    assert!(src.join("config.json").exists(), "fixture {arch} missing: run fixtures/gen_fixtures.py");
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join(format!("{arch}.gguf"));
    let back = dir.path().join("back");
    llmtool_ok(&["convert", "--quiet", src.to_str().unwrap(), gguf.to_str().unwrap()]);
    assert_gguf_py_agrees(&gguf);
    llmtool_ok(&["convert", "--quiet", gguf.to_str().unwrap(), back.to_str().unwrap()]);

    let a = HfDir::open(&src).unwrap();
    let b = HfDir::open(&back).unwrap();
    let mut names_a: Vec<&str> = a.weights.tensors().iter().map(|t| t.name.as_str()).collect();
    let mut names_b: Vec<&str> = b.weights.tensors().iter().map(|t| t.name.as_str()).collect();
    // A tied lm_head copy in the source is dropped on purpose (GGUF stores it once).
    let tied = a.config.get("tie_word_embeddings").and_then(|v| v.as_bool()).unwrap_or(arch.starts_with("gemma"));
    if tied {
        names_a.retain(|n| *n != "lm_head.weight");
    }
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b, "{arch}: tensor names");
    for t in a.weights.tensors().iter().filter(|t| names_b.contains(&t.name.as_str())) {
        let u = b.weights.tensors().iter().find(|u| u.name == t.name).unwrap();
        assert_eq!(t.dtype, u.dtype, "{arch}: dtype of {}", t.name);
        assert_eq!(t.shape, u.shape, "{arch}: shape of {}", t.name);
        assert!(a.weights.tensor_data(&t.name) == b.weights.tensor_data(&t.name), "{arch}: bytes of {}", t.name);
    }
    for key in [
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "vocab_size",
    ] {
        assert_eq!(a.config.get(key), b.config.get(key), "{arch}: config {key}");
    }
    let st = judge("st_dump.py", &[back.as_path() as &Path]);
    assert_eq!(st["config_model_type"], a.config["model_type"], "{arch}: transformers reads our config");
}

#[test]
fn llama_fixture_round_trips() {
    round_trip("llama");
}

#[test]
fn phi3_fixture_round_trips() {
    round_trip("phi3");
}

#[test]
fn gemma_fixture_round_trips() {
    round_trip("gemma");
}

#[test]
fn gemma2_fixture_round_trips() {
    round_trip("gemma2");
}

#[test]
fn qwen2_fixture_round_trips() {
    round_trip("qwen2");
}

#[test]
fn llama31_fixture_round_trips() {
    round_trip("llama31");
}

#[test]
fn qwen3_fixture_round_trips() {
    round_trip("qwen3");
}

#[test]
fn phi35_fixture_round_trips() {
    round_trip("phi35");
}

#[test]
fn phi4mini_fixture_round_trips() {
    round_trip("phi4mini");
}

/// transformers' standardized rope parameters of two HF dirs agree: the same keys, strings
/// equal, numbers equal to f32 precision (the GGUF stores them as f32), lists elementwise.
fn assert_rope_parameters_agree(what: &str, orig: &serde_json::Value, back: &serde_json::Value) {
    use serde_json::Value;
    let (Some(o), Some(b)) = (orig.as_object(), back.as_object()) else {
        panic!("{what}: rope parameters {orig} vs {back}");
    };
    // transformers 5 keeps unknown extras; the ones that matter are in the original
    for (k, ov) in o {
        let bv = b.get(k).unwrap_or_else(|| panic!("{what}: rope parameter {k} lost ({back})"));
        let close = |x: &Value, y: &Value| match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x as f32 == y as f32,
            _ => x == y,
        };
        let same = match (ov.as_array(), bv.as_array()) {
            (Some(x), Some(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y)),
            _ => close(ov, bv),
        };
        assert!(same, "{what}: rope parameter {k}: {ov} vs {bv}");
    }
}

#[test]
fn rope_scaling_comes_back_from_our_gguf_and_from_llama_cpp_s() {
    // GGUF → HF drops the factor tensors and writes rope_scaling (solved from
    // rope_freqs.weight for llama3; the factor lists for longrope) that transformers'
    // AutoConfig reads as the original's rope parameters. From our GGUF and from llama.cpp's.
    let dir = tempfile::tempdir().unwrap();
    for arch in ["llama31", "phi35", "phi4mini"] {
        let src = root().join("fixtures/models").join(arch);
        let orig = judge("st_dump.py", &[src.as_path()]);
        let ours = dir.path().join(format!("{arch}.gguf"));
        llmtool_ok(&["convert", "--quiet", src.to_str().unwrap(), ours.to_str().unwrap()]);
        let theirs = root().join("fixtures/llama_cpp").join(format!("{arch}.gguf"));
        for (what, gguf) in [("ours", &ours), ("llama.cpp", &theirs)] {
            let back = dir.path().join(format!("{arch}-{what}"));
            llmtool_ok(&["convert", "--quiet", gguf.to_str().unwrap(), back.to_str().unwrap()]);
            let b = HfDir::open(&back).unwrap();
            assert!(
                b.weights.tensors().iter().all(|t| !t.name.contains("rope")),
                "{arch} ({what}): a rope factor tensor reached the HF dir"
            );
            let st = judge("st_dump.py", &[back.as_path()]);
            assert_rope_parameters_agree(
                &format!("{arch} ({what})"),
                &orig["config_rope_parameters"],
                &st["config_rope_parameters"],
            );
            // and back to GGUF: the same factor tensors again
            let again = dir.path().join(format!("{arch}-{what}-again.gguf"));
            llmtool_ok(&["convert", "--quiet", back.to_str().unwrap(), again.to_str().unwrap()]);
            let (g0, g1) = (
                llmtool_formats::gguf::GgufFile::open(gguf).unwrap(),
                llmtool_formats::gguf::GgufFile::open(&again).unwrap(),
            );
            let mut n = 0;
            for t in g0.tensors.iter().filter(|t| llmtool::arch::is_rope_factor_tensor(&t.name)) {
                assert!(g0.tensor_data(&t.name) == g1.tensor_data(&t.name), "{arch} ({what}): {} changed", t.name);
                n += 1;
            }
            assert_eq!(n, if arch == "llama31" { 1 } else { 2 }, "{arch} ({what}): factor tensors");
        }
    }
}

#[test]
fn gemma3_fixture_round_trips() {
    round_trip("gemma3");
}

/// Gemma3ForConditionalGeneration: the text tower is converted (as llama.cpp does), the
/// vision tower and projector are skipped with a note naming them; the GGUF equals the
/// text-only fixture's conversion except for the name, and comes back as Gemma3ForCausalLM.
#[test]
fn gemma3_multimodal_wrapper_converts_its_text_tower() {
    let src = root().join("fixtures/models/gemma3_mm");
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("mm.gguf");
    let out = llmtool_ok(&["convert", src.to_str().unwrap(), gguf.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("multi_modal_projector.") && err.contains("vision_tower."), "{err}");
    assert_gguf_py_agrees(&gguf);
    let g = llmtool_formats::gguf::GgufFile::open(&gguf).unwrap();
    assert_eq!(g.metadata.get_str("general.architecture"), Some("gemma3"));
    assert_eq!(g.tensors.len(), 1 + 1 + 6 * 13, "token_embd, output_norm, 13 per layer");
    assert!(!g.tensors.iter().any(|t| t.name.contains("vision") || t.name.contains("mm_")));
    let back = dir.path().join("back");
    llmtool_ok(&["convert", "--quiet", gguf.to_str().unwrap(), back.to_str().unwrap()]);
    let b = HfDir::open(&back).unwrap();
    assert_eq!(b.config["architectures"][0], "Gemma3ForCausalLM");
    let a = HfDir::open(&src).unwrap();
    // Values, not bytes: a norm weight of -0.0 comes back as +0.0 through w + 1 (as in llama.cpp).
    let f32s = |d: &[u8]| d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<f32>>();
    for t in b.weights.tensors() {
        let hf = t.name.replacen("model.", "language_model.model.", 1);
        let want = f32s(a.weights.tensor_data(&hf).unwrap_or_else(|| panic!("no {hf}")));
        assert_eq!(want, f32s(b.weights.tensor_data(&t.name).unwrap()), "values of {}", t.name);
    }
    let st = judge("st_dump.py", &[back.as_path() as &Path]);
    assert_eq!(st["config_model_type"], "gemma3_text", "transformers reads our config");
}

#[test]
fn command_r_fixture_round_trips() {
    round_trip("command_r");
}

#[test]
fn cohere2_fixture_round_trips() {
    round_trip("cohere2");
}

/// bf16 rounding of an f32 (round to nearest even), computed here independently of the
/// kernels crate.
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = b + 0x7FFF + ((b >> 16) & 1);
    (rounded >> 16) as u16
}

#[test]
fn hf_to_hf_redtypes_and_reshards() {
    let src = root().join("fixtures/models/llama");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bf16");
    llmtool_ok(&[
        "convert",
        "--quiet",
        "--outtype",
        "bf16",
        "--shard-size",
        "100KB",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(out.join("model.safetensors.index.json").exists());
    let st = judge("st_dump.py", &[out.as_path()]);
    let shards: std::collections::BTreeSet<&str> =
        st["tensors"].as_object().unwrap().values().map(|t| t["file"].as_str().unwrap()).collect();
    assert!(shards.len() > 1, "several shards expected: {shards:?}");
    let a = HfDir::open(&src).unwrap();
    let b = HfDir::open(&out).unwrap();
    assert_eq!(b.config["torch_dtype"], "bfloat16");
    assert_eq!(a.weights.tensors().len(), b.weights.tensors().len());
    for t in a.weights.tensors() {
        let u = b.weights.tensor(&t.name).unwrap();
        assert_eq!(format!("{:?}", u.dtype), "BF16", "{}", t.name);
        assert_eq!(t.shape, u.shape);
        let want: Vec<u16> = a
            .weights
            .tensor_data(&t.name)
            .unwrap()
            .chunks_exact(4)
            .map(|c| bf16_bits(f32::from_le_bytes(c.try_into().unwrap())))
            .collect();
        let got: Vec<u16> =
            b.weights.tensor_data(&t.name).unwrap().chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(want, got, "{}", t.name);
    }
    // Tokenizer and extra files travel along unchanged.
    assert_eq!(a.tokenizer_json, b.tokenizer_json);
    assert_eq!(a.tokenizer_config, b.tokenizer_config);
}

#[test]
fn gguf_to_gguf_retypes_matrices_and_keeps_vectors_f32() {
    let src = root().join("fixtures/models/qwen2");
    let dir = tempfile::tempdir().unwrap();
    let g32 = dir.path().join("a.gguf");
    let g16 = dir.path().join("b.gguf");
    llmtool_ok(&["convert", "--quiet", src.to_str().unwrap(), g32.to_str().unwrap()]);
    llmtool_ok(&["convert", "--quiet", "--outtype", "f16", g32.to_str().unwrap(), g16.to_str().unwrap()]);
    let a = llmtool_formats::gguf::GgufFile::open(&g32).unwrap();
    let b = llmtool_formats::gguf::GgufFile::open(&g16).unwrap();
    assert_eq!(b.metadata.get_u64("general.file_type"), Some(1), "MOSTLY_F16");
    for (t, u) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(t.name, u.name);
        let want = if t.ne.len() >= 2 { llmtool_formats::GgmlType::F16 } else { llmtool_formats::GgmlType::F32 };
        assert_eq!(u.ty, want, "{}", t.name);
        if u.ty == llmtool_formats::GgmlType::F16 {
            let x: Vec<f32> = a
                .tensor_data(&t.name)
                .unwrap()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let y = b.tensor_data(&u.name).unwrap();
            for (i, v) in x.iter().enumerate() {
                // Round to nearest even, as numpy's float16 does (the kernels tests check
                // `half` against numpy on every value class).
                let h = u16::from_le_bytes([y[2 * i], y[2 * i + 1]]);
                assert_eq!(h, half::f16::from_f32(*v).to_bits(), "{}[{i}] = {v}", t.name);
            }
        }
    }
    assert_gguf_py_agrees(&g16);
}

#[test]
fn inspect_shows_an_hf_dir_under_gguf_names() {
    let src = root().join("fixtures/models/phi3");
    let out = llmtool_ok(&["inspect", "--json", src.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"]["kind"], "hf");
    assert_eq!(v["architecture"], "phi3");
    let names: Vec<&str> = v["tensors"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"blk.0.attn_qkv.weight"), "{names:?}");
    assert!(names.contains(&"blk.1.ffn_up.weight"), "{names:?}");
    assert_eq!(v["hyperparameters"]["block_count"], 2);
}

/// transformers ≥ 4.50 keeps the chat template in chat_template.jinja (the fixtures' tokenizer
/// configs have none): HF → GGUF carries it into `tokenizer.chat_template`, as gguf-py's
/// SpecialVocab does, so `generate --chat` works on the converted GGUF.
#[test]
fn chat_template_jinja_reaches_the_gguf() {
    let src = root().join("fixtures/models/llama");
    let tc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("tokenizer_config.json")).unwrap()).unwrap();
    assert!(tc.get("chat_template").is_none(), "the fixture keeps its template in chat_template.jinja only");
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("llama.gguf");
    llmtool_ok(&["convert", "--quiet", src.to_str().unwrap(), gguf.to_str().unwrap()]);
    let g = llmtool_formats::gguf::GgufFile::open(&gguf).unwrap();
    let jinja = std::fs::read_to_string(src.join("chat_template.jinja")).unwrap();
    assert_eq!(g.metadata.get_str("tokenizer.chat_template"), Some(jinja.as_str()));
    let out = llmtool_ok(&["generate", gguf.to_str().unwrap(), "--prompt", "hello", "-n", "2", "--chat"]);
    assert!(!out.stdout.is_empty());
}
