//! The distributed `merge --evolve` pieces on the tiny fixture landscape
//! (common::evolve_fixture): the persistent `eval-worker` (protocol, bad lines, EOF) and the
//! ask/tell/finish commands, which must reach exactly the in-process search's result (same
//! history, byte-identical best.yml and best.gguf) whatever order the candidates are evaluated
//! and reported in, and hand a run over to `merge --evolve --resume` and back.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::evolve_fixture::{assert_same_run, bits, setup, state_of, yaml};
use common::*;
use llmtool::evolve::search::Evaluator;
use llmtool::evolve::EvolveConfig;
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(cfg: &Path, id: &str) -> (Worker, Value) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_llmtool"))
            .args(["eval-worker", s(cfg), "--worker-id", id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut w = Worker { child, stdin, stdout };
        let ready = w.read();
        (w, ready)
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("worker wrote {line:?}: {e}"))
    }

    /// Sends one line and returns the raw record line.
    fn ask(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut out = String::new();
        self.stdout.read_line(&mut out).unwrap();
        out
    }

    fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

#[test]
fn worker_scores_like_the_search_and_survives_bad_lines() {
    let st = setup();
    let cfg = st.dir.join("evolve.yml");
    std::fs::write(&cfg, yaml(12)).unwrap();
    let (mut w, ready) = Worker::start(&cfg, "w-test");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["worker"], "w-test");
    assert_eq!(ready["genome_len"], 2);
    assert!(ready["load_seconds"].as_f64().unwrap() >= 0.0);

    let ev = Evaluator::new(EvolveConfig::load(&cfg).unwrap(), llmtool::cli::MERGE_DEFAULT_SEED).unwrap();
    let genome = [0.7 + 1e-17, -0.3];
    let want = ev.evaluate(&genome).unwrap();
    let req = llmtool::evolve::protocol::request_line(3, 4, &genome);
    let mut v: Value = serde_json::from_str(&req).unwrap();
    v["id"] = "job-1".into();
    let rec = w.ask(&v.to_string());
    let r: Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(r["ok"], true, "{rec}");
    assert_eq!((r["generation"].as_u64(), r["index"].as_u64(), &r["id"]), (Some(3), Some(4), &Value::from("job-1")));
    assert_eq!(r["worker"], "w-test");
    assert_eq!(r["fitness"].as_f64().unwrap(), want.score.fitness);
    let row = llmtool::evolve::protocol::parse_record(&rec).unwrap();
    assert_eq!(row.score.fitness.to_bits(), want.score.fitness.to_bits());
    assert_eq!(bits(&row.genome), bits(&genome));
    let comps = r["score"]["components"].as_array().unwrap();
    assert_eq!(comps.len(), 1);
    assert!(comps[0]["name"].as_str().unwrap().starts_with("ppl:"));
    let params: Vec<(String, f64)> = row.params.iter().map(|(k, v)| (k.clone(), v.parse().unwrap())).collect();
    assert_eq!(params, want.decoded.params);
    assert!(row.seconds > 0.0);

    // Bad lines: each gets an error record naming what was wrong; the worker reads on.
    for (line, says) in [
        ("{not json", "not JSON"),
        ("{\"index\": 2, \"genome\": [\"0.5\"]}", "genome has 1 values, expected 2"),
        ("{\"index\": 1, \"genome\": [\"0.5\", \"nan\"]}", "not a finite number"),
        ("{\"genome\": \"0.5,0.5\"}", "\"genome\" array"),
    ] {
        let r: Value = serde_json::from_str(&w.ask(line)).unwrap();
        assert_eq!(r["ok"], false, "{line}");
        let e = r["error"].as_str().unwrap();
        assert!(e.contains(says), "{line}: {e}");
        assert_eq!(r["worker"], "w-test");
    }
    // A bare array after the errors is still scored, identically.
    let r: Value = serde_json::from_str(&w.ask("[\"0.7\", \"-0.3\"]")).unwrap();
    assert_eq!(r["ok"], true);
    let again = ev.evaluate(&[0.7, -0.3]).unwrap();
    assert_eq!(r["fitness"].as_f64().unwrap(), again.score.fitness);
    let status = w.close();
    assert!(status.success(), "EOF ends the worker cleanly: {status:?}");
}

