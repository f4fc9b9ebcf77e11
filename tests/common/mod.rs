//! Helpers shared by the end-to-end tests: the binary, the real model, the python judges.
#![allow(dead_code)]

pub mod evolve_fixture;
pub mod variant;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use llmtool_formats::{MetaArray, MetaValue, Metadata, TensorSource};
use serde_json::{json, Value};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `llmtool ARGS…` and returns its output (not checked).
pub fn llmtool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llmtool")).args(args).output().expect("spawn llmtool")
}

/// Runs `llmtool ARGS…` and panics with its stderr unless it succeeds.
pub fn llmtool_ok(args: &[&str]) -> Output {
    let out = llmtool(args);
    assert!(out.status.success(), "llmtool {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// WikiText-2's raw test text (the standard perplexity text), shipped in the repository
/// (`data/wikitext-2-raw`, CC BY-SA 3.0) so the tests need nothing beside the clone;
/// `tests/shipped_text.rs` checks it is the file in `../shared/data` where that exists.
pub fn wiki_text() -> PathBuf {
    root().join("data/wikitext-2-raw/wiki.test.raw")
}

/// The real SmolLM2 model, fetched by `scripts/fetch-models.sh` into the cache.
pub fn real_model() -> PathBuf {
    let out = Command::new("bash").arg(root().join("scripts/fetch-models.sh")).output().expect("run fetch-models.sh");
    assert!(out.status.success(), "fetch-models.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs a python judge script from tests/judges and parses its JSON output. A missing
/// python or package is a failure: CI installs them (scripts/judges-requirements.txt).
pub fn judge(script: &str, args: &[&Path]) -> Value {
    let out = Command::new("python3")
        .arg(root().join("tests/judges").join(script))
        .args(args)
        .output()
        .expect("python3 is required for the judge tests (see scripts/test.sh)");
    assert!(
        out.status.success(),
        "judge {script} failed (pip install -r scripts/judges-requirements.txt?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("judge printed JSON")
}

/// gguf-py's type names for our metadata values, outermost first, like `GGUFReader` fields.
pub fn gguf_py_types(v: &MetaValue) -> Vec<String> {
    fn scalar(t: llmtool_formats::ValueType) -> &'static str {
        use llmtool_formats::ValueType::*;
        match t {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }
    let mut out = vec![scalar(v.value_type()).to_string()];
    let mut cur = v.as_array();
    while let Some(a) = cur {
        out.push(scalar(a.element_type()).to_string());
        cur = match a {
            MetaArray::Array(items) => items.first(),
            _ => None,
        };
        if matches!(a, MetaArray::Array(items) if items.is_empty()) {
            break;
        }
    }
    out
}

/// Asserts that gguf-py reads `path` exactly as our reader does: every key (order, types,
/// values) and every tensor (name, type, shape, offset, bytes).
pub fn assert_gguf_py_agrees(path: &Path) {
    let ours = llmtool_formats::gguf::GgufFile::open(path).expect("our reader opens it");
    let theirs = judge("gguf_dump.py", &[path]);
    assert_eq!(theirs["version"], json!(ours.version));
    let their_md = theirs["metadata"].as_array().unwrap();
    assert_eq!(their_md.len(), ours.metadata.len(), "key count");
    for (t, (key, value)) in their_md.iter().zip(ours.metadata.iter()) {
        assert_eq!(t["key"], json!(key));
        assert_eq!(t["types"], json!(gguf_py_types(value)), "types of {key}");
        assert_eq!(t["value"], value.to_json(), "value of {key}");
    }
    let their_t = theirs["tensors"].as_array().unwrap();
    assert_eq!(their_t.len(), ours.tensors.len());
    for (i, (t, info)) in their_t.iter().zip(&ours.tensors).enumerate() {
        assert_eq!(t["name"], json!(info.name));
        assert_eq!(t["type"], json!(info.ty.name()), "{}", info.name);
        assert_eq!(t["ne"], json!(info.ne), "{}", info.name);
        assert_eq!(t["offset"], json!(ours.data_start + ours.offsets[i]), "{}", info.name);
        let data = ours.tensor_data(&info.name).unwrap();
        assert_eq!(t["sha256"], json!(sha256_hex(data)), "bytes of {}", info.name);
    }
}

/// The `(tag, hash)` lines of a `sha256sum`-style fixture (`HASH  TAG`), e.g.
/// fixtures/llama_quantize/sha256.txt.
pub fn sha256_lines(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let (hash, tag) = l.split_once("  ").expect("sha256sum line");
            (tag.to_string(), hash.to_string())
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Metadata without the keys listed.
pub fn without(md: &Metadata, keys: &[&str]) -> Vec<(String, MetaValue)> {
    md.iter().filter(|(k, _)| !keys.contains(k)).map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// A fixture's config.json (fixtures/models/NAME).
pub fn config(name: &str) -> Value {
    let p = root().join("fixtures/models").join(name).join("config.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The GGUF metadata the architecture registry makes of an HF config.
pub fn to_md(cfg: &Value) -> Result<Metadata, llmtool::arch::ArchError> {
    let a = llmtool::arch::from_hf_config(cfg)?;
    let mut md = Metadata::new();
    a.config_to_metadata(cfg, &mut md)?;
    Ok(md)
}

/// Every fixture model directory under fixtures/models (fixtures/README.md): one per family,
/// plus the rope-scaling variants (llama31, phi35, phi4mini), Gemma 3's multimodal wrapper and
/// the Mixture-of-Experts families (mixtral, qwen2_moe, qwen3_moe).
pub const FIXTURE_MODELS: [&str; 16] = [
    "llama",
    "phi3",
    "gemma",
    "gemma2",
    "qwen2",
    "llama31",
    "phi35",
    "phi4mini",
    "qwen3",
    "gemma3",
    "gemma3_mm",
    "command_r",
    "cohere2",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
];

/// A copy of `src` with its metadata and tensors edited.
pub fn rewrite_gguf(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut Metadata, &mut Vec<(llmtool_formats::TensorInfo, Vec<u8>)>),
) {
    let f = llmtool_formats::gguf::GgufFile::open(src).unwrap();
    let mut md = f.metadata.clone();
    let mut tensors: Vec<(llmtool_formats::TensorInfo, Vec<u8>)> =
        f.tensor_infos().iter().map(|t| (t.clone(), f.tensor_data(&t.name).unwrap().to_vec())).collect();
    edit(&mut md, &mut tensors);
    let mut header = f.header();
    header.metadata = md;
    header.tensors = tensors.iter().map(|(t, _)| t.clone()).collect();
    let mut out = Vec::new();
    llmtool_formats::gguf::write_gguf(
        &mut out,
        &header,
        |i, _| Ok(std::borrow::Cow::Borrowed(&tensors[i].1[..])),
        |_| {},
    )
    .unwrap();
    std::fs::write(dst, out).unwrap();
}

/// `llmtool perplexity MODEL --ctx 64 --chunks 2 --json` plus `input` (e.g. `--text FILE`):
/// the JSON report.
pub fn perplexity_json(model: &Path, input: &[&str]) -> Value {
    let mut args =
        vec!["perplexity", model.to_str().expect("a UTF-8 path"), "--ctx", "64", "--chunks", "2", "--json", "--quiet"];
    args.extend(input);
    serde_json::from_slice(&llmtool_ok(&args).stdout).unwrap()
}

/// The perplexity of [`perplexity_json`], checked to be a finite value above 1.
pub fn perplexity(model: &Path, input: &[&str]) -> f64 {
    let v = perplexity_json(model, input);
    let ppl = v["ppl"].as_f64().unwrap_or_else(|| panic!("no ppl in {v}"));
    assert!(ppl.is_finite() && ppl > 1.0, "{ppl}");
    ppl
}
