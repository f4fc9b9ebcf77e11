//! End-to-end `llmtool merge` on variants of the tiny llama fixture (tensors perturbed by a
//! seeded generator, written with the `safetensors` crate): every expected value is computed
//! here in f64 from the input files, independently of the merge code — mergekit's linear
//! formula, its gradient interpolation (`config.evaluate_setting`) and filters, and its
//! passthrough slices.

mod common;

use std::path::{Path, PathBuf};

use common::variant::{read_st_f32 as read_st, write_st_f32 as write_st, TensorsF32 as Tensors};
use common::*;
use llmtool::merge::config::MergeConfig;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fixture() -> PathBuf {
    root().join("fixtures/models/llama")
}

/// xorshift64*: a small seeded generator, values in [-0.5, 0.5).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
}

/// A variant of the llama fixture with `n_layers` layers (layer i from fixture layer i % 2),
/// every value perturbed by the generator seeded with `seed`.
fn variant(dir: &Path, name: &str, n_layers: usize, seed: u64) -> PathBuf {
    variant_of(&fixture(), dir, name, n_layers, seed)
}

fn variant_of(src: &Path, dir: &Path, name: &str, n_layers: usize, seed: u64) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(src.join(f), out.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["num_hidden_layers"] = n_layers.into();
    // Per-layer lists (gemma2, qwen2, cohere2 `layer_types`) follow the layer count.
    if let Some(t) = config.get("layer_types").and_then(|v| v.as_array()).filter(|t| !t.is_empty()).cloned() {
        config["layer_types"] = (0..n_layers).map(|i| t[i % t.len()].clone()).collect::<Vec<_>>().into();
    }
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let base = read_st(&src.join("model.safetensors"));
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut tensors = Tensors::new();
    for (n, (shape, data)) in &base {
        let perturb = |d: &Vec<f32>, rng: &mut Rng| d.iter().map(|x| x + 0.1 * rng.next()).collect::<Vec<f32>>();
        if let Some(rest) = n.strip_prefix("model.layers.") {
            let (l, tail) = rest.split_once('.').unwrap();
            if l != "0" && l != "1" {
                continue;
            }
            for i in (0..n_layers).filter(|i| i % 2 == l.parse::<usize>().unwrap()) {
                tensors.insert(format!("model.layers.{i}.{tail}"), (shape.clone(), perturb(data, &mut rng)));
            }
        } else {
            tensors.insert(n.clone(), (shape.clone(), perturb(data, &mut rng)));
        }
    }
    write_st(&out.join("model.safetensors"), &tensors);
    out
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn assert_close(name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol * (1.0 + w.abs()), "{name}[{i}]: got {g}, want {w}");
    }
}

/// mergekit `evaluate_setting` for a numeric list, restated: linear interpolation at t·(n−1).
fn gradient(list: &[f64], t: f64) -> f64 {
    let scaled = t * (list.len() - 1) as f64;
    let i0 = scaled.floor() as usize;
    let i1 = (i0 + 1).min(list.len() - 1);
    let frac = scaled - i0 as f64;
    (1.0 - frac) * list[i0] + frac * list[i1]
}

