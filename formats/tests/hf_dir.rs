//! HF directories written and read back; JSON files byte-identical to what Python's json
//! module (transformers) and the tokenizers library write.

use std::borrow::Cow;
use std::fs;
use std::process::Command;

use llmtool_formats::atomic::AtomicDir;
use llmtool_formats::hf::{python_float_repr, to_python_json, write_hf_files, HfDir, HfFiles};
use llmtool_formats::safetensors::{write_sharded, Dtype, StTensor};
use serde_json::{json, Value};

fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 is required for the HF judges: {e}"));
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn py_json_judge() -> String {
    format!("{}/tests/judges/py_json.py", env!("CARGO_MANIFEST_DIR"))
}

fn tricky() -> Value {
    json!({
        "rms_norm_eps": 1e-05, "layer_norm_eps": 1e-06, "rope_theta": 10000.0,
        "initializer_range": 0.02, "big": 1e16, "just_below": 1e15, "huge": 1.2345678901234568e+17,
        "sum": 0.30000000000000004, "neg_zero": -0.0, "tiny": 5e-324, "max": 1.7976931348623157e308,
        "e4": 0.0001, "e5ish": 0.00012345, "small_exp": 2.5e-7, "hundred": 100.0, "neg": -3.5e-10,
        "ints": [0, -1, 9223372036854775807u64, 18446744073709551615u64, -9223372036854775808i64],
        "text": "héllo 日本 🦙 \u{1} \u{7f} \t\n\"\\ </s> <|im_start|>",
        "nested": {"b": [], "a": {}, "z": [[], {}, [1, [2, {"y": null, "x": true}]]], "B": false},
        "é": 1, "_": 2, "Z": 3, "a": 4,
        "empty_str": "",
    })
}

#[test]
fn python_json_dumps_reproduced_on_tricky_values() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in.json");
    fs::write(&src, serde_json::to_string(&tricky()).unwrap()).unwrap();
    for (sort, ascii) in [(true, true), (true, false), (false, true), (false, false)] {
        let theirs = python(&[
            &py_json_judge(),
            src.to_str().unwrap(),
            if sort { "1" } else { "0" },
            if ascii { "1" } else { "0" },
        ]);
        let ours = to_python_json(&tricky(), sort, ascii) + "\n";
        assert_eq!(ours, theirs, "sort_keys={sort} ensure_ascii={ascii}");
    }
}

#[test]
fn float_repr_matches_python_on_many_values() {
    // A spread of magnitudes and digit counts, compared with repr() one by one.
    let mut xs = vec![0.0, 1.0, -2.0, 0.1, 1e22, 1e-7, 123.456, 9_999_999_999_999_998.0, 1e16 - 2.0, 1e-4, 9.9e-5];
    let mut s = 0x1234_5678_9abc_def0u64;
    for i in 0..300 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let mant = (s >> 11) as f64 / (1u64 << 53) as f64;
        xs.push(mant * 10f64.powi(i % 50 - 25));
        // Near 2^49 doubles are k/8: many shortest decimals tie (Python rounds ties to even).
        xs.push(((s >> 15) as f64) + [0.125, 0.25, 0.375, 0.625][i as usize % 4]);
        xs.push(f64::from_bits(s >> 2)); // arbitrary bit patterns (finite: top bits clear)
    }
    let code = "import json,sys\nfor x in json.load(sys.stdin): print(repr(x))";
    let mut child = Command::new("python3")
        .args(["-c", code])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(serde_json::to_string(&xs).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let theirs: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    let ours: Vec<String> = xs.iter().map(|&x| python_float_repr(x)).collect();
    assert_eq!(ours, theirs);
}

fn sample_files() -> HfFiles {
    HfFiles {
        config: json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
            "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "torch_dtype": "bfloat16",
            "num_attention_heads": 4, "tie_word_embeddings": true, "rope_scaling": null
        }),
        generation_config: Some(json!({"bos_token_id": 1, "eos_token_id": [2, 3], "temperature": 0.6})),
        tokenizer_json: None,
        tokenizer_config: Some(json!({
            "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% endfor %}",
            "added_tokens_decoder": {"0": {"content": "<|endoftext|>", "special": true}},
            "model_max_length": 8192, "name": "naïve ✓"
        })),
        special_tokens_map: Some(json!({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})),
    }
}

