//! The llama mapping against a real file written by llama.cpp's converter: the
//! SmolLM2-135M-Instruct GGUF (fetched by scripts/fetch-models.sh), read with gguf-py's
//! GGUFReader (tests/judges/gguf_metadata.py). The HF side is SmolLM2-135M-Instruct's
//! published config.json.

mod common;

use std::path::PathBuf;
use std::process::Command;

use llmtool::arch::{self, apply_fix, TensorFix};
use llmtool_formats::{GgmlType, MetaValue, Metadata, TensorInfo};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// HuggingFaceTB/SmolLM2-135M-Instruct config.json as published.
fn smollm2_config() -> Value {
    json!({
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": false,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 576,
        "initializer_range": 0.041666666666666664,
        "intermediate_size": 1536,
        "is_llama_config": true,
        "max_position_embeddings": 8192,
        "model_type": "llama",
        "num_attention_heads": 9,
        "num_hidden_layers": 30,
        "num_key_value_heads": 3,
        "pad_token_id": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_interleaved": false,
        "rope_scaling": null,
        "rope_theta": 100000,
        "tie_word_embeddings": true,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.42.3",
        "use_cache": true,
        "vocab_size": 49152
    })
}

struct Real {
    /// (key, gguf-py type name, value)
    kv: Vec<(String, String, Value)>,
    tensors: Vec<TensorInfo>,
}

/// The key-values `(key, type, value)` and tensor infos printed by gguf_metadata.py.
#[allow(clippy::type_complexity)]
fn parse_gguf_metadata(stdout: &[u8]) -> (Vec<(String, String, Value)>, Vec<TensorInfo>) {
    let j: Value = serde_json::from_slice(stdout).unwrap();
    let kv = j["kv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_str().unwrap().to_string(), e[2].clone()))
        .collect();
    let tensors = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let ty = GgmlType::from_name(t[1].as_str().unwrap()).unwrap();
            let ne = t[2].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            TensorInfo::new(t[0].as_str().unwrap(), ty, ne)
        })
        .collect();
    (kv, tensors)
}

fn real_gguf() -> Real {
    let fetch = Command::new("bash").arg(root().join("scripts/fetch-models.sh")).output().expect("run fetch-models.sh");
    assert!(fetch.status.success(), "fetch-models.sh failed: {}", String::from_utf8_lossy(&fetch.stderr));
    let path = String::from_utf8(fetch.stdout).unwrap().trim().to_string();
    let ok = Command::new("python3").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "python3 (with the gguf package) is required for this judge test");
    let out = Command::new("python3").arg(root().join("tests/judges/gguf_metadata.py")).arg(&path).output().unwrap();
    assert!(out.status.success(), "gguf_metadata.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let (kv, tensors) = parse_gguf_metadata(&out.stdout);
    Real { kv, tensors }
}

fn type_name(v: &MetaValue) -> &'static str {
    match v {
        MetaValue::U32(_) => "UINT32",
        MetaValue::F32(_) => "FLOAT32",
        MetaValue::String(_) => "STRING",
        MetaValue::Bool(_) => "BOOL",
        _ => "OTHER",
    }
}

#[test]
fn config_to_metadata_matches_llama_cpp_keys_types_order_values() {
    let real = real_gguf();
    let cfg = smollm2_config();
    let a = arch::from_hf_config(&cfg).unwrap();
    let mut md = Metadata::new();
    a.config_to_metadata(&cfg, &mut md).unwrap();
    let ours: Vec<(&str, &MetaValue)> = md.iter().filter(|(k, _)| k.starts_with("llama.")).collect();
    let theirs: Vec<&(String, String, Value)> = real.kv.iter().filter(|(k, _, _)| k.starts_with("llama.")).collect();
    let ours_keys: Vec<&str> = ours.iter().map(|(k, _)| *k).collect();
    let their_keys: Vec<&str> = theirs.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(ours_keys, their_keys, "llama.* keys and their order");
    for ((k, v), (_, t, tv)) in ours.iter().zip(&theirs) {
        assert_eq!(type_name(v), t, "type of {k}");
        match v {
            MetaValue::U32(x) => assert_eq!(Some(*x as u64), tv.as_u64(), "{k}"),
            MetaValue::F32(x) => assert_eq!(*x, tv.as_f64().unwrap() as f32, "{k}"),
            other => panic!("unexpected {k} = {other:?}"),
        }
    }
    // general.architecture and general.type come first, as in the file
    let first: Vec<&str> = md.keys().take(2).collect();
    assert_eq!(first, [real.kv[0].0.as_str(), real.kv[1].0.as_str()]);
    assert_eq!(md.get_str("general.type"), real.kv[1].2.as_str());
}

