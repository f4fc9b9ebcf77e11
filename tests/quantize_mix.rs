//! `llmtool quantize --target-size/--target-bpw --calibration TEXT` on the real model: the
//! size budget is met, `--save-mix` lines reproduce the same bytes with an ordinary
//! `quantize --keep`, a saved sensitivity table gives the same file, and the output runs on
//! the core. Kept small: per-kind calibration, 2 windows of 64 tokens, three candidate types.

mod common;

use std::path::Path;

use common::{llmtool, llmtool_ok, real_model, wiki_text};

const CANDIDATES: &[&str] = &["Q4_0", "Q5_0", "Q8_0"];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn imatrix() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/imatrix/smollm2-q4_1-wiki4.gguf")
}

/// The `PATTERN=TYPE` lines of a saved mix, and the base type its header names.
fn read_mix(path: &Path) -> (Vec<String>, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let base = text
        .lines()
        .find_map(|l| l.split("--type ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .expect("reproduce line with --type")
        .to_string();
    let lines = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(String::from).collect();
    (lines, base)
}

/// The small calibration of these tests: per kind, 2 windows of 64 tokens, the fixture imatrix.
fn calib_args(text: &Path, im: &Path, candidates: &str) -> Vec<String> {
    let a = ["--calibration", s(text), "--calib-groups", "kind", "--calib-chunks", "2", "--calib-ctx", "64"];
    let mut v: Vec<String> = a.iter().map(|x| x.to_string()).collect();
    v.extend(["--candidates", candidates, "--imatrix", s(im)].map(String::from));
    v
}

fn ppl(model: &Path) -> f64 {
    let o = llmtool_ok(&[
        "perplexity",
        s(model),
        "--text",
        s(&wiki_text()),
        "--ctx",
        "64",
        "--chunks",
        "4",
        "--json",
        "-q",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["ppl"].as_f64().unwrap()
}

#[test]
fn target_size_mix_meets_budget_reproduces_and_runs() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let (out, mix, table) = (dir.path().join("mix.gguf"), dir.path().join("mix.txt"), dir.path().join("sens.json"));
    let budget: u64 = 95_000_000;
    let (im, text) = (imatrix(), wiki_text());
    let calib = calib_args(&text, &im, &CANDIDATES.join(","));
    let common_args: Vec<&str> = calib.iter().map(String::as_str).collect();
    let size = budget.to_string();
    let mut args = vec!["quantize", s(&model), s(&out), "--target-size", &size];
    args.extend_from_slice(&common_args);
    args.extend_from_slice(&["--save-mix", s(&mix), "--save-sensitivity", s(&table)]);
    let o = llmtool_ok(&args);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("mix for") && log.contains("predicted mean KLD"), "{log}");

    // The budget is met, and used: within 2 % below it.
    let written = std::fs::metadata(&out).unwrap().len();
    assert!(written <= budget && written as f64 > 0.98 * budget as f64, "{written} vs budget {budget}");

    // One line per quantizable tensor (7 per layer × 30 + token_embd), candidate types only,
    // and more than one type chosen (the budget lies between all-Q4_0 and all-Q8_0).
    let (lines, base) = read_mix(&mix);
    assert_eq!(lines.len(), 30 * 7 + 1, "{lines:?}");
    let types: std::collections::BTreeSet<&str> = lines.iter().map(|l| l.rsplit_once('=').unwrap().1).collect();
    assert!(types.iter().all(|t| CANDIDATES.contains(t)) && types.len() > 1, "{types:?}");

    // An ordinary quantize with the lines as --keep (and as --keep-file) writes the same bytes.
    let again = dir.path().join("again.gguf");
    let mut args = vec!["quantize", s(&model), s(&again), "--type", &base, "--imatrix", s(&im), "-q"];
    for l in &lines {
        args.extend_from_slice(&["--keep", l]);
    }
    llmtool_ok(&args);
    let expected = std::fs::read(&out).unwrap();
    assert!(std::fs::read(&again).unwrap() == expected, "--keep lines reproduce the mix");
    llmtool_ok(&[
        "quantize",
        s(&model),
        s(&again),
        "--type",
        &base,
        "--imatrix",
        s(&im),
        "--keep-file",
        s(&mix),
        "--force",
        "-q",
    ]);
    assert!(std::fs::read(&again).unwrap() == expected, "--keep-file reproduces the mix");

    // The saved table gives the same choice without measuring again.
    let reused = dir.path().join("reused.gguf");
    let mut args = vec!["quantize", s(&model), s(&reused), "--target-size", &size, "--sensitivity", s(&table), "-q"];
    args.extend_from_slice(&common_args);
    llmtool_ok(&args);
    assert!(std::fs::read(&reused).unwrap() == expected, "--sensitivity reproduces the mix");

    // A larger budget (by bpw) from the same table: bigger file.
    let big = dir.path().join("big.gguf");
    let mut args = vec!["quantize", s(&model), s(&big), "--target-bpw", "7.5", "--sensitivity", s(&table), "-q"];
    args.extend_from_slice(&common_args);
    llmtool_ok(&args);
    assert!(std::fs::metadata(&big).unwrap().len() > written);

    // The output runs on the core, close to the input's perplexity (Q4_1 weights re-quantized
    // to ≥ 4.5-bit types).
    let (p_in, p_out) = (ppl(&model), ppl(&out));
    assert!(p_out.is_finite() && p_out < 1.5 * p_in, "PPL {p_out} vs input {p_in}");
}

#[test]
fn mix_errors_are_clear() {
    let model = real_model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    // Without a calibration text (clap).
    let o = llmtool(&["quantize", s(&model), s(&out), "--target-bpw", "5"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--calibration"));
    // --type and a target together.
    let text = wiki_text();
    let o = llmtool(&["quantize", s(&model), s(&out), "-t", "Q4_0", "--target-bpw", "5", "--calibration", s(&text)]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    // A budget below every tensor at its smallest type: refused before anything is written.
    let im = imatrix();
    let calib = calib_args(&text, &im, "Q4_0,Q8_0");
    let mut args = vec!["quantize", s(&model), s(&out), "--target-size", "10M", "-q"];
    args.extend(calib.iter().map(String::as_str));
    let o = llmtool(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("smallest reachable size"), "{err}");
    assert!(!out.exists());
    // An unknown candidate.
    let o = llmtool(&[
        "quantize",
        s(&model),
        s(&out),
        "--target-bpw",
        "5",
        "--calibration",
        s(&text),
        "--candidates",
        "Q9_9",
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not a candidate type"));
}

/// The calibration's in-memory base (`BaseFile::compute`) is the file `save_base` writes: the
/// same KL divergence of a perturbed model against either.
#[test]
fn in_memory_base_equals_saved_base() {
    use llmtool::eval::{kl_divergence, save_base, Base, BaseFile, PplOptions};
    use llmtool::infer::InferModel;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = llmtool::model::Model::open(&root.join("fixtures/models/llama")).unwrap();
    let im = InferModel::load(&model).unwrap();
    let tokens: Vec<u32> = (0..96u32).map(|i| (i * 37 + 5) % 379).collect();
    let opts = PplOptions { n_ctx: 32, n_chunks: Some(3), batch: 32, bos: None };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.logits");
    save_base(&im, &tokens, &opts, &path).unwrap();
    let (saved, mem) = (BaseFile::read(&path).unwrap(), BaseFile::compute(&im, &tokens, &opts).unwrap());
    assert_eq!((saved.n_ctx, saved.n_vocab, saved.n_chunk), (mem.n_ctx, mem.n_vocab, mem.n_chunk));
    assert_eq!(saved.tokens, mem.tokens);
    // the model scored against each (windows from the base): identical rows, identical figures
    let a = kl_divergence(&im, Base::File(&saved), &[], &opts, |_, _, _| {}).unwrap();
    let b = kl_divergence(&im, Base::File(&mem), &[], &opts, |_, _, _| {}).unwrap();
    assert!(a.kld_mean.abs() < 1e-3, "a model against its own base: {}", a.kld_mean);
    assert_eq!(a.kld_mean, b.kld_mean);
    assert_eq!(a.ppl, b.ppl);
}

/// Issue 17: the mix as a library pass over a stage held in memory (an F16 convert of a
/// fixture, never written) and chained with `Pipeline`, its calibration imatrix computed on
/// that stage, gives the bytes `quantize --target-bpw` writes from the converted file.
#[test]
fn the_mix_pass_in_memory_gives_the_command_bytes() {
    use llmtool::model::Model;
    use llmtool::pipeline::{
        write_gguf, Convert, MixImatrix, MixOptions, MixTarget, Pipeline, QuantizeMix, Stage, WriteOptions,
    };

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wiki = std::fs::read_to_string(wiki_text()).unwrap();
    let calib = d.join("calib.txt");
    std::fs::write(&calib, &wiki[..20_000]).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/llama");
    // By command: convert, then the mix (its imatrix computed and saved beside the output).
    let f16 = d.join("f16.gguf");
    llmtool_ok(&["convert", s(&fixture), s(&f16), "--outtype", "f16", "-q"]);
    let by_command = d.join("cmd.gguf");
    let a = ["quantize", s(&f16), s(&by_command), "--target-bpw", "6", "--calibration", s(&calib)];
    llmtool_ok(&[&a[..], &["--calib-chunks", "2", "--calib-ctx", "32", "-q"]].concat());
    // In memory: the same imatrix path recorded (it names the command's), nothing saved.
    let model = Model::open(&fixture).unwrap();
    let imatrix = MixImatrix::Computed { path: by_command.with_extension("imatrix.gguf"), save: false };
    let mut opts = MixOptions::new(MixTarget::Bpw(6.0), &calib, imatrix);
    (opts.calib_chunks, opts.calib_ctx) = (2, 32);
    let convert = Convert::parse(Some("f16")).unwrap();
    let pipeline = Pipeline::new(vec![Box::new(convert), Box::new(QuantizeMix::new(opts))]);
    let in_memory = d.join("mem.gguf");
    type Error = Box<dyn std::error::Error>;
    let mut end =
        |last: Stage<'_>| -> Result<u64, Error> { Ok(write_gguf(last, &in_memory, &WriteOptions::default())?) };
    pipeline.run(Stage::of(&model), &mut |_, _, _| Ok::<(), Error>(()), &mut end).unwrap();
    assert!(std::fs::read(&in_memory).unwrap() == std::fs::read(&by_command).unwrap(), "pass != command");
}