#[test]
fn write_dir_and_read_back() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("out-model");
    let out = AtomicDir::create(&target, false).unwrap();
    let files = sample_files();
    write_hf_files(out.path(), &files).unwrap();
    let tensors = vec![
        StTensor::new("model.embed_tokens.weight", Dtype::BF16, vec![8, 4]),
        StTensor::new("model.norm.weight", Dtype::F32, vec![4]),
    ];
    let data = [vec![1u8; 64], vec![2u8; 16]];
    write_sharded(out.path(), &tensors, None, Some(64), |i, _| Ok(Cow::Borrowed(&data[i][..])), |_| {}).unwrap();
    fs::write(out.path().join("chat_template.jinja"), "{{ x }}").unwrap();
    fs::write(out.path().join("pytorch_model.bin"), "not copied").unwrap();
    fs::write(out.path().join(".hidden"), "not copied").unwrap();
    out.commit().unwrap();

    let hf = HfDir::open(&target).unwrap();
    assert_eq!(hf.files(), files);
    assert_eq!(hf.weights.tensors(), &tensors[..]);
    assert_eq!(hf.weights.shards().len(), 2);
    assert_eq!(hf.weights.tensor_data("model.norm.weight").unwrap(), &data[1][..]);
    assert_eq!(hf.extra_files, vec![target.join("chat_template.jinja")]);
    let inputs = hf.input_files();
    assert!(inputs.contains(&target.join("model.safetensors.index.json")));
    assert!(inputs.contains(&target.join("config.json")));

    // config.json / generation_config.json are json.dumps(indent=2, sort_keys=True) + "\n";
    // tokenizer_config.json / special_tokens_map.json the same with ensure_ascii=False.
    for (name, ascii) in [
        ("config.json", "1"),
        ("generation_config.json", "1"),
        ("tokenizer_config.json", "0"),
        ("special_tokens_map.json", "0"),
    ] {
        let p = target.join(name);
        let theirs = python(&[&py_json_judge(), p.to_str().unwrap(), "1", ascii]);
        assert_eq!(fs::read_to_string(&p).unwrap(), theirs, "{name}");
    }
}

#[test]
fn config_written_like_transformers_save_pretrained() {
    // transformers itself writes the config; ours must be byte-identical.
    let d = tempfile::tempdir().unwrap();
    let code = format!(
        "from transformers import LlamaConfig\n\
         c = LlamaConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2, \
         vocab_size=100, rms_norm_eps=1e-06, rope_theta=500000.0)\n\
         c.save_pretrained({:?})",
        d.path().join("hf").to_str().unwrap()
    );
    python(&["-c", &code]);
    let src = d.path().join("hf").join("config.json");
    let config: Value = serde_json::from_slice(&fs::read(&src).unwrap()).unwrap();
    let out = d.path().join("ours");
    fs::create_dir(&out).unwrap();
    let files = HfFiles {
        config,
        generation_config: None,
        tokenizer_json: None,
        tokenizer_config: None,
        special_tokens_map: None,
    };
    write_hf_files(&out, &files).unwrap();
    assert_eq!(fs::read_to_string(out.join("config.json")).unwrap(), fs::read_to_string(&src).unwrap());
}

#[test]
fn tokenizer_json_written_like_tokenizers_library() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("tokenizer.json");
    let code = format!(
        "from tokenizers import Tokenizer, models, pre_tokenizers, decoders\n\
         vocab = {{'a': 0, 'b': 1, 'ab': 2, 'é': 3, '日本': 4, '<|end|>': 5, '\\u0120x': 6}}\n\
         t = Tokenizer(models.BPE(vocab, [('a', 'b')], unk_token=None))\n\
         t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)\n\
         t.decoder = decoders.ByteLevel()\n\
         t.add_special_tokens(['<|end|>'])\n\
         t.save({:?})",
        src.to_str().unwrap()
    );
    python(&["-c", &code]);
    let value: Value = serde_json::from_slice(&fs::read(&src).unwrap()).unwrap();
    let out = d.path().join("out");
    fs::create_dir(&out).unwrap();
    let files = HfFiles {
        config: json!({}),
        generation_config: None,
        tokenizer_json: Some(value),
        tokenizer_config: None,
        special_tokens_map: None,
    };
    write_hf_files(&out, &files).unwrap();
    assert_eq!(fs::read_to_string(out.join("tokenizer.json")).unwrap(), fs::read_to_string(&src).unwrap());
}

