//! `llmtool build`: recipes on the real SmolLM2 model — steps run and are validated, an
//! unchanged rebuild comes from the cache, a failed gate stops the build with a message
//! naming the step, the figure and the threshold and writes no output; recipe errors are
//! found before any work.

mod common;

use std::path::Path;

use common::{llmtool, real_model};

fn write_recipe(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn text(dir: &Path) -> std::path::PathBuf {
    // A slice of WikiText-2 (enough for 2 windows of 256 tokens), kept small so the test is quick.
    let wiki = common::wiki_text();
    let all = std::fs::read_to_string(&wiki).unwrap_or_else(|e| panic!("{}: {e}", wiki.display()));
    let p = dir.join("wiki.txt");
    std::fs::write(&p, &all[..20_000]).unwrap();
    p
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report/report.json")).unwrap()).unwrap()
}

#[test]
fn a_recipe_runs_validates_caches_and_a_failed_gate_stops_the_build() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let text = text(dir.path());
    let adapter = common::root().join("fixtures/lora/smollm2-r2");
    let tasks = common::root().join("examples/tasks/continuation.jsonl");
    // F16 → LoRA (the committed SmolLM2-shaped adapter) → quantize, validated after every step.
    let recipe = |out: &str, qtype: &str, gates: &str| {
        format!(
            "inputs: {{smollm2: {model}}}\nsteps:\n  - convert: {{outtype: f16}}\n  - lora: {{adapter: {adapter}}}\n\
             \x20 - quantize: {{type: {qtype}}}\noutputs: {{gguf: {out}}}\nvalidate:\n  text: {text}\n  chunks: 2\n\
             \x20 ctx: 256\n  tasks: [{tasks}]\n  gates: {gates}\ncache: cache\nreport: report\n",
            model = model.display(),
            adapter = adapter.display(),
            text = text.display(),
            tasks = tasks.display(),
        )
    };
    let q8 = write_recipe(
        dir.path(),
        "q8.yml",
        &recipe("dist/q8.gguf", "Q8_0", "{max_ppl_increase_pct: 3, max_kld: 0.05, min_task_acc: 0.5}"),
    );
    let out = llmtool(&["build", q8.to_str().unwrap(), "--json", "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(dir.path());
    assert_eq!(r["passed"], true);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "input + 3 steps");
    let fig = |i: usize, k: &str| steps[i]["figures"][k].as_f64().unwrap_or_else(|| panic!("step {i} {k}: {r}"));
    // Q4_1 → F16 holds the same weights (they differ only in how activations are rounded:
    // Q8_1 blocks for Q4_1; measured −1.0 % on these two short windows, −0.35 % over 20
    // chunks of 512 by llama.cpp): within 2 %. The adapter moves the model a little
    // (measured +0.5 % on 2×512 tokens of the same text); F16 → Q8_0 within 3 %.
    assert!(fig(1, "ppl_change_pct").abs() < 2.0, "convert: {}", fig(1, "ppl_change_pct"));
    assert!(fig(2, "ppl_change_pct").abs() > 1e-4 && fig(2, "kld_mean") > 0.0, "the LoRA step changed nothing");
    assert!(fig(3, "ppl_change_pct").abs() < 3.0, "Q8_0: {}", fig(3, "ppl_change_pct"));
    let ppl0 = fig(0, "ppl");
    assert!(ppl0 > 5.0 && ppl0 < 100.0, "start PPL {ppl0}");
    for i in 0..4 {
        let acc = fig(i, "task_acc");
        assert!((0.5..=1.0).contains(&acc), "step {i}: task accuracy {acc}");
    }
    assert!((steps[1]["bits_per_weight"].as_f64().unwrap() - 16.0).abs() < 0.5);
    assert!((steps[3]["bits_per_weight"].as_f64().unwrap() - 8.5).abs() < 0.3);
    assert!(steps[1..].iter().all(|s| s["cached"] == false));
    let q8_out = dir.path().join("dist/q8.gguf");
    let built = std::fs::read(&q8_out).unwrap();
    assert!(std::fs::read_to_string(dir.path().join("report/report.md")).unwrap().contains("| 3 | quantize Q8_0 |"));

    // Unchanged rebuild: every step and its evaluation come from the cache, same bytes out.
    let dry = llmtool(&["build", q8.to_str().unwrap(), "--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success() && dry_out.matches("  cached").count() == 3, "{dry_out}");
    let again = llmtool(&["build", q8.to_str().unwrap(), "-q"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let r = report(dir.path());
    assert!(r["steps"].as_array().unwrap()[1..].iter().all(|s| s["cached"] == true));
    assert_eq!(std::fs::read(&q8_out).unwrap(), built);

    // The same chain to Q4_K_M reuses the F16 and LoRA steps; its gates are looser
    // (llama.cpp measures +5.5 % PPL and KLD 0.053 for Q4_K_M vs F16 on this model).
    let q4km = write_recipe(
        dir.path(),
        "q4km.yml",
        &recipe("dist/q4km.gguf", "Q4_K_M", "{max_ppl_increase_pct: 12, max_kld: 0.15, min_task_acc: 0.5}"),
    );
    let out = llmtool(&["build", q4km.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(dir.path());
    assert_eq!(r["steps"][1]["cached"], true);
    assert_eq!(r["steps"][2]["cached"], true);
    assert_eq!(r["steps"][3]["cached"], false);
    assert!(dir.path().join("dist/q4km.gguf").is_file());

    // Q4_0 raises SmolLM2's perplexity by far more than 1 %: the gate stops the build at
    // step 3; the cached steps are reused and no output is written.
    let bad = write_recipe(dir.path(), "q4.yml", &recipe("dist/q4.gguf", "Q4_0", "{max_ppl_increase_pct: 1}"));
    let out = llmtool(&["build", bad.to_str().unwrap(), "-q"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("step 3 (quantize Q4_0) failed its quality gate: perplexity rose by")
            && err.contains("(gate max_ppl_increase_pct: 1)"),
        "{err}"
    );
    assert!(!dir.path().join("dist/q4.gguf").exists());
    let r = report(dir.path());
    assert_eq!(r["passed"], false);
    assert_eq!(r["steps"][2]["cached"], true);
    assert!(r["steps"][3]["gate_failures"][0].as_str().unwrap().contains("max_ppl_increase_pct"));
}

#[test]
fn recipe_errors_name_the_key_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    std::fs::write(&model, b"GGUF").unwrap(); // never opened: the recipe is refused first
    let m = model.display();
    let cases: &[(&str, String)] = &[
        ("unknown field `stpes`", format!("inputs: {{a: {m}}}\nstpes: []\noutputs: {{gguf: o.gguf}}\n")),
        ("inputs.b: ", format!("inputs: {{a: {m}, b: missing.gguf}}\nsteps: [{{quantize: {{type: Q8_0}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].chatvector.chat: 'nope' is not an input", format!("inputs: {{a: {m}}}\nsteps: [{{chatvector: {{base: a, chat: nope}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].quantize.type: 'Q9_9'", format!("inputs: {{a: {m}}}\nsteps: [{{quantize: {{type: Q9_9}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("validate.gates: max_ppl_increase_pct and max_kld need validate.text", format!("inputs: {{a: {m}}}\nsteps: [{{convert: {{outtype: f16}}}}]\noutputs: {{gguf: o.gguf}}\nvalidate: {{tasks: [{m}], gates: {{max_kld: 0.1}}}}\n")),
        ("outputs.hf: the last model is block-quantized", format!("inputs: {{a: {m}}}\nsteps: [{{quantize: {{type: Q8_0}}}}]\noutputs: {{hf: out}}\n")),
        ("steps: the recipe has no steps", format!("inputs: {{a: {m}}}\nsteps: []\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].quantize.calibration: target_bpw needs a calibration text", format!("inputs: {{a: {m}}}\nsteps: [{{quantize: {{target_bpw: 5}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].quantize.type: give either type or target_bpw", format!("inputs: {{a: {m}}}\nsteps: [{{quantize: {{type: Q8_0, target_bpw: 5, calibration: {m}}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].quantize.calibration: ", format!("inputs: {{a: {m}}}\nsteps: [{{quantize: {{target_bpw: 5, calibration: nowhere.txt}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].lora.adapter: ", format!("inputs: {{a: {m}}}\nsteps: [{{lora: {{adapter: nowhere}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].quantize.imatrix: file type IQ2_XXS needs an importance matrix", format!("inputs: {{a: {m}}}\nsteps: [{{quantize: {{type: IQ2_XXS}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].quantize.imatrix: ", format!("inputs: {{a: {m}}}\nsteps: [{{quantize: {{type: IQ3_M, imatrix: none.gguf}}}}]\noutputs: {{gguf: o.gguf}}\n")),
        ("steps[0].quantize.imatrix.text: ", format!("inputs: {{a: {m}}}\nsteps: [{{quantize: {{type: IQ3_M, imatrix: {{text: none.txt}}}}}}]\noutputs: {{gguf: o.gguf}}\n")),
    ];
    for (want, body) in cases {
        let p = write_recipe(dir.path(), "r.yml", body);
        let out = llmtool(&["build", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "want {want:?} in:\n{err}");
        assert!(err.contains("r.yml"), "the error names the recipe: {err}");
        assert!(!dir.path().join(".llmtool-cache").exists(), "no work before the recipe is valid");
    }
}

#[test]
fn chatvector_and_merge_steps_chain_on_a_fixture() {
    use common::variant::{perturbed, read_hf};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = common::root().join("fixtures/models/llama");
    let chat = d.join("chat");
    perturbed(&base, &chat, 7, 0.02);
    let wiki = std::fs::read_to_string(common::wiki_text()).unwrap();
    std::fs::write(d.join("t.txt"), &wiki[..8_000]).unwrap();
    // current = base + 1·(chat − base) = chat (but for the skipped embeddings), then averaged
    // with the base: every merged tensor is (base + chat) / 2; embeddings stay the base's.
    std::fs::write(
        d.join("merge.yml"),
        "merge_method: linear\nmodels:\n  - model: current\n    parameters: {weight: 0.5}\n\
         \x20 - model: base\n    parameters: {weight: 0.5}\ndtype: float32\n",
    )
    .unwrap();
    let recipe = write_recipe(
        d,
        "cv.yml",
        &format!(
            "inputs: {{base: {}, chat: {}}}\nsteps:\n  - chatvector: {{base: base, chat: chat, ratio: 1.0}}\n\
             \x20 - merge: merge.yml\n  - convert: {{outtype: f16}}\noutputs: {{gguf: out/m.gguf, hf: out/m-hf}}\n\
             validate: {{text: t.txt, chunks: 1, ctx: 32, gates: {{max_kld: 5}}}}\nreport: report\n",
            base.display(),
            chat.display()
        ),
    );
    let out = llmtool(&["build", recipe.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(d);
    let kinds: Vec<&str> = r["steps"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["input", "chatvector", "merge", "convert"]);
    assert!(d.join("out/m.gguf").is_file());
    let (b, c, got) = (read_hf(&base), read_hf(&chat), read_hf(&d.join("out/m-hf")));
    assert_eq!(got.len(), b.len(), "{:?}", got.keys().collect::<Vec<_>>());
    for (name, (shape, vals)) in &got {
        let (bshape, bv) = &b[name];
        assert_eq!(shape, bshape, "{name}");
        let skipped = name.contains("embed_tokens") || name.contains("lm_head");
        for (i, v) in vals.iter().enumerate() {
            let want = if skipped { bv[i] } else { 0.5 * (bv[i] + c[name].1[i]) };
            // f16 output: half an ulp of f16 relative, plus f32 rounding on the way.
            assert!((v - want).abs() <= want.abs() * 1e-3 + 1e-6, "{name}[{i}]: {v} vs {want}");
        }
    }
}

/// Paths are printed (and used) normalized: `a/b/../../dist` is `dist`, wherever the recipe
/// lives and however its paths climb.
#[test]
fn plan_prints_normalized_paths() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("recipes/build");
    std::fs::create_dir_all(&sub).unwrap();
    let model = common::root().join("fixtures/../fixtures/models/./llama");
    let recipe = write_recipe(
        &sub,
        "r.yml",
        &format!(
            "inputs: {{m: {}}}\nsteps:\n  - convert: {{outtype: f16}}\noutputs: {{gguf: ../../dist/./x.gguf}}\ncache: ../../cache\n",
            model.display()
        ),
    );
    let out = llmtool(&["build", recipe.to_str().unwrap(), "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("/../") && !text.contains("/./"), "{text}");
    assert!(text.contains(&format!("→ {}", dir.path().join("dist/x.gguf").display())), "{text}");
    assert!(text.contains(&format!("cache {})", dir.path().join("cache").display())), "{text}");
    assert!(text.contains(&common::root().join("fixtures/models/llama").display().to_string()), "{text}");
}

#[test]
fn quantize_step_with_target_bpw_builds_a_measured_mix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = common::root().join("fixtures/models/llama");
    let wiki = std::fs::read_to_string(common::wiki_text()).unwrap();
    std::fs::write(d.join("calib.txt"), &wiki[..20_000]).unwrap();
    let body = format!(
        "inputs: {{m: {}}}\nsteps:\n  - convert: {{outtype: f16}}\n  - quantize: {{target_bpw: 6, calibration: calib.txt}}\n\
         outputs: {{gguf: out.gguf}}\n",
        base.display()
    );
    let p = write_recipe(d, "mix.yml", &body);
    let out = llmtool(&["build", p.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = llmtool(&["inspect", "--json", d.join("out.gguf").to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let bpw = v["bits_per_weight"].as_f64().unwrap();
    // within the target, and a real mix (not everything at one type)
    assert!(bpw <= 6.0 && bpw > 4.0, "bpw {bpw}");
    let types: std::collections::BTreeSet<String> = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["shape"].as_array().unwrap().len() > 1)
        .map(|t| t["type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.len() > 1, "{types:?}");
}

/// `quantize: {type, imatrix}`: a given imatrix file, or one computed on a text by our
/// `imatrix` on the step's input and cached under its own key (a second file type reuses it);
/// the outputs equal the commands a user would run by hand.
#[test]
fn quantize_steps_take_or_compute_an_imatrix() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = text(d);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = llmtool(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let recipe = |name: &str, qtype: &str, imatrix: &str| {
        let body = format!(
            "inputs: {{m: {}}}\nsteps:\n  - quantize: {{type: {qtype}, imatrix: {imatrix}}}\noutputs: {{gguf: {name}.gguf}}\ncache: cache\nreport: report-{name}\n",
            model.display()
        );
        write_recipe(d, &format!("{name}.yml"), &body)
    };
    // Computed on the text: the same bytes as `imatrix` then `quantize --imatrix` by hand.
    let computed = format!("{{text: {}, chunks: 2, ctx: 256}}", text.display());
    run(&["build", &s(&recipe("a", "Q4_K_M", &computed)), "-q"]);
    let cached: Vec<_> = walk(&d.join("cache")).into_iter().filter(|p| p.ends_with("imatrix.gguf")).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let im = d.join("by-hand.imatrix.gguf");
    run(&["imatrix", &s(&model), "--text", &s(&text), "--chunks", "2", "--ctx", "256", "-o", &s(&im), "-q"]);
    assert!(std::fs::read(&cached[0]).unwrap() == std::fs::read(&im).unwrap(), "cached imatrix != by hand");
    // (quantize records the imatrix's path in the file: the same path by hand.)
    let by_hand = d.join("by-hand.gguf");
    run(&["quantize", &s(&model), &s(&by_hand), "-t", "Q4_K_M", "--imatrix", &s(&cached[0]), "-q"]);
    assert!(std::fs::read(d.join("a.gguf")).unwrap() == std::fs::read(&by_hand).unwrap(), "recipe Q4_K_M != by hand");
    let stamp = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    // Another file type on the same text and model reuses the cached imatrix.
    let out = llmtool(&["build", &s(&recipe("b", "IQ4_XS", &computed))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("imatrix of its input"), "the imatrix was recomputed");
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().modified().unwrap(), stamp);
    // A given file.
    let fixture = common::root().join("fixtures/imatrix/smollm2-q4_1-wiki4.gguf");
    run(&["build", &s(&recipe("c", "Q3_K_M", &s(&fixture))), "-q"]);
    let by_hand = d.join("by-hand-c.gguf");
    run(&["quantize", &s(&model), &s(&by_hand), "-t", "Q3_K_M", "--imatrix", &s(&fixture), "-q"]);
    assert!(std::fs::read(d.join("c.gguf")).unwrap() == std::fs::read(&by_hand).unwrap(), "recipe Q3_K_M != by hand");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `caching: final | off` (issue 17): the steps are chained in memory and each is validated
/// on its in-memory stage; the output and every figure equal the per-step build's, mode off
/// writes nothing to the cache but the evaluation-free output itself, and mode final caches
/// only the last step's result (a rebuild then comes from it).
#[test]
fn chained_steps_in_memory_give_the_per_step_bytes_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = common::root().join("fixtures/models/llama");
    let adapter = common::root().join("fixtures/lora/llama_plain/adapter");
    let wiki = std::fs::read_to_string(common::wiki_text()).unwrap();
    std::fs::write(d.join("t.txt"), &wiki[..8_000]).unwrap();
    let recipe = |name: &str, caching: &str| {
        let body = format!(
            "inputs: {{m: {}}}\nsteps:\n  - convert: {{outtype: f16}}\n  - lora: {{adapter: {}}}\n  - quantize: {{type: Q8_0}}\n\
             outputs: {{gguf: out/{name}.gguf}}\nvalidate: {{text: t.txt, chunks: 2, ctx: 32, gates: {{max_kld: 5}}}}\n\
             cache: cache-{name}\nreport: report-{name}\ncaching: {caching}\n",
            base.display(),
            adapter.display()
        );
        write_recipe(d, &format!("{name}.yml"), &body)
    };
    let build = |name: &str, caching: &str| -> serde_json::Value {
        let out = llmtool(&["build", recipe(name, caching).to_str().unwrap(), "-q"]);
        assert!(out.status.success(), "{caching}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&std::fs::read(d.join(format!("report-{name}/report.json"))).unwrap()).unwrap()
    };
    let models_in = |cache: &str| -> Vec<std::path::PathBuf> {
        let c = d.join(cache);
        if !c.exists() {
            return Vec::new();
        }
        walk(&c).into_iter().filter(|p| p.ends_with("model.gguf")).collect()
    };
    let per_step = build("per-step", "per-step");
    let final_ = build("final", "final");
    let off = build("off", "off");
    let bytes = |name: &str| std::fs::read(d.join(format!("out/{name}.gguf"))).unwrap();
    assert!(bytes("per-step") == bytes("final"), "final != per-step");
    assert!(bytes("per-step") == bytes("off"), "off != per-step");
    assert_eq!(models_in("cache-per-step").len(), 3);
    assert_eq!(models_in("cache-final").len(), 1, "{:?}", models_in("cache-final"));
    assert!(models_in("cache-off").is_empty(), "{:?}", models_in("cache-off"));
    for r in [&final_, &off] {
        let (a, b) = (per_step["steps"].as_array().unwrap(), r["steps"].as_array().unwrap());
        assert_eq!(a.len(), 4);
        assert_eq!(b.len(), 4);
        for (i, (sa, sb)) in a.iter().zip(b).enumerate() {
            assert_eq!(sa["key"], sb["key"], "same cache keys");
            assert_eq!(sa["size_bytes"], sb["size_bytes"], "{}", sa["description"]);
            assert_eq!(sa["bits_per_weight"], sb["bits_per_weight"]);
            // The input's row has its perplexity only (from the first step's run).
            let keys: &[&str] =
                if i == 0 { &["ppl"] } else { &["ppl", "ppl_change_pct", "kld_mean", "kld_p99", "same_top"] };
            for &k in keys {
                let (x, y) = (sa["figures"][k].as_f64(), sb["figures"][k].as_f64());
                let (x, y) = (x.unwrap_or_else(|| panic!("{k}: {sa}")), y.unwrap_or_else(|| panic!("{k}: {sb}")));
                assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{} {k}: {x} vs {y}", sa["description"]);
            }
        }
    }
    assert!(per_step["steps"][2]["figures"]["kld_mean"].as_f64().unwrap() > 0.0, "the LoRA step changed nothing");
    // Mode final resumes from its cached last step: nothing runs again.
    let again = build("final", "final");
    assert!(again["steps"].as_array().unwrap()[1..].iter().all(|s| s["cached"] == true), "{again}");
    assert!(bytes("final") == bytes("per-step"));
}

/// Issue 17: chatvector, merge and moe steps are library passes, chained in memory with
/// `caching: final | off`; the output is byte for byte the per-step build's, and what the
/// commands give one file at a time on the same models, seeds and ratios.
#[test]
fn chatvector_merge_and_moe_steps_chain_in_memory_as_the_commands_give() {
    use common::variant::perturbed;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let base = common::root().join("fixtures/models/llama");
    let chat = d.join("chat");
    perturbed(&base, &chat, 11, 0.02);
    let wiki = std::fs::read_to_string(common::wiki_text()).unwrap();
    std::fs::write(d.join("t.txt"), &wiki[..8_000]).unwrap();
    // DARE: the merge's seed matters; the MoE's random routers: its seed matters.
    let merge = |current: &str, base: &str, chat: &str| {
        format!(
            "merge_method: dare_ties\nbase_model: {base}\nmodels:\n  - model: {current}\n    parameters: {{weight: 0.7, density: 0.6}}\n\
             \x20 - model: {chat}\n    parameters: {{weight: 0.3, density: 0.6}}\ndtype: float32\n"
        )
    };
    let moe = |current: &str, chat: &str| {
        format!(
            "base_model: {current}\ngate_mode: random\ndtype: float32\nexperts:\n  - source_model: {current}\n\
             \x20 - source_model: {chat}\n"
        )
    };
    std::fs::write(d.join("merge.yml"), merge("current", "base", "chat")).unwrap();
    std::fs::write(d.join("moe.yml"), moe("current", "chat")).unwrap();
    let build = |name: &str, caching: &str| -> serde_json::Value {
        let body = format!(
            "inputs: {{base: {}, chat: {}}}\nsteps:\n  - chatvector: {{base: base, chat: chat, ratio: 0.5}}\n\
             \x20 - merge: {{config: merge.yml, seed: 5}}\n  - moe: {{config: moe.yml, seed: 3}}\n\
             outputs: {{gguf: out/{name}.gguf}}\nvalidate: {{text: t.txt, chunks: 1, ctx: 32, gates: {{max_kld: 50}}}}\n\
             cache: cache-{name}\nreport: report-{name}\ncaching: {caching}\n",
            base.display(),
            chat.display()
        );
        let recipe = write_recipe(d, &format!("{name}.yml"), &body);
        let out = llmtool(&["build", recipe.to_str().unwrap(), "-q"]);
        assert!(out.status.success(), "{caching}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&std::fs::read(d.join(format!("report-{name}/report.json"))).unwrap()).unwrap()
    };
    let per_step = build("per-step", "per-step");
    let final_ = build("final", "final");
    let off = build("off", "off");
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    let built = bytes(&d.join("out/per-step.gguf"));
    assert!(built == bytes(&d.join("out/final.gguf")), "final != per-step");
    assert!(built == bytes(&d.join("out/off.gguf")), "off != per-step");
    for r in [&final_, &off] {
        let (a, b) = (per_step["steps"].as_array().unwrap(), r["steps"].as_array().unwrap());
        let kinds: Vec<&str> = b.iter().map(|s| s["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["input", "chatvector", "merge", "moe"]);
        for (sa, sb) in a.iter().zip(b).skip(1) {
            assert_eq!(sa["key"], sb["key"]);
            assert_eq!(sa["size_bytes"], sb["size_bytes"], "{}", sa["description"]);
            for k in ["ppl", "kld_mean", "same_top"] {
                let (x, y) = (sa["figures"][k].as_f64().unwrap(), sb["figures"][k].as_f64().unwrap());
                assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{} {k}: {x} vs {y}", sa["description"]);
            }
        }
    }
    // The commands, one file at a time.
    let run = |args: &[&str]| {
        let out = llmtool(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (cv, merged, moed) = (d.join("h-cv.gguf"), d.join("h-merge.gguf"), d.join("h-moe.gguf"));
    run(&[
        "chatvector",
        "--base",
        &s(&base),
        "--chat",
        &s(&chat),
        "--target",
        &s(&base),
        "--ratio",
        "0.5",
        &s(&cv),
        "-q",
    ]);
    std::fs::write(d.join("h-merge.yml"), merge(&s(&cv), &s(&base), &s(&chat))).unwrap();
    run(&["merge", &s(&d.join("h-merge.yml")), &s(&merged), "--seed", "5", "-q"]);
    std::fs::write(d.join("h-moe.yml"), moe(&s(&merged), &s(&chat))).unwrap();
    run(&["moe", &s(&d.join("h-moe.yml")), &s(&moed), "--seed", "3", "-q"]);
    assert!(built == bytes(&moed), "the build's MoE != the commands'");
    // … and each cached step result of the per-step build is the command's.
    let step = |i: usize| std::path::PathBuf::from(per_step["steps"][i]["artifact"].as_str().unwrap());
    assert!(bytes(&step(1)) == bytes(&cv), "chatvector step != command");
    assert!(bytes(&step(2)) == bytes(&merged), "merge step != command");
}

/// Issue 17: a quantize step whose imatrix is computed on its input, and a measured mix (which
/// computes its calibration imatrix), chained in memory (`caching: off`: each computed on the
/// in-memory stage) give the bytes of the per-step build (each computed on the step's input
/// file).
#[test]
fn imatrix_and_mix_steps_in_memory_give_the_per_step_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = common::root().join("fixtures/models/llama");
    let wiki = std::fs::read_to_string(common::wiki_text()).unwrap();
    std::fs::write(d.join("t.txt"), &wiki[..20_000]).unwrap();
    let steps = [
        ("imatrix", "quantize: {type: Q4_0, imatrix: {text: t.txt, chunks: 2, ctx: 32}}"),
        ("mix", "quantize: {target_bpw: 6, calibration: t.txt}"),
    ];
    for (name, step) in steps {
        let body = format!(
            "inputs: {{m: {}}}\nsteps:\n  - convert: {{outtype: f16}}\n  - {step}\noutputs: {{gguf: out/{name}.gguf}}\n\
             cache: cache-{name}\nreport: report-{name}\n",
            base.display()
        );
        let recipe = write_recipe(d, &format!("{name}.yml"), &body);
        let out = d.join(format!("out/{name}.gguf"));
        let build = |caching: &str| {
            let o = llmtool(&["build", recipe.to_str().unwrap(), "--caching", caching]);
            assert!(o.status.success(), "{name} {caching}: {}", String::from_utf8_lossy(&o.stderr));
            let bytes = std::fs::read(&out).unwrap();
            std::fs::remove_file(&out).unwrap();
            (bytes, String::from_utf8_lossy(&o.stderr).into_owned())
        };
        let (per_step, _) = build("per-step");
        let (off, log) = build("off");
        assert!(per_step == off, "{name}: caching off != per-step");
        assert!(log.contains("(in memory)"), "{name}: not chained in memory: {log}");
        if name == "imatrix" {
            assert!(log.contains("step 2: imatrix of its input"), "the imatrix was not computed again: {log}");
        }
    }
}