#[test]
fn metadata_to_config_gives_back_the_published_config() {
    let real = real_gguf();
    let mut md = Metadata::new();
    for (k, t, v) in &real.kv {
        let mv = match t.as_str() {
            "STRING" => MetaValue::String(v.as_str().unwrap().into()),
            "UINT32" => MetaValue::U32(v.as_u64().unwrap() as u32),
            "FLOAT32" => MetaValue::F32(v.as_f64().unwrap() as f32),
            "BOOL" => MetaValue::Bool(v.as_bool().unwrap()),
            _ => continue, // arrays are the tokenizer's business
        };
        md.insert(k.clone(), mv);
    }
    let a = arch::from_gguf_metadata(&md).unwrap();
    let back = a.metadata_to_config(&md, &real.tensors, "bfloat16").unwrap();
    let cfg = smollm2_config();
    for key in [
        "architectures",
        "model_type",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "tie_word_embeddings",
        "torch_dtype",
        "vocab_size",
        "hidden_act",
        "attention_bias",
    ] {
        assert_eq!(back[key], cfg[key], "{key}");
    }
    assert_eq!(back["rms_norm_eps"].as_f64(), Some(1e-5));
    assert_eq!(back["rope_theta"].as_f64(), Some(100000.0));
    assert_eq!(back["head_dim"], 64);
}

#[test]
fn every_real_tensor_name_round_trips_with_the_right_permutation() {
    let real = real_gguf();
    let cfg = smollm2_config();
    let a = arch::from_hf_config(&cfg).unwrap();
    let mut md = Metadata::new();
    a.config_to_metadata(&cfg, &mut md).unwrap();
    assert_eq!(real.tensors.len(), 272);
    for t in &real.tensors {
        let hf = a.gguf_to_hf_tensor(&t.name, &md).unwrap();
        let expected_fix = if t.name.ends_with("attn_q.weight") {
            TensorFix::UnpermuteQk { n_head: 9 }
        } else if t.name.ends_with("attn_k.weight") {
            TensorFix::UnpermuteQk { n_head: 3 }
        } else {
            TensorFix::Copy
        };
        assert_eq!(hf.fix, expected_fix, "{}", t.name);
        let g = a.hf_to_gguf_tensor(&hf.name, &cfg).unwrap().unwrap();
        assert_eq!(g.name, t.name);
        assert_eq!(g.fix, expected_fix.inverse());
        // quantized rows permute whole: unpermute then permute is the identity on real geometry
        if expected_fix != TensorFix::Copy {
            let n = t.n_bytes().unwrap() as usize;
            let bytes: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let (_, u) = apply_fix(&hf.fix, t, &bytes).unwrap();
            assert_ne!(u, bytes);
            let (_, p) = apply_fix(&g.fix, t, &u).unwrap();
            assert!(p == bytes, "{}", t.name);
        }
    }
    // tied: no output.weight in the file, so lm_head is dropped from the HF side
    assert!(!real.tensors.iter().any(|t| t.name == "output.weight"));
    assert_eq!(a.hf_to_gguf_tensor("lm_head.weight", &cfg).unwrap(), None);
}

/// A fixture converted by llama.cpp's own convert_hf_to_gguf.py (fixtures/llama_cpp/, made by
/// fixtures/gen_llama_cpp_reference.py) read back with gguf-py: metadata and tensor data.
struct Reference {
    kv: Vec<(String, String, Value)>,
    tensors: Vec<TensorInfo>,
    data: Vec<u8>,
}

fn reference(arch: &str, dir: &std::path::Path) -> Reference {
    let gguf = root().join("fixtures/llama_cpp").join(format!("{arch}.gguf"));
    let st = dir.join(format!("{arch}.safetensors"));
    let ok = Command::new("python3").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "python3 (with the gguf, numpy and safetensors packages) is required for this judge test");
    let out =
        Command::new("python3").arg(root().join("tests/judges/gguf_metadata.py")).arg(&gguf).arg(&st).output().unwrap();
    assert!(out.status.success(), "gguf_metadata.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let (kv, tensors) = parse_gguf_metadata(&out.stdout);
    Reference { kv, tensors, data: std::fs::read(st).unwrap() }
}