#[test]
fn extra_files_rule() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    fs::write(p.join("config.json"), "{}").unwrap();
    let t = vec![StTensor::new("w", Dtype::U8, vec![1])];
    write_sharded(p, &t, None, None, |_, _| Ok(Cow::Owned(vec![0])), |_| {}).unwrap();
    for n in ["README.md", "LICENSE", "tokenizer.model", "merges.txt", "vocab.json", "chat_template.jinja"] {
        fs::write(p.join(n), "x").unwrap();
    }
    for n in [".gitattributes", "model.gguf", "pytorch_model.bin", "other.safetensors.index.json"] {
        fs::write(p.join(n), "x").unwrap();
    }
    fs::create_dir(p.join("subdir")).unwrap();
    let big = fs::File::create(p.join("huge.txt")).unwrap();
    big.set_len(llmtool_formats::hf::MAX_EXTRA_FILE_BYTES + 1).unwrap();
    let hf = HfDir::open(p).unwrap();
    let names: Vec<String> =
        hf.extra_files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["LICENSE", "README.md", "chat_template.jinja", "merges.txt", "tokenizer.model", "vocab.json"]);
}

/// A tiny model saved by transformers (sharded; tests/data/hf_tiny, made by
/// tests/data/gen_hf_tiny.py) is read, written back by us (same shard size), and ours holds the
/// same model: transformers' AutoConfig derives the same config, and the `safetensors`
/// package reads the same tensors byte for byte (tests/judges/hf_compare.py, no torch).
#[test]
fn transformers_sharded_model_roundtrip() {
    let d = tempfile::tempdir().unwrap();
    let judge = format!("{}/tests/judges/hf_compare.py", env!("CARGO_MANIFEST_DIR"));
    let src = std::path::PathBuf::from(format!("{}/tests/data/hf_tiny", env!("CARGO_MANIFEST_DIR")));
    let hf = HfDir::open(&src).unwrap();
    assert!(hf.weights.index_path().is_some(), "transformers wrote a sharded set");
    assert!(hf.weights.shards().len() > 1);

    // Every tensor as the safetensors package reads it.
    let index = src.join("model.safetensors.index.json");
    let st_read = format!("{}/tests/judges/st_read.py", env!("CARGO_MANIFEST_DIR"));
    let dump: Value = serde_json::from_str(&python(&[&st_read, index.to_str().unwrap()])).unwrap();
    let jt = dump["tensors"].as_object().unwrap();
    assert_eq!(jt.len(), hf.weights.tensors().len());
    for t in hf.weights.tensors() {
        let j = &jt[&t.name];
        assert_eq!(j["dtype"], t.dtype.to_string());
        let hex: String = hf.weights.tensor_data(&t.name).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(j["hex"], hex, "{}", t.name);
    }

    let target = d.path().join("ours");
    let out = AtomicDir::create(&target, false).unwrap();
    write_hf_files(out.path(), &hf.files()).unwrap();
    let w = &hf.weights;
    write_sharded(
        out.path(),
        w.tensors(),
        Some(w.metadata()),
        Some(20_000),
        |_, t| Ok(Cow::Borrowed(w.tensor_data(&t.name).unwrap())),
        |_| {},
    )
    .unwrap();
    out.commit().unwrap();
    // Same config bytes as transformers wrote.
    for f in ["config.json", "generation_config.json"] {
        assert_eq!(fs::read(target.join(f)).unwrap(), fs::read(src.join(f)).unwrap(), "{f}");
    }
    let res = python(&[&judge, src.to_str().unwrap(), target.to_str().unwrap()]);
    assert_eq!(res.trim(), format!("same {}", w.tensors().len()));
}