#[test]
fn linear_merge_is_the_weighted_mean_of_every_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let models: Vec<PathBuf> = (0..3).map(|i| variant(d, &format!("m{i}"), 2, i + 1)).collect();
    let w = [0.2, 0.3, 0.9];
    // Relative paths: resolved against the config file's directory.
    let cfg = write(
        d,
        "linear.yml",
        "merge_method: linear\nmodels:\n  - model: m0\n    parameters: {weight: 0.2}\n  - model: m1\n    parameters:\n      weight: 0.3\n  - model: m2\n    parameters: {weight: 0.9}\ndtype: float32\n",
    );
    let out = d.join("out");
    llmtool_ok(&["merge", "-q", s(&cfg), s(&out)]);
    let inputs: Vec<Tensors> = models.iter().map(|m| read_st(&m.join("model.safetensors"))).collect();
    let merged = read_st(&out.join("model.safetensors"));
    assert_eq!(merged.len(), inputs[0].len(), "same tensors");
    let sum: f64 = w.iter().sum();
    for (name, (shape, got)) in &merged {
        let (in_shape, _) = &inputs[0][name];
        assert_eq!(shape, in_shape, "{name}");
        let want: Vec<f64> = (0..got.len())
            .map(|i| inputs.iter().zip(w).map(|(t, wk)| wk * t[name].1[i] as f64).sum::<f64>() / sum)
            .collect();
        assert_close(name, got, &want, 1e-6);
    }
    // The same merge written as GGUF holds the same tensors (GGUF form of both compared).
    let gguf = d.join("out.gguf");
    llmtool_ok(&["merge", "-q", s(&cfg), s(&gguf)]);
    let a = llmtool::model::Model::open(&gguf).unwrap();
    let b = llmtool::model::Model::open(&out).unwrap();
    assert_eq!(a.tensors.tensor_infos().len(), b.tensors.tensor_infos().len());
    for t in a.tensors.tensor_infos() {
        assert_eq!(a.tensors.tensor_bytes(&t.name).unwrap(), b.tensors.tensor_bytes(&t.name).unwrap(), "{}", t.name);
    }
    // normalize: false keeps the plain weighted sum.
    let cfg2 = write(
        d,
        "sum.yml",
        "merge_method: linear\nparameters: {normalize: false}\nmodels:\n  - model: m0\n    parameters: {weight: 0.5}\n  - model: m1\n    parameters: {weight: 2.0}\n",
    );
    let out2 = d.join("sum");
    llmtool_ok(&["merge", "-q", s(&cfg2), s(&out2)]);
    let merged = read_st(&out2.join("model.safetensors"));
    let (_, got) = &merged["model.layers.1.mlp.up_proj.weight"];
    let want: Vec<f64> = (0..got.len())
        .map(|i| {
            0.5 * inputs[0]["model.layers.1.mlp.up_proj.weight"].1[i] as f64
                + 2.0 * inputs[1]["model.layers.1.mlp.up_proj.weight"].1[i] as f64
        })
        .collect();
    assert_close("up_proj (normalize: false)", got, &want, 1e-6);
}

#[test]
fn gradients_and_filters_follow_mergekit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = variant(d, "a", 5, 11);
    let b = variant(d, "b", 5, 12);
    let cfg = write(
        d,
        "grad.yml",
        &format!(
            "merge_method: linear\nparameters:\n  normalize: false\nmodels:\n  - model: {}\n    parameters:\n      weight:\n        - filter: self_attn\n          value: 0.25\n        - filter: mlp\n          value: [0.0, 1.0]\n        - value: [0.2, 0.9, 0.4]\n  - model: {}\n    parameters:\n      weight: 0.5\n",
            s(&a),
            s(&b)
        ),
    );
    let out = d.join("out");
    llmtool_ok(&["merge", "-q", s(&cfg), s(&out)]);
    let (ta, tb) = (read_st(&a.join("model.safetensors")), read_st(&b.join("model.safetensors")));
    let merged = read_st(&out.join("model.safetensors"));
    let check = |name: &str, wa: f64| {
        let want: Vec<f64> =
            ta[name].1.iter().zip(&tb[name].1).map(|(x, y)| wa * *x as f64 + 0.5 * *y as f64).collect();
        assert_close(name, &merged[name].1, &want, 1e-6);
    };
    for layer in [0usize, 2, 4] {
        let t = layer as f64 / 4.0;
        check(&format!("model.layers.{layer}.self_attn.q_proj.weight"), 0.25);
        check(&format!("model.layers.{layer}.self_attn.k_proj.weight"), 0.25);
        check(&format!("model.layers.{layer}.mlp.up_proj.weight"), gradient(&[0.0, 1.0], t));
        check(&format!("model.layers.{layer}.input_layernorm.weight"), gradient(&[0.2, 0.9, 0.4], t));
    }
    check("model.layers.1.input_layernorm.weight", 0.55); // t = 0.25 → halfway between 0.2 and 0.9
                                                          // mergekit 0.1.5 plans the embeddings, the final norm and lm_head all at t = 0.
    check("model.embed_tokens.weight", 0.2);
    check("model.norm.weight", 0.2);
    check("lm_head.weight", 0.2);
}

