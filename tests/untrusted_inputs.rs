//! Issue 18, items 4 and 5: readers given a tiny file that claims a huge count fail with a
//! typed error before allocating for it; paths in recipes and merge configs are taken
//! literally (no shell, no `~` / `$VAR` / backtick expansion) and may point outside the
//! recipe's directory (read only; see SECURITY.md).

use std::path::{Path, PathBuf};

use llmtool::build::recipe::Loaded;
use llmtool::eval::BaseFile;
use llmtool::tokenizer::read_spm_pieces;
use llmtool_formats::imatrix::Imatrix;

fn i32s(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn legacy_imatrix_claiming_huge_counts_is_refused() {
    let p = Path::new("tiny.dat");
    // 2^31-1 entries, then a name length of 2^31-1, in 8 bytes.
    let e = Imatrix::from_legacy_bytes(&i32s(&[i32::MAX, i32::MAX]), p).unwrap_err().to_string();
    assert!(e.contains("does not fit the 0 bytes left"), "{e}");
    // One entry "x" claiming 2^31-1 values.
    let mut b = i32s(&[1, 1]);
    b.push(b'x');
    b.extend(i32s(&[1, i32::MAX]));
    let e = Imatrix::from_legacy_bytes(&b, p).unwrap_err().to_string();
    assert!(e.contains("value count of 'x' 2147483647 does not fit"), "{e}");
}

#[test]
fn logits_file_claiming_huge_sizes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("base.logits");
    let mut b = b"_logits_".to_vec();
    b.extend(i32s(&[i32::MAX, i32::MAX, i32::MAX]));
    std::fs::write(&p, &b).unwrap();
    let Err(e) = BaseFile::read(&p) else { panic!("opened") };
    let e = e.to_string();
    assert!(e.contains("file is 20 bytes, but n_ctx 2147483647"), "{e}");
}

#[test]
fn spm_model_claiming_a_huge_field_is_refused() {
    // Field 1, wire type 2, length 2^62 (a 9-byte varint), no payload.
    let b = [0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
    assert!(read_spm_pieces(&b).is_err());
}

fn recipe(dir: &Path, input: &str) -> PathBuf {
    let p = dir.join("r.yml");
    std::fs::write(
        &p,
        format!("inputs: {{m: '{input}'}}\nsteps:\n  - convert: {{outtype: f16}}\noutputs: {{gguf: out.gguf}}\n"),
    )
    .unwrap();
    p
}

#[test]
fn recipe_paths_are_literal_no_shell_expansion() {
    let dir = tempfile::tempdir().unwrap();
    for input in ["~/model.gguf", "$HOME/model.gguf", "${HOME}/model.gguf", "`touch pwned`", "$(touch pwned)", "*.gguf"]
    {
        let p = recipe(dir.path(), input);
        let Err(e) = Loaded::open(&p, |_| true) else { panic!("{input}: opened") };
        let e = e.to_string();
        // The error names the path as written, joined to the recipe's directory.
        let want = dir.path().join(input);
        assert!(e.contains(&format!("{}: no such file or directory", want.display())), "{input}: {e}");
    }
    assert!(!dir.path().join("pwned").exists() && !Path::new("pwned").exists(), "nothing ran a shell");
    // A file literally named like a shell word is just a file.
    std::fs::write(dir.path().join("$HOME"), b"").unwrap();
    let loaded = Loaded::open(&recipe(dir.path(), "$HOME"), |_| true).unwrap();
    assert_eq!(loaded.recipe.inputs["m"], dir.path().join("$HOME"));
}

#[test]
fn recipe_inputs_and_outputs_may_lie_outside_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let (recipes, models) = (root.path().join("recipes"), root.path().join("models"));
    std::fs::create_dir_all(&recipes).unwrap();
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("m.gguf"), b"").unwrap();
    let p = recipes.join("r.yml");
    std::fs::write(
        &p,
        "inputs: {m: ../models/m.gguf}\nsteps:\n  - convert: {outtype: f16}\noutputs: {gguf: ../dist/out.gguf}\n",
    )
    .unwrap();
    let loaded = Loaded::open(&p, |_| true).unwrap();
    // `..` is resolved (lexically, as SECURITY.md says) to the file outside the recipe's dir.
    assert_eq!(loaded.recipe.inputs["m"], models.join("m.gguf"));
    assert_eq!(loaded.recipe.outputs.gguf.as_deref(), Some(root.path().join("dist/out.gguf").as_path()));
    // Opening a recipe writes nothing: no cache, report or output directory yet.
    assert!(!root.path().join("dist").exists());
    assert!(!recipes.join(".llmtool-cache").exists());
}

#[test]
fn merge_config_paths_are_literal() {
    let cfg = llmtool::merge::config::MergeConfig::parse(
        "merge_method: linear\nmodels:\n  - model: $(touch pwned)\n    parameters: {weight: 1.0}\n  - model: ~/b\n    parameters: {weight: 1.0}\ndtype: float32\n",
        "m.yml",
    )
    .unwrap();
    let text = format!("{cfg:?}");
    assert!(text.contains("$(touch pwned)") && text.contains("~/b"), "{text}");
    assert!(!Path::new("pwned").exists());
}

