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
