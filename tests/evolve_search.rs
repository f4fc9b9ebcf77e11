//! `merge --evolve` on the tiny llama fixture: A = W + δ and B = W − δ (δ seeded noise), a
//! linear merge `(w_a·A + w_b·B)/(w_a + w_b) = W + r·δ` with `r = (w_a − w_b)/(w_a + w_b)`, so
//! the landscape is one-dimensional in r and W (r = 0, equal weights) is the point the
//! perturbation moved away from. The landscape's optimum r* is found independently by a dense
//! scan; the search must land near it at a small budget. Also: resume == uninterrupted, and
//! `best.yml` merged by `llmtool merge` reproduces the search's best model bit-for-bit.

mod common;

use std::path::Path;

use common::evolve_fixture::{plus_minus, setup, yaml, TEXT};
use common::*;
use llmtool::evolve::search::{run_search, Evaluator, SearchOptions};
use llmtool::evolve::EvolveConfig;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn config(dir: &Path, max_evals: u64) -> EvolveConfig {
    EvolveConfig::parse(&yaml(max_evals), "test.yml", Some(dir)).unwrap()
}

fn r_of(g: &[f64]) -> f64 {
    let (a, b) = (g[0].abs(), g[1].abs());
    (a - b) / (a + b)
}

#[test]
fn search_finds_the_landscape_optimum() {
    let st = setup();
    let ev = Evaluator::new(config(&st.dir, 36), 0).unwrap();
    // Independent dense scan of the 1-D landscape r ∈ [−1, 1].
    let scan: Vec<(f64, f64)> = (0..=40)
        .map(|i| {
            let r = -1.0 + i as f64 / 20.0;
            let f = ev.evaluate(&[(1.0 + r) / 2.0, (1.0 - r) / 2.0]).unwrap().score.fitness;
            (r, f)
        })
        .collect();
    let (r_star, f_star) = scan.iter().copied().fold((0.0, f64::NEG_INFINITY), |b, x| if x.1 > b.1 { x } else { b });
    let f_edge = scan[0].1.max(scan[40].1);
    eprintln!("scan optimum r* = {r_star}, fitness {f_star}; edges {f_edge}");
    assert!(f_star > f_edge + 0.05, "the perturbation must hurt: optimum {f_star} vs edges {f_edge}");
    let out = st.dir.join("out");
    let state =
        run_search(&ev, &out, &SearchOptions { resume: false, quiet: true, max_generations_this_run: None }).unwrap();
    assert_eq!(state.history.len(), 36);
    let best = state.best().unwrap();
    let r = r_of(&best.genome);
    eprintln!("search best r = {r}, fitness {}", best.score.fitness);
    assert!((r - r_star).abs() <= 0.1, "best r {r} vs scan optimum {r_star}");
    assert!(best.score.fitness >= f_star - 0.01, "best fitness {} vs scan {f_star}", best.score.fitness);
    for f in ["checkpoint.json", "history.csv", "fitness.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 37);
    assert!(csv.lines().next().unwrap().starts_with("generation,index,x0,x1,"));
}

#[test]
fn resume_continues_like_the_uninterrupted_run() {
    let st = setup();
    let ev = Evaluator::new(config(&st.dir, 24), 0).unwrap();
    let full = run_search(
        &ev,
        &st.dir.join("full"),
        &SearchOptions { resume: false, quiet: true, max_generations_this_run: None },
    )
    .unwrap();
    let part = st.dir.join("part");
    let first =
        run_search(&ev, &part, &SearchOptions { resume: false, quiet: true, max_generations_this_run: Some(2) })
            .unwrap();
    assert_eq!(first.history.len(), 12);
    // A fresh evaluator, as a new process would have.
    let ev2 = Evaluator::new(config(&st.dir, 24), 0).unwrap();
    let resumed =
        run_search(&ev2, &part, &SearchOptions { resume: true, quiet: true, max_generations_this_run: None }).unwrap();
    assert_eq!(resumed.history.len(), full.history.len());
    for (a, b) in full.history.iter().zip(&resumed.history) {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.genome), bits(&b.genome), "gen {} #{}", a.generation, a.index);
        assert_eq!(a.score.fitness.to_bits(), b.score.fitness.to_bits());
    }
    let js = |s: &llmtool::evolve::SearchState| serde_json::to_string(&s.cmaes).unwrap();
    assert_eq!(js(&full), js(&resumed));
}