#[test]
fn passthrough_frankenmerge_stacks_layers_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = variant(d, "a", 4, 21);
    let b = variant(d, "b", 4, 22);
    let cfg = write(
        d,
        "frank.yml",
        &format!(
            "slices:\n  - sources:\n    - model: {a}\n      layer_range: [0, 3]\n  - sources:\n    - model: {b}\n      layer_range: [1, 4]\n      parameters:\n        scale:\n          - filter: o_proj\n            value: 0.5\n          - value: 1.0\nmerge_method: passthrough\ndtype: float32\n",
            a = s(&a),
            b = s(&b)
        ),
    );
    let gguf = d.join("frank.gguf");
    llmtool_ok(&["merge", "-q", s(&cfg), s(&gguf)]);
    let m = llmtool::model::Model::open(&gguf).unwrap();
    assert_eq!(m.metadata.get("llama.block_count"), Some(&llmtool_formats::MetaValue::U32(6)));
    let hf = d.join("frank");
    llmtool_ok(&["convert", "--quiet", s(&gguf), s(&hf)]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["num_hidden_layers"], 6);
    let (ta, tb) = (read_st(&a.join("model.safetensors")), read_st(&b.join("model.safetensors")));
    let merged = read_st(&hf.join("model.safetensors"));
    assert_eq!(merged.len(), 3 + 6 * 9);
    for (name, (_, got)) in &merged {
        let (src, src_name, scale) = match name.strip_prefix("model.layers.") {
            Some(rest) => {
                let (l, tail) = rest.split_once('.').unwrap();
                let l: usize = l.parse().unwrap();
                let scale = if tail.contains("o_proj") && l >= 3 { 0.5 } else { 1.0 };
                if l < 3 {
                    (&ta, format!("model.layers.{l}.{tail}"), scale)
                } else {
                    (&tb, format!("model.layers.{}.{tail}", l - 3 + 1), scale)
                }
            }
            // embeddings from the first slice's source, the final norm and head from the last's
            None if name.contains("embed_tokens") => (&ta, name.clone(), 1.0),
            None => (&tb, name.clone(), 1.0),
        };
        let want: Vec<f64> = src[&src_name].1.iter().map(|x| scale * *x as f64).collect();
        assert_close(name, got, &want, 0.0);
    }
    // The result runs in the inference core.
    let text = write(d, "text.txt", &"The quick brown fox jumps over the lazy dog. ".repeat(60));
    let out = llmtool_ok(&["perplexity", s(&gguf), "--text", s(&text), "--ctx", "64", "--chunks", "2", "--json", "-q"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["ppl"].as_f64().unwrap().is_finite(), "{v}");
}

#[test]
fn quantized_gguf_inputs_are_dequantized_and_output_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = variant(d, "a", 2, 31);
    let b = variant(d, "b", 2, 32);
    let (qa, qb) = (d.join("a.q8.gguf"), d.join("b.q8.gguf"));
    llmtool_ok(&["quantize", "-q", s(&a), s(&qa), "--type", "Q8_0"]);
    llmtool_ok(&["quantize", "-q", s(&b), s(&qb), "--type", "Q8_0"]);
    let cfg = write(
        d,
        "q.yml",
        &format!(
            "merge_method: linear\nbase_model: {qa}\nmodels:\n  - model: {qa}\n    parameters: {{weight: 0.6}}\n  - model: {qb}\n    parameters: {{weight: 0.4}}\nout_dtype: float32\n",
            qa = s(&qa),
            qb = s(&qb)
        ),
    );
    let out = d.join("q.gguf");
    llmtool_ok(&["merge", "-q", s(&cfg), s(&out), "--seed", "7"]);
    let (ma, mb, mo) = (
        llmtool::model::Model::open(&qa).unwrap(),
        llmtool::model::Model::open(&qb).unwrap(),
        llmtool::model::Model::open(&out).unwrap(),
    );
    let f32s = |m: &llmtool::model::Model, name: &str| -> Vec<f32> {
        let info = m.tensors.tensor_info(name).unwrap();
        let mut v = vec![0f32; info.n_elements().unwrap() as usize];
        llmtool_kernels::convert::to_f32(info.ty, &m.tensors.tensor_bytes(name).unwrap(), &mut v).unwrap();
        v
    };
    let mut n_quant = 0;
    for t in mo.tensors.tensor_infos() {
        assert_eq!(t.ty, llmtool_formats::GgmlType::F32, "{}: out_dtype float32", t.name);
        if ma.tensors.tensor_info(&t.name).unwrap().ty.is_quantized() {
            n_quant += 1;
        }
        // Permutations commute with a weighted mean: compare in GGUF layout.
        let want: Vec<f64> =
            f32s(&ma, &t.name).iter().zip(f32s(&mb, &t.name)).map(|(x, y)| 0.6 * *x as f64 + 0.4 * y as f64).collect();
        assert_close(&t.name, &f32s(&mo, &t.name), &want, 1e-6);
    }
    assert!(n_quant >= 14, "the Q8_0 inputs hold quantized matrices ({n_quant})");
    // Same config, same seed: the same bytes; also as an HF dir.
    let again = d.join("q2.gguf");
    llmtool_ok(&["merge", "-q", s(&cfg), s(&again), "--seed", "7"]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let (h1, h2) = (d.join("h1"), d.join("h2"));
    llmtool_ok(&["merge", "-q", s(&cfg), s(&h1), "--to", "hf"]);
    llmtool_ok(&["merge", "-q", s(&cfg), s(&h2), "--to", "hf"]);
    assert_eq!(
        std::fs::read(h1.join("model.safetensors")).unwrap(),
        std::fs::read(h2.join("model.safetensors")).unwrap()
    );
    // Without out_dtype a quantized input's matrices come out F16, vectors F32.
    let cfg_f16 = write(
        d,
        "q16.yml",
        &format!("merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 1}}\n", s(&qa)),
    );
    let o16 = d.join("q16.gguf");
    llmtool_ok(&["merge", "-q", s(&cfg_f16), s(&o16)]);
    let m16 = llmtool::model::Model::open(&o16).unwrap();
    for t in m16.tensors.tensor_infos() {
        let want = if t.ne.len() >= 2 { llmtool_formats::GgmlType::F16 } else { llmtool_formats::GgmlType::F32 };
        assert_eq!(t.ty, want, "{}", t.name);
    }
}