/// fuzz/artifacts/hf_config/crash-d591a4d989f4c84639eb0d42a78fadffd24c7dbd: a Gemma 3
/// config.json claiming 604,033,224 layers made the per-layer sliding-window table allocate
/// 604 MB before anything else was checked. Now a typed error naming the key.
#[test]
fn fuzz_crash_d591a4d9_config_claiming_600m_layers_is_refused() {
    let cfg = serde_json::json!({
        "_sliding_window[pattern": 6,
        "architect": ["Gemma3ForCausalLM"],
        "atize": 128,
        "layer_typeq": ["sliding_attention", "sliding_attention", "slidzing_attention", "slidign_attention",
                        "sliding_attention", "full_attention"],
        "max_position_embeddgion_embeddings": 257,
        "model_type": "gemma3_text",
        "num_attention_heads": 4,
        "num_hidden_layers": 604033224,
        "num_kesgs": true,
        "vocab_size": 401
    });
    let arch = llmtool::arch::from_hf_config(&cfg).unwrap();
    let mut md = llmtool_formats::Metadata::new();
    let e = arch.config_to_metadata(&cfg, &mut md).unwrap_err().to_string();
    assert!(e.contains("num_hidden_layers") || e.contains("max_position_embeddings"), "{e}");
    // With every other key present, the layer count itself is what is refused.
    let mut ok = cfg.clone();
    for (k, v) in [("max_position_embeddings", 257), ("hidden_size", 64), ("intermediate_size", 128)] {
        ok[k] = v.into();
    }
    ok["rms_norm_eps"] = 1e-6.into();
    let e = arch.config_to_metadata(&ok, &mut md).unwrap_err().to_string();
    assert!(e.contains("num_hidden_layers") && e.contains("604033224 layers; at most 4096"), "{e}");
}