/// Runs one generation through ask → worker(s) → tell, evaluating in reverse order and
/// writing the records shuffled (plus one stale record of an earlier generation and one
/// duplicate), as an asynchronous pool would. Returns false when ask printed nothing.
fn step(cfg: &Path, state: &Path, w: &mut Worker, results: &Path) -> bool {
    let o = llmtool_ok(&["evolve", "ask", s(cfg), "--state", s(state)]);
    let asked = String::from_utf8(o.stdout).unwrap();
    if asked.trim().is_empty() {
        return false;
    }
    // Asking again before tell gives the same candidates.
    let o = llmtool_ok(&["evolve", "ask", s(cfg), "--state", s(state)]);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), asked);
    let mut recs: Vec<String> = asked.lines().rev().map(|l| w.ask(l).trim_end().to_string()).collect();
    recs.swap(0, 2);
    let dup = recs[1].clone();
    recs.push(dup);
    let mut text = std::fs::read_to_string(results).unwrap_or_default();
    text.push_str(&recs.join("\n"));
    text.push('\n');
    std::fs::write(results, &text).unwrap();
    let o = llmtool_ok(&["evolve", "tell", s(cfg), "--state", s(state), s(results)]);
    let status: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(status["evaluations"].as_u64().unwrap() > 0);
    true
}

#[test]
fn ask_tell_finish_equal_the_in_process_search_and_hand_over_both_ways() {
    let st = setup();
    let cfg = st.dir.join("evolve.yml");
    std::fs::write(&cfg, yaml(18)).unwrap();
    let reference = st.dir.join("in-process");
    llmtool_ok(&["merge", "--evolve", "-q", s(&cfg), s(&reference)]);
    assert_eq!(state_of(&reference).history.len(), 18);

    // Entirely through ask/tell.
    let (mut w, _) = Worker::start(&cfg, "w0");
    let ext = st.dir.join("ask-tell");
    let results = st.dir.join("results.jsonl");
    let mut generations = 0;
    while step(&cfg, &ext, &mut w, &results) {
        generations += 1;
    }
    assert_eq!(generations, 3);
    // tell without a pending ask is refused; finish writes the outputs.
    let o = llmtool(&["evolve", "tell", s(&cfg), "--state", s(&ext), s(&results)]);
    assert!(!o.status.success());
    llmtool_ok(&["evolve", "finish", "-q", s(&cfg), "--state", s(&ext)]);
    assert_same_run(&reference, &ext);

    // Ask/tell for one generation, then the in-process search resumes the same state.
    let half = st.dir.join("half");
    let results2 = st.dir.join("results2.jsonl");
    assert!(step(&cfg, &half, &mut w, &results2));
    // Asked but not told: the in-process search evaluates the pending candidates itself.
    llmtool_ok(&["evolve", "ask", s(&cfg), "--state", s(&half)]);
    llmtool_ok(&["merge", "--evolve", "--resume", "-q", s(&cfg), s(&half)]);
    assert_same_run(&reference, &half);

    // In-process for one generation (population 6 of max_evals 6), then ask/tell continues.
    let back = st.dir.join("back");
    let six = cfg.with_file_name("six.yml");
    std::fs::write(&six, yaml(6)).unwrap();
    llmtool_ok(&["merge", "--evolve", "-q", s(&six), s(&back)]);
    let results3 = st.dir.join("results3.jsonl");
    let mut generations = 0;
    while step(&cfg, &back, &mut w, &results3) {
        generations += 1;
    }
    assert_eq!(generations, 2);
    llmtool_ok(&["evolve", "finish", "-q", s(&cfg), "--state", s(&back)]);
    assert_same_run(&reference, &back);
    assert!(w.close().success());
}