#[test]
fn fixture_conversion_matches_llama_cpp_converter_output() {
    use safetensors::SafeTensors;
    let tmp = tempfile::tempdir().unwrap();
    // llama31: llama3 rope (rope_freqs.weight); phi35 / phi4mini: longrope (+ partial rotary)
    // gemma3_mm: Gemma3ForConditionalGeneration, whose text tower is a gemma3 model
    for name in common::FIXTURE_MODELS {
        let dir = root().join("fixtures/models").join(name);
        let cfg: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let a = arch::from_hf_config(&cfg).unwrap();
        let r = reference(name, tmp.path());

        // metadata: general.architecture/type, then the <arch>.* keys in order, types, values
        let mut md = Metadata::new();
        a.config_to_metadata(&cfg, &mut md).unwrap();
        let gguf_arch = a.gguf_arch();
        assert_eq!(
            md.get_str("general.architecture"),
            r.kv.iter().find(|k| k.0 == "general.architecture").unwrap().2.as_str()
        );
        assert_eq!(md.get_str("general.type"), r.kv.iter().find(|k| k.0 == "general.type").unwrap().2.as_str());
        let prefix = format!("{gguf_arch}.");
        let ours: Vec<(&str, &MetaValue)> = md.iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
        let theirs: Vec<_> = r.kv.iter().filter(|(k, _, _)| k.starts_with(&prefix)).collect();
        assert_eq!(
            ours.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            theirs.iter().map(|(k, _, _)| k.as_str()).collect::<Vec<_>>(),
            "{name}: keys and order"
        );
        for ((k, v), (_, t, tv)) in ours.iter().zip(&theirs) {
            assert_eq!(type_name(v), t, "{name}: type of {k}");
            match v {
                MetaValue::U32(x) => assert_eq!(Some(*x as u64), tv.as_u64(), "{k}"),
                MetaValue::F32(x) => assert_eq!(*x, tv.as_f64().unwrap() as f32, "{k}"),
                MetaValue::String(x) => assert_eq!(Some(x.as_str()), tv.as_str(), "{k}"),
                other => panic!("unexpected {k} = {other:?}"),
            }
        }

        // tensors: same names, shapes, types and bytes after our fixes
        let hf_bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let hf = SafeTensors::deserialize(&hf_bytes).unwrap();
        let refdata = SafeTensors::deserialize(&r.data).unwrap();
        let mut produced = Vec::new();
        // Mixture of Experts: each stacked tensor's experts (index, shape, bytes)
        type Expert = (u32, Vec<u64>, Vec<u8>);
        let mut stacks: std::collections::BTreeMap<String, Vec<Expert>> = Default::default();
        for (hf_name, view) in hf.tensors() {
            let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
            let info = TensorInfo::from_shape(hf_name.clone(), GgmlType::F32, &shape);
            if let Some(sl) = a.hf_expert_slice(&hf_name, &cfg).unwrap() {
                stacks.entry(sl.gguf).or_default().push((sl.index, info.ne.clone(), view.data().to_vec()));
                continue;
            }
            let Some(map) = a.hf_to_gguf_tensor(&hf_name, &cfg).unwrap() else {
                continue;
            };
            let (out_info, out) = apply_fix(&map.fix, &info, view.data()).unwrap();
            let want = r.tensors.iter().find(|t| t.name == map.name);
            let want = want.unwrap_or_else(|| panic!("{name}: llama.cpp wrote no {} (from {hf_name})", map.name));
            assert_eq!((&out_info.ne, out_info.ty), (&want.ne, want.ty), "{name}: {}", map.name);
            assert!(
                out == refdata.tensor(&map.name).unwrap().data(),
                "{name}: bytes of {} differ from llama.cpp's",
                map.name
            );
            produced.push(map.name);
        }
        for (gguf, mut experts) in stacks {
            experts.sort_by_key(|e| e.0);
            let mut ne = experts[0].1.clone();
            ne.push(experts.len() as u64);
            let want = r.tensors.iter().find(|t| t.name == gguf);
            let want = want.unwrap_or_else(|| panic!("{name}: llama.cpp wrote no {gguf}"));
            assert_eq!((&ne, GgmlType::F32), (&want.ne, want.ty), "{name}: {gguf}");
            let bytes: Vec<u8> = experts.into_iter().flat_map(|e| e.2).collect();
            assert!(bytes == refdata.tensor(&gguf).unwrap().data(), "{name}: bytes of {gguf} differ from llama.cpp's");
            produced.push(gguf);
        }
        // tensors computed from config.json (rope factors): F32, the converter's bytes
        for (ename, values) in a.extra_tensors(&cfg).unwrap() {
            let want = r.tensors.iter().find(|t| t.name == ename);
            let want = want.unwrap_or_else(|| panic!("{name}: llama.cpp wrote no {ename}"));
            assert_eq!((&want.ne, want.ty), (&vec![values.len() as u64], GgmlType::F32), "{name}: {ename}");
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert!(
                bytes == refdata.tensor(&ename).unwrap().data(),
                "{name}: bytes of {ename} differ from llama.cpp's"
            );
            produced.push(ename);
        }
        produced.sort();
        let mut expected: Vec<String> = r.tensors.iter().map(|t| t.name.clone()).collect();
        expected.sort();
        assert_eq!(produced, expected, "{name}: tensor set");
    }
}