fn merge_err(dir: &Path, yaml: &str) -> String {
    let cfg = write(dir, "bad.yml", yaml);
    let out = llmtool(&["merge", "-q", s(&cfg), s(&dir.join("bad-out.gguf")), "--force"]);
    assert!(!out.status.success(), "expected failure for:\n{yaml}");
    assert!(!dir.join("bad-out.gguf").exists(), "no output on failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = variant(d, "a", 2, 41);
    let m = "models:\n  - model: a\n    parameters: {weight: 1}\n";
    let cases: Vec<(String, &[&str])> = vec![
        (format!("merge_method: linear\n{m}colour: red\n"), &["unknown key 'colour'", "merge_method"]),
        (format!("merge_method: lineer\n{m}"), &["merge_method 'lineer' is not known", "linear"]),
        ("merge_method: linear\nmodels:\n  - model: a\n    parameters: {wieght: 1}\n".into(), &["models[0].parameters", "'wieght'"]),
        (format!("merge_method: linear\n{m}parameters: {{t: 0.5}}\n"), &["does not take parameter 't'"]),
        (format!("merge_method: linear\n{m}tokenizer_source: union\n"), &["tokenizer_source 'union'", "not yet supported"]),
        (format!("merge_method: linear\n{m}tokenizer: {{source: base}}\n"), &["'tokenizer'", "not yet supported"]),
        ("merge_method: linear\nmodels:\n  - model: a+some/lora\n    parameters: {weight: 1}\n".into(), &["LoRA", "not yet supported"]),
        ("merge_method: linear\nmodels:\n  - model: nothere\n    parameters: {weight: 1}\n".into(), &["'nothere': not found", "config file's directory"]),
        (format!("merge_method: linear\n{m}dtype: float8\n"), &["unknown dtype 'float8'"]),
        ("merge_method: linear\n".into(), &["exactly one of 'models' or 'slices'"]),
        ("merge_method: ties\nmodels:\n  - model: a\n    parameters: {weight: 1, density: 0.5}\n".into(), &["ties needs base_model"]),
        (
            "merge_method: passthrough\nslices:\n  - sources:\n    - {model: a, layer_range: [0, 2]}\n    - {model: a, layer_range: [0, 2]}\n".into(),
            &["exactly one source per slice"],
        ),
        ("merge_method: passthrough\nslices:\n  - sources:\n    - {model: a, layer_range: [0, 3]}\n".into(), &["layer_range [0, 3] exceeds the 2 layers"]),
        (
            "merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weight: {filter: mlp, value: 1}\n".into(),
            &["must be an entry of a list"],
        ),
        ("merge_method: linear\nmodels: [{model: a, parameters: {weight: [}]\n".into(), &["not valid YAML"]),
    ];
    for (yaml, needles) in &cases {
        let e = merge_err(d, yaml);
        for n in *needles {
            assert!(e.contains(n), "for\n{yaml}\nexpected '{n}' in:\n{e}");
        }
    }
    // Different vocabularies (tokenizer_source: union) are refused, naming the tensor.
    let mut small = read_st(&a.join("model.safetensors"));
    for n in ["model.embed_tokens.weight", "lm_head.weight"] {
        let (shape, data) = small.get_mut(n).unwrap();
        shape[0] -= 1;
        data.truncate(shape[0] * shape[1]);
    }
    let v = d.join("v");
    std::fs::create_dir_all(&v).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(a.join(f), v.join(f)).unwrap();
    }
    write_st(&v.join("model.safetensors"), &small);
    let e = merge_err(
        d,
        "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n  - model: v\n    parameters: {weight: 1}\n",
    );
    assert!(e.contains("token_embd.weight") && e.contains("vocabularies differ"), "{e}");
    // Different architectures.
    let q = root().join("fixtures/models/qwen2");
    let e = merge_err(
        d,
        &format!("merge_method: linear\nmodels:\n  - model: a\n    parameters: {{weight: 1}}\n  - model: {}\n    parameters: {{weight: 1}}\n", s(&q)),
    );
    assert!(e.contains("different architectures"), "{e}");
}