#[test]
fn cli_best_yml_reproduces_the_best_model_bit_for_bit() {
    let st = setup();
    let cfg = st.dir.join("evolve.yml");
    std::fs::write(&cfg, yaml(12)).unwrap();
    let out = st.dir.join("run");
    llmtool_ok(&["merge", "--evolve", "-q", s(&cfg), s(&out)]);
    for f in ["best.yml", "best.gguf", "history.csv", "fitness.svg", "checkpoint.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // A second run into the same dir without --resume/--force is refused.
    let again = llmtool(&["merge", "--evolve", "-q", s(&cfg), s(&out)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let re = st.dir.join("re.gguf");
    llmtool_ok(&["merge", "-q", s(&out.join("best.yml")), s(&re)]);
    let a = llmtool::model::Model::open(&out.join("best.gguf")).unwrap();
    let b = llmtool::model::Model::open(&re).unwrap();
    assert_eq!(a.tensors.tensor_infos(), b.tensors.tensor_infos());
    // The in-memory merge of the best genome, as the search evaluated it.
    let ev = Evaluator::new(EvolveConfig::load(&cfg).unwrap(), llmtool::cli::MERGE_DEFAULT_SEED).unwrap();
    let state: llmtool::evolve::SearchState =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint.json")).unwrap()).unwrap();
    let best = state.best().unwrap();
    let (_, mc) = ev.decode(&best.genome).unwrap();
    let mem = llmtool::merge::memory::merge_in_memory(&mc, &ev.cache, llmtool::cli::MERGE_DEFAULT_SEED).unwrap();
    for t in a.tensors.tensor_infos() {
        let x = a.tensors.tensor_bytes(&t.name).unwrap();
        assert_eq!(x, b.tensors.tensor_bytes(&t.name).unwrap(), "{}", t.name);
        assert_eq!(x, mem.tensors.tensor_bytes(&t.name).unwrap(), "{} (in memory)", t.name);
    }
    // eval-candidate gives the search's fitness for the same genome.
    let g: Vec<String> = best.genome.iter().map(|x| format!("{x:?}")).collect();
    let o = llmtool_ok(&["eval-candidate", s(&cfg), "--genome", &g.join(","), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["fitness"].as_f64().unwrap(), best.score.fitness);
}

#[test]
fn config_errors_name_the_key() {
    let dir = Path::new("/nonexistent");
    let err = |y: &str| EvolveConfig::parse(y, "e.yml", Some(dir)).unwrap_err().to_string();
    let base = "merge_method: linear\nmodels: [a, b]\nfitness: {perplexity: [{file: t.txt}]}\nsearch: {max_evals: 4}\n";
    assert!(EvolveConfig::parse(base, "e.yml", Some(dir)).is_ok());
    let e = err(&format!("{base}wieght: 1\n"));
    assert!(e.contains("wieght"), "{e}");
    let e = err(&base.replace("max_evals: 4", "max_evalz: 4"));
    assert!(e.contains("max_evalz"), "{e}");
    let e = err(&base.replace("linear", "passthrough"));
    assert!(e.contains("merge_method") && e.contains("passthrough"), "{e}");
    let e = err(&base.replace("linear", "ties"));
    assert!(e.contains("base_model"), "{e}");
    let e = err(&base.replace("{max_evals: 4}", "{sigma: 0.1}"));
    assert!(e.contains("budget"), "{e}");
    let e = err(&format!("{base}evolve: [density]\n"));
    assert!(e.contains("evolve") && e.contains("density"), "{e}");
    let e = err(&base.replace("fitness: {perplexity: [{file: t.txt}]}", "fitness: {}"));
    assert!(e.contains("fitness"), "{e}");
    // ties: weight + density per model and layer group.
    let t = EvolveConfig::parse(
        &format!("{}base_model: w\nlayer_groups: 3\n", base.replace("linear", "ties")),
        "e.yml",
        Some(dir),
    )
    .unwrap();
    assert_eq!(t.genome_len(), 3 * 2 * 2);
    assert_eq!(&t.initial_genome()[..4], &[0.5, 1.0, 0.5, 1.0]);
}

#[test]
fn layer_groups_give_one_parameter_set_per_group_of_layers() {
    let st = setup();
    let y = yaml(6).replace("models: [a, b]", "models: [a, b]\nlayer_groups: 2\nnormalize: false");
    let ev = Evaluator::new(EvolveConfig::parse(&y, "g.yml", Some(&st.dir)).unwrap(), 0).unwrap();
    assert_eq!(ev.cfg.genome_len(), 4);
    // Group 0 (layer 0): A only; group 1 (layer 1): B only.
    let (d, mc) = ev.decode(&[1.0, 0.0, 0.0, -1.0]).unwrap();
    assert!(d.yaml.contains("layer_range: [0, 1]") && d.yaml.contains("layer_range: [1, 2]"), "{}", d.yaml);
    assert_eq!(d.params.iter().map(|p| p.1).collect::<Vec<_>>(), vec![1.0, 0.0, 0.0, 1.0], "weights are |x|");
    let m = llmtool::merge::memory::merge_in_memory(&mc, &ev.cache, 0).unwrap();
    let a = llmtool::model::Model::open(&st.dir.join("a")).unwrap();
    let b = llmtool::model::Model::open(&st.dir.join("b")).unwrap();
    for (name, want) in [("blk.0.attn_q.weight", &a), ("blk.1.ffn_down.weight", &b), ("blk.1.attn_norm.weight", &b)] {
        assert_eq!(m.tensors.tensor_bytes(name).unwrap(), want.tensors.tensor_bytes(name).unwrap(), "{name}");
    }
    let e = ev.evaluate(&[0.5, 0.5, 0.5, 0.5]).unwrap();
    assert!(e.score.fitness.is_finite());
}

/// A fitness of a task (acc_norm) and a perplexity term: the components the search records for
/// its best candidate equal what `llmtool eval` and `llmtool perplexity` say of `best.gguf`,
/// and the fitness is their weighted sum (−ln PPL for the text).
#[test]
fn task_and_perplexity_fitness_match_the_eval_commands() {
    let st = setup();
    let task = root().join("examples/tasks/continuation.jsonl");
    let y = format!(
        "merge_method: linear\nmodels: [a, b]\nfitness:\n  tasks: [{{file: {}, metric: acc_norm, weight: 2.0}}]\n  \
         perplexity: [{{file: text.txt, weight: 0.5}}]\neval: {{ctx: 64, chunks: 2}}\n\
         search: {{max_evals: 6, population: 6, sigma: 0.3, seed: 2}}\n",
        task.display()
    );
    let cfg = st.dir.join("tp.yml");
    std::fs::write(&cfg, y).unwrap();
    let out = st.dir.join("tp");
    llmtool_ok(&["merge", "--evolve", "-q", s(&cfg), s(&out)]);
    let state: llmtool::evolve::SearchState =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint.json")).unwrap()).unwrap();
    let best = state.best().unwrap();
    let c = &best.score.components;
    assert_eq!(c.len(), 2);
    let best_gguf = out.join("best.gguf");
    let o = llmtool_ok(&["eval", s(&best_gguf), "--task", s(&task), "--json", "--quiet"]);
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let acc_norm = rep["overall"]["acc_norm"]["value"].as_f64().unwrap();
    let ci = c.iter().find(|c| c.name.starts_with("acc_norm:")).unwrap();
    assert_eq!(ci.value, acc_norm);
    let o = llmtool_ok(&[
        "perplexity",
        s(&best_gguf),
        "--text",
        s(&st.dir.join("text.txt")),
        "--ctx",
        "64",
        "--chunks",
        "2",
        "--json",
        "--quiet",
    ]);
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ppl = p["ppl"].as_f64().unwrap();
    let cp = c.iter().find(|c| c.name.starts_with("ppl:")).unwrap();
    assert!((cp.value / ppl - 1.0).abs() < 1e-9, "search {} vs perplexity command {ppl}", cp.value);
    let want = 2.0 * acc_norm - 0.5 * ppl.ln();
    assert!((best.score.fitness - want).abs() < 1e-9, "fitness {} vs {want}", best.score.fitness);
}

/// Every method the search supports runs end to end (the genome decodes to a config the merge
/// code accepts, the in-memory candidates evaluate), and `best.yml` reproduces `best.gguf`.
#[test]
fn every_evolvable_method_runs_and_its_best_yml_reproduces() {
    let st = setup();
    plus_minus(&st.dir, "w", 1.0, 0.0);
    std::fs::write(st.dir.join("wb.txt"), TEXT.repeat(8)).unwrap();
    let cases = [
        ("task_arithmetic", "base_model: w\nmodels: [a, b]\n"),
        ("ties", "base_model: w\nmodels: [a, b]\nevolve: [weight, density]\n"),
        ("dare_ties", "base_model: w\nmodels: [a, b]\nevolve: [weight, density]\n"),
        ("slerp", "base_model: a\nmodels: [a, b]\n"),
    ];
    for (method, models) in cases {
        let cfg = st.dir.join(format!("{method}.yml"));
        std::fs::write(
            &cfg,
            format!(
                "merge_method: {method}\n{models}fitness:\n  perplexity: [{{file: text.txt}}]\neval: {{ctx: 64, chunks: 1}}\n\
                 search: {{max_evals: 6, population: 6, sigma: 0.2, seed: 3}}\n"
            ),
        )
        .unwrap();
        let out = st.dir.join(format!("run-{method}"));
        let o = llmtool(&["merge", "--evolve", "-q", s(&cfg), s(&out)]);
        assert!(o.status.success(), "{method}: {}", String::from_utf8_lossy(&o.stderr));
        let best_yml = std::fs::read_to_string(out.join("best.yml")).unwrap();
        assert!(best_yml.contains(&format!("merge_method: {method}")), "{method}: {best_yml}");
        let re = st.dir.join(format!("re-{method}.gguf"));
        llmtool_ok(&["merge", "-q", s(&out.join("best.yml")), s(&re)]);
        let a = llmtool::model::Model::open(&out.join("best.gguf")).unwrap();
        let b = llmtool::model::Model::open(&re).unwrap();
        assert_eq!(a.tensors.tensor_infos(), b.tensors.tensor_infos(), "{method}");
        for t in a.tensors.tensor_infos() {
            assert_eq!(
                a.tensors.tensor_bytes(&t.name).unwrap(),
                b.tensors.tensor_bytes(&t.name).unwrap(),
                "{method}: {}",
                t.name
            );
        }
        let csv = std::fs::read_to_string(out.join("history.csv")).unwrap();
        assert_eq!(csv.lines().count(), 7, "{method}: 6 evaluations");
    }
}