#[test]
fn tell_refuses_results_that_are_not_the_asked_candidates() {
    let st = setup();
    let cfg = st.dir.join("evolve.yml");
    std::fs::write(&cfg, yaml(12)).unwrap();
    let dir = st.dir.join("state");
    let o = llmtool_ok(&["evolve", "ask", s(&cfg), "--state", s(&dir)]);
    let asked: Vec<String> = String::from_utf8(o.stdout).unwrap().lines().map(String::from).collect();
    assert_eq!(asked.len(), 6);
    let (mut w, _) = Worker::start(&cfg, "w1");
    let recs: Vec<String> = asked.iter().map(|l| w.ask(l).trim_end().to_string()).collect();
    let tell = |text: &str| {
        let f = st.dir.join("r.jsonl");
        std::fs::write(&f, text).unwrap();
        let o = llmtool(&["evolve", "tell", s(&cfg), "--state", s(&dir), s(&f)]);
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    // A missing candidate.
    let (ok, err) = tell(&recs[..5].join("\n"));
    assert!(!ok && err.contains("no result for candidates [5]"), "{err}");
    // Another genome under an asked index.
    let other: Value = serde_json::from_str(&w.ask("{\"index\": 5, \"genome\": [\"0.5\", \"0.5\"]}")).unwrap();
    let mut bad = recs[..5].to_vec();
    bad.push(other.to_string());
    let (ok, err) = tell(&bad.join("\n"));
    assert!(!ok && err.contains("another genome"), "{err}");
    // A failed evaluation is not a fitness.
    let mut failed = recs[..5].to_vec();
    failed.push(
        "{\"generation\": 0, \"index\": 5, \"ok\": false, \"error\": \"out of memory\", \"worker\": \"n3\"}".into(),
    );
    let (ok, err) = tell(&failed.join("\n"));
    assert!(!ok && err.contains("out of memory") && err.contains("n3"), "{err}");
    // A generation not asked yet.
    let mut future: Value = serde_json::from_str(&recs[0]).unwrap();
    future["generation"] = 1.into();
    let (ok, err) = tell(&format!("{}\n{future}", recs.join("\n")));
    assert!(!ok && err.contains("not asked yet"), "{err}");
    // The state was left as it was: the right records are still accepted.
    let (ok, err) = tell(&recs.join("\n"));
    assert!(ok, "{err}");
    assert_eq!(state_of(&dir).history.len(), 6);
    // A config of another genome length does not match the state.
    let other_cfg = st.dir.join("groups.yml");
    std::fs::write(&other_cfg, yaml(12).replace("models: [a, b]", "models: [a, b]\nlayer_groups: 2")).unwrap();
    let o = llmtool(&["evolve", "ask", s(&other_cfg), "--state", s(&dir)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match"));
    assert!(w.close().success());
}

/// The fitness reads task files as `llmtool eval` does: an lm-evaluation-harness sample export
/// and the built-in NLI template of the same items score the same.
#[test]
fn fitness_accepts_lm_eval_exports_and_the_builtin_nli_template() {
    let st = setup();
    let tasks = root().join("examples/tasks");
    let y = format!(
        "merge_method: linear\nmodels: [a, b]\nfitness:\n  tasks:\n    - {{file: {}, metric: acc_norm, limit: 4}}\n    \
         - {{file: {}, metric: acc_norm, limit: 4}}\neval: {{ctx: 64, chunks: 2}}\nsearch: {{max_evals: 6}}\n",
        tasks.join("nli_lm_eval_samples.jsonl").display(),
        tasks.join("nli_builtin.jsonl").display()
    );
    let ev = Evaluator::new(EvolveConfig::parse(&y, "t.yml", Some(&st.dir)).unwrap(), 0).unwrap();
    let e = ev.evaluate(&[0.5, 0.5]).unwrap();
    let c = &e.score.components;
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].name, "acc_norm:nli_lm_eval_samples.jsonl");
    assert_eq!(c[1].name, "acc_norm:nli_builtin.jsonl");
    assert_eq!(c[0].value.to_bits(), c[1].value.to_bits());
    assert!((0.0..=1.0).contains(&c[0].value));
    assert_eq!(e.score.fitness, c[0].contribution + c[1].contribution);
}