#[test]
fn example_configs_parse() {
    let dir = root().join("examples/merge");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            let c = MergeConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(!c.referenced_models().is_empty(), "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 4, "linear, ties, slerp and passthrough examples ({n} found)");
}

/// The evolve entry point: inputs loaded once into an `InputCache`; candidate merges are
/// computed from it after the input files are gone (no file I/O), equal to the CLI's output.
#[test]
fn in_memory_merges_from_the_cache_match_the_cli() {
    use llmtool::merge::inputs::InputCache;
    use llmtool::merge::memory::merge_in_memory;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = variant(d, "a", 2, 51);
    let qb = d.join("b.q8.gguf");
    let b = variant(d, "b", 2, 52);
    llmtool_ok(&["quantize", "-q", s(&b), s(&qb), "--type", "Q8_0"]);
    let yaml = |wa: f64| {
        format!(
            "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: {wa}}}\n  - model: {}\n    parameters: {{weight: 0.5}}\n",
            s(&a),
            s(&qb)
        )
    };
    let cfg_path = write(d, "c.yml", &yaml(0.25));
    let out = d.join("cli.gguf");
    llmtool_ok(&["merge", "-q", s(&cfg_path), s(&out), "--seed", "3"]);
    let cli = llmtool::model::Model::open(&out).unwrap();
    let cli_tensors: Vec<(String, Vec<u8>)> = cli
        .tensors
        .tensor_infos()
        .iter()
        .map(|t| (t.name.clone(), cli.tensors.tensor_bytes(&t.name).unwrap().into_owned()))
        .collect();
    drop(cli);

    let cfg = MergeConfig::parse(&yaml(0.25), "c.yml").unwrap();
    let cache = InputCache::load(&cfg).unwrap();
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_file(&qb).unwrap();
    let m = merge_in_memory(&cfg, &cache, 3).unwrap();
    assert_eq!(m.tensors.tensor_infos().len(), cli_tensors.len());
    for (name, bytes) in &cli_tensors {
        assert_eq!(&*m.tensors.tensor_bytes(name).unwrap(), &bytes[..], "{name}");
    }
    // A second candidate with other weights, from the same cache.
    let cfg2 = MergeConfig::parse(&yaml(1.5), "c.yml").unwrap();
    let m2 = merge_in_memory(&cfg2, &cache, 3).unwrap();
    let differ = cli_tensors.iter().filter(|(n, b)| *m2.tensors.tensor_bytes(n).unwrap() != b[..]).count();
    assert!(differ >= cli_tensors.len() - 1, "other weights give other tensors ({differ})");
}

/// Every architecture: the merge runs in HF layout (Q/K permutation, Gemma's `w + 1` norms
/// undone and redone), so an HF output is the weighted mean of the HF inputs.
#[test]
fn linear_merge_in_hf_layout_for_every_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    for arch in ["gemma", "gemma2", "qwen2", "phi3", "qwen3", "gemma3", "command_r", "cohere2"] {
        let d = tmp.path().join(arch);
        std::fs::create_dir_all(&d).unwrap();
        let src = root().join("fixtures/models").join(arch);
        // gemma3's config lists 6 layer types: keep its 6 layers
        let n_layers = if arch == "gemma3" { 6 } else { 2 };
        let a = variant_of(&src, &d, "a", n_layers, 61);
        let b = variant_of(&src, &d, "b", n_layers, 62);
        let cfg = write(
            &d,
            "m.yml",
            "merge_method: linear\nparameters: {normalize: false}\nmodels:\n  - model: a\n    parameters: {weight: 0.7}\n  - model: b\n    parameters: {weight: 0.6}\n",
        );
        let out = d.join("out");
        llmtool_ok(&["merge", "-q", s(&cfg), s(&out)]);
        let (ta, tb, merged) = (
            read_st(&a.join("model.safetensors")),
            read_st(&b.join("model.safetensors")),
            read_st(&out.join("model.safetensors")),
        );
        for (name, (_, got)) in &merged {
            let want: Vec<f64> =
                ta[name].1.iter().zip(&tb[name].1).map(|(x, y)| 0.7 * *x as f64 + 0.6 * *y as f64).collect();
            assert_close(&format!("{arch} {name}"), got, &want, 1e-6);
        }
    }
}