/// Every file under `dir` (recursively) with its bytes and modification time.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            out.insert(p.clone(), (std::fs::read(&p).unwrap(), m));
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// SECURITY.md, "Paths in recipes and configs": a full `llmtool build` whose every input
/// (model, adapter, validation text, task file) lies outside the recipe's directory reads
/// them and writes only what the recipe declares — its outputs (here outside its directory
/// too), its cache and its report — nothing beside the inputs, in the working directory or
/// left in `$TMPDIR`; and every input is unchanged, bytes and modification time.
#[test]
fn a_build_reading_inputs_outside_its_dir_writes_only_its_declared_outputs() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    copy_dir(&fixtures.join("models/llama"), &r.join("models/llama"));
    copy_dir(&fixtures.join("lora/llama_plain/adapter"), &r.join("adapters/plain"));
    std::fs::create_dir_all(r.join("data")).unwrap();
    let text: String = (0..400).map(|i| format!("The number {i} follows {}. ", i + 1)).collect();
    std::fs::write(r.join("data/text.txt"), text).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tasks/continuation.jsonl"),
        r.join("data/tasks.jsonl"),
    )
    .unwrap();
    for d in ["recipes", "work", "tmp"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    let recipe = r.join("recipes/r.yml");
    std::fs::write(
        &recipe,
        "inputs: {m: ../models/llama}\n\
         steps:\n  - convert: {outtype: f16}\n  - lora: {adapter: ../adapters/plain}\n  - quantize: {type: Q8_0}\n\
         outputs: {gguf: ../dist/out.gguf, ollama: {dir: ../dist/ollama}}\n\
         validate: {text: ../data/text.txt, chunks: 2, ctx: 64, tasks: [../data/tasks.jsonl]}\n",
    )
    .unwrap();
    let before = snapshot(r);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmtool"))
        .args(["build", recipe.to_str().unwrap(), "-q"])
        .current_dir(r.join("work"))
        .env("TMPDIR", r.join("tmp"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = snapshot(r);
    // Inputs (and the recipe) untouched.
    for (p, (bytes, mtime)) in &before {
        let (b, m) = after.get(p).unwrap_or_else(|| panic!("{} was removed", p.display()));
        assert!(b == bytes && m == mtime, "{} was modified", p.display());
    }
    // Everything new is under a declared output, the cache or the report (both defaults:
    // beside the recipe).
    let allowed = [
        r.join("dist/out.gguf"),
        r.join("dist/ollama"),
        r.join("recipes/.llmtool-cache"),
        r.join("recipes/build-report"),
    ];
    let new: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    for p in &new {
        assert!(allowed.iter().any(|a| p.starts_with(a)), "llmtool build wrote {}", p.display());
    }
    // …and each declared place was written.
    for a in &allowed {
        assert!(new.iter().any(|p| p.starts_with(a)), "nothing under {}", a.display());
    }
    assert_eq!(std::fs::read_dir(r.join("work")).unwrap().count(), 0, "wrote into the working directory");
    assert_eq!(std::fs::read_dir(r.join("tmp")).unwrap().count(), 0, "left files in $TMPDIR");
    llmtool_formats::gguf::GgufFile::open(r.join("dist/out.gguf")).unwrap();
}

/// `rank_pattern` / `alpha_pattern` keys that are module names are matched without a regex
/// engine (tests/alloc_bounds.rs: 62,500 compiled keys held 688 MB); they must match exactly
/// what PEFT's `re.match(rf"(.*\.)?({key})$", module)` does.
#[test]
fn peft_name_patterns_match_as_the_regex_would() {
    use llmtool::passes::lora::peft::ScalingRules;
    let keys = ["q_proj", "self_attn.q_proj", "layers.1.self_attn.q_proj", "layers.1", "a.c", "", "proj", "-x", "ü.q"];
    let modules = [
        "model.layers.1.self_attn.q_proj",
        "model.layers.11.self_attn.q_proj",
        "q_proj",
        "xq_proj",
        "model.layers.1",
        "abc",
        "a.c",
        "x.abc",
        "x.",
        "",
        "ü.q",
        "ü\nq",
        "a\n.q_proj",
        "m.-x",
    ];
    for key in keys {
        let cfg = serde_json::json!({"peft_type": "LORA", "r": 8, "lora_alpha": 8, "rank_pattern": {key: 2}});
        let rules = ScalingRules::from_config(Path::new("adapter_config.json"), &cfg).unwrap();
        let re = regex::Regex::new(&format!(r"^(?:.*\.)?(?:{key})$")).unwrap();
        for m in modules {
            assert_eq!(rules.for_module(m).0 == 2, re.is_match(m), "key {key:?}, module {m:?}");
        }
    }
    // A key that is a regular expression still works as one, and its size is bounded.
    let cfg = serde_json::json!({"peft_type": "LORA", "r": 8, "lora_alpha": 8, "rank_pattern": {"layers\\.[0-3]\\..*_proj": 2}});
    let rules = ScalingRules::from_config(Path::new("a.json"), &cfg).unwrap();
    assert_eq!(rules.for_module("model.layers.2.mlp.up_proj").0, 2);
    assert_eq!(rules.for_module("model.layers.4.mlp.up_proj").0, 8);
    let cfg = serde_json::json!({"peft_type": "LORA", "r": 8, "lora_alpha": 8, "rank_pattern": {"x{100000}": 2}});
    let e = ScalingRules::from_config(Path::new("a.json"), &cfg).unwrap_err().to_string();
    assert!(e.contains("rank_pattern.x{100000}") && e.contains("size limit"), "{e}");
}

/// fuzz/artifacts/gguf_reader/oom-608fffb335ffda063fb0d6d7f04c4a49f8ec4f9e (gguf_reader, 10-min
/// run): a 61-byte GGUF with no tensors and `general.alignment` = 2^31 opened, and writing it
/// back padded the header to 2^31 bytes (2 GiB). ggml checks only for a power of two; we
/// also cap it at 2^20.
#[test]
fn fuzz_oom_608fffb3_gguf_alignment_2_31_is_refused() {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes()); // keys
    b.extend(17u64.to_le_bytes());
    b.extend(b"general.alignment");
    b.extend(4u32.to_le_bytes()); // u32
    b.extend((1u32 << 31).to_le_bytes());
    b.extend(b"\0\0\0a"); // trailing bytes, as in the artifact
    assert_eq!(b.len(), 61);
    let e = llmtool_formats::gguf::GgufFile::from_vec(b.clone(), "a.gguf").unwrap_err().to_string();
    assert!(e.contains("alignment 2147483648 is not a non-zero power of two of at most 2^20"), "{e}");
    // 2^20 itself is still a valid alignment.
    b[53..57].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let f = llmtool_formats::gguf::GgufFile::from_vec(b, "a.gguf").unwrap();
    assert_eq!(f.alignment, 1 << 20);
}

/// fuzz/artifacts/safetensors_reader/crash-1b5ef704faf7c3ed88733e46c997dd5a82e4f0d9
/// (safetensors_reader, 10-min run): a tensor entry repeating `shape` (and `dtype`) was
/// read by us with its last values and refused by the upstream crate ("duplicate field
/// `shape`"): two readers, two meanings. Now refused by both.
#[test]
fn fuzz_crash_1b5ef704_safetensors_entry_repeating_a_field_is_refused() {
    use llmtool_formats::safetensors::{upstream, SafetensorsSet};
    let header = r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"e":{"dtype":"F16","shape":[0,4],"dtype":"I8","shape":[3],"data_offsets":[24,27]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.extend([0u8; 27]);
    assert!(upstream::SafeTensors::deserialize(&b).is_err());
    let Err(e) = SafetensorsSet::from_bytes(b) else { panic!("accepted") };
    assert!(e.to_string().contains("tensor 'e'") && e.to_string().contains("duplicate field 'dtype'"), "{e}");
    // A repeated key inside __metadata__ is a plain map entry, for upstream as for us.
    let header =
        r#"{"__metadata__":{"format":"pt","format":"np"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.push(7);
    assert!(upstream::SafeTensors::deserialize(&b).is_ok());
    SafetensorsSet::from_bytes(b).unwrap();
}