#[test]
fn eval_text_scores_inputs_and_result() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    variant(d, "a", 2, 71);
    variant(d, "b", 2, 72);
    let cfg = write(
        d,
        "e.yml",
        "merge_method: linear\nbase_model: a\nmodels:\n  - model: a\n    parameters: {weight: 0.5}\n  - model: b\n    parameters: {weight: 0.5}\n",
    );
    let text = write(d, "text.txt", &"The quick brown fox jumps over the lazy dog. ".repeat(60));
    let out = llmtool_ok(&[
        "merge",
        "-q",
        s(&cfg),
        s(&d.join("e.gguf")),
        "--eval-text",
        s(&text),
        "--eval-ctx",
        "64",
        "--eval-chunks",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pass"], "merge");
    assert_eq!(v["reference"], "base");
    assert_eq!(v["inputs"].as_array().unwrap().len(), 2);
    assert!(v["result"]["ppl"].as_f64().unwrap().is_finite() && v["kld"]["kld_mean"].as_f64().unwrap() >= 0.0, "{v}");
}

/// A merge of two llama3-rope models keeps `rope_freqs.weight` as it is (no HF equivalent:
/// copied from the base, never averaged), F32, and an HF output gets config.json's
/// rope_scaling back; longrope's two factor tensors likewise.
#[test]
fn rope_factor_tensors_pass_through_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (fixture, names) in [
        ("llama31", &["rope_freqs.weight"][..]),
        ("phi35", &["rope_factors_long.weight", "rope_factors_short.weight"][..]),
    ] {
        let src = root().join("fixtures/models").join(fixture);
        variant_of(&src, d, &format!("{fixture}-a"), 2, 1);
        variant_of(&src, d, &format!("{fixture}-b"), 2, 2);
        let cfg = write(
            d,
            &format!("{fixture}.yml"),
            &format!(
                "merge_method: linear\nmodels:\n  - model: {fixture}-a\n    parameters: {{weight: 0.5}}\n  - model: {fixture}-b\n    parameters: {{weight: 0.5}}\ndtype: float32\n"
            ),
        );
        let reference =
            llmtool::model::Model::open(&root().join("fixtures/llama_cpp").join(format!("{fixture}.gguf"))).unwrap();
        let gguf = d.join(format!("{fixture}.gguf"));
        llmtool_ok(&["merge", "-q", s(&cfg), s(&gguf)]);
        let m = llmtool::model::Model::open(&gguf).unwrap();
        for name in names {
            let info = m.tensors.tensor_info(name).unwrap_or_else(|| panic!("{fixture}: {name} lost"));
            assert_eq!(info.ty, llmtool_formats::GgmlType::F32);
            assert_eq!(m.tensors.tensor_bytes(name).unwrap(), reference.tensors.tensor_bytes(name).unwrap(), "{name}");
        }
        let hf = d.join(format!("{fixture}-hf"));
        llmtool_ok(&["merge", "-q", s(&cfg), s(&hf)]);
        let c: serde_json::Value = serde_json::from_slice(&std::fs::read(hf.join("config.json")).unwrap()).unwrap();
        assert!(c["rope_scaling"].is_object(), "{fixture}: {c}");
        assert!(read_st(&hf.join("model.safetensors")).keys().all(|k| !k.contains("rope")), "{fixture}");
    }
}
