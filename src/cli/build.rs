//! `llmtool build RECIPE.yml`: runs a recipe's steps (each one of llmtool's own passes, run
//! in-process with the same arguments a user would give), validates every step's output
//! against its input on the built-in core, stops at the first failed gate, and writes the
//! outputs only when every step passed. Step results live in a content-addressed cache, so
//! a rebuild skips unchanged steps (and their evaluation).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::output::{write_hf_from_gguf_form, OutputOptions};
use crate::build::cache::{step_key, Hash, HashMemo};
use crate::build::recipe::{
    needs_imatrix, Caching, ChatVectorStep, ImatrixCompute, ImatrixSpec, Loaded, MergeStep, QuantizeStep, Step,
};
use crate::build::report::{BuildReport, Figures, StepRecord};
use crate::eval::validate::{measure_stage, read_text, Scored, TaskAccuracy, Windows};
use crate::export::layout::{LmStudioOptions, LmStudioPlan, OllamaOptions, OllamaPlan, Source};
use crate::model::Model;
use crate::passes::chatvector::SkipRules;
use crate::passes::quantize::{FileType, Override};
use crate::pipeline::{
    compute_imatrix, gguf_header, write_gguf, ChatVector, ChatVectorOptions, Convert, ImatrixOptions, Lora, Merge,
    MergeOptions, MixImatrix, MixOptions, MixTarget, Moe, MoeOptions, Output, Pass, Pipeline, PipelineError, Quantize,
    QuantizeMix, QuantizeOptions, Stage, WriteOptions, MERGE_DEFAULT_SEED, MOE_DEFAULT_SEED,
};
use llmtool_formats::imatrix::Imatrix;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The recipe (YAML; see README "Pre-deployment builds").
    pub recipe: PathBuf,
    /// Print the plan (steps, cache keys, cache hits) and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Recompute every step even when its result is cached.
    #[arg(long)]
    pub no_cache: bool,
    /// Which step results go to the cache (overrides the recipe's `caching`): `per-step`
    /// (default), `final` (steps chained in memory, the last result cached) or `off`
    /// (chained in memory, written once to outputs.gguf).
    #[arg(long, value_enum, value_name = "MODE")]
    pub caching: Option<Caching>,
    /// Print the report as JSON on stdout instead of the Markdown table.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

/// One step, resolved: what it reads and where its result goes.
struct Planned {
    index: usize,
    step: Step,
    description: String,
    key: Hash,
    input: PathBuf,
    dir: PathBuf,
    artifact: PathBuf,
    /// The importance matrix a quantize step uses.
    imatrix: Option<ImatrixPlan>,
}

/// A quantize step's imatrix: a given file, or one computed on the step's input (cached
/// under its own key, so a change of file type reuses it).
struct ImatrixPlan {
    path: PathBuf,
    /// The file's content hash, or for a computed one the key of its inputs and settings.
    key: Hash,
    compute: Option<ImatrixCompute>,
}

impl Planned {
    fn cached(&self) -> bool {
        self.artifact.is_file()
    }
}

pub fn run(args: BuildArgs) -> Result<()> {
    let started = Instant::now();
    let loaded = Loaded::open(&args.recipe, |t| FileType::parse(t).is_some())?;
    if let Some(v) = &loaded.recipe.validate {
        read_tasks(&v.tasks).with_context(|| format!("{}: validate.tasks", loaded.path.display()))?;
    }
    std::fs::create_dir_all(&loaded.cache_dir)
        .with_context(|| format!("creating the cache {}", loaded.cache_dir.display()))?;
    let mut memo = HashMemo::load(&loaded.cache_dir);
    let start_path = loaded.recipe.inputs[&loaded.start].clone();
    let start_hash = memo.hash_path(&start_path)?;
    let plan = plan(&loaded, &mut memo, &start_hash)?;
    memo.save();
    let eval_key = eval_key(&loaded, &mut memo)?;
    memo.save();

    if args.dry_run {
        print_plan(&loaded, &plan, &eval_key, args.no_cache);
        return Ok(());
    }

    let v = loaded.recipe.validate.clone();
    let (n_ctx, n_chunks) = v.as_ref().map_or((0, 0), |v| (v.ctx, v.chunks));
    let mut report = BuildReport {
        recipe: loaded.path.clone(),
        llmtool_version: crate::build::cache::TOOL_VERSION.to_string(),
        passed: false,
        failure: None,
        validate_text: v.as_ref().and_then(|v| v.text.clone()),
        n_ctx,
        n_chunks,
        steps: Vec::new(),
        outputs: Vec::new(),
        seconds: 0.0,
    };
    let start_model = Model::open(&start_path).with_context(|| format!("opening {}", start_path.display()))?;
    report.steps.push(StepRecord {
        index: 0,
        kind: "input".into(),
        description: format!("input '{}'", loaded.start),
        key: start_hash.clone(),
        cached: true,
        seconds: 0.0,
        artifact: start_path.clone(),
        size_bytes: model_size(&start_path),
        bits_per_weight: bits_per_weight(&start_model),
        figures: Figures::default(),
        gate_failures: Vec::new(),
    });
    drop(start_model);

    let caching = args.caching.or(loaded.recipe.caching).unwrap_or_default();
    let outcome = match caching {
        Caching::PerStep => {
            run_steps(&args, &loaded, &plan, eval_key.as_deref(), args.no_cache, &mut report).map(|_| None)
        }
        mode => run_streamed(&args, &loaded, &plan, eval_key.as_deref(), mode, &mut report),
    };
    if let Err(e) = &outcome {
        report.failure = Some(format!("{e:#}"));
    } else {
        let written = outcome.as_ref().ok().cloned().flatten();
        match write_outputs(&loaded, &plan, written.as_deref(), args.quiet) {
            Ok(outputs) => {
                report.outputs = outputs;
                report.passed = true;
                if deploy_outputs(&loaded).next().is_some() {
                    // The model cards of the deployment layouts carry this report's table.
                    report.seconds = started.elapsed().as_secs_f64();
                    report
                        .write(&loaded.report_dir)
                        .with_context(|| format!("writing the report to {}", loaded.report_dir.display()))?;
                    match write_deploy_outputs(&loaded, &plan, args.quiet) {
                        Ok(more) => report.outputs.extend(more),
                        Err(e) => {
                            report.passed = false;
                            report.failure = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            Err(e) => report.failure = Some(format!("{e:#}")),
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
        .write(&loaded.report_dir)
        .with_context(|| format!("writing the report to {}", loaded.report_dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.markdown());
        eprintln!("report: {}", loaded.report_dir.join("report.md").display());
    }
    match report.failure {
        Some(f) => bail!("build failed: {f}"),
        None => Ok(()),
    }
}

/// Resolves every step: its input (the previous result), its cache key, its artifact path.
fn plan(loaded: &Loaded, memo: &mut HashMemo, start_hash: &Hash) -> Result<Vec<Planned>> {
    let r = &loaded.recipe;
    let mut prev_path = r.inputs[&loaded.start].clone();
    let mut prev_hash = start_hash.clone();
    let mut out = Vec::with_capacity(r.steps.len());
    for (i, step) in r.steps.iter().enumerate() {
        let mut reads: Vec<(String, Hash)> = vec![("input".into(), prev_hash.clone())];
        let mut imatrix = None;
        let (config, description) = match step {
            Step::Convert(c) => {
                (json!({"outtype": c.outtype}), format!("convert {}", c.outtype.as_deref().unwrap_or("")))
            }
            Step::Quantize(q) => {
                imatrix = quantize_imatrix(loaded, q, memo, &prev_hash)?;
                let mut description = match q.target_bpw {
                    Some(b) => format!("quantize mix {b} bpw"),
                    None => format!("quantize {}", q.ty),
                };
                if let Some(c) = &q.calibration {
                    reads.push(("calibration".into(), memo.hash_path(c)?));
                }
                if let Some(im) = &imatrix {
                    reads.push(("imatrix".into(), im.key.clone()));
                    description += &match &im.compute {
                        Some(c) => format!(" (imatrix on {})", name_of(&c.text)),
                        None => format!(" (imatrix {})", name_of(&im.path)),
                    };
                }
                let mut key = json!({"type": q.ty, "keep": q.keep, "pure": q.pure});
                if let Some(b) = q.target_bpw {
                    key["target_bpw"] = json!(b);
                }
                (key, description)
            }
            Step::Lora(l) => {
                reads.push(("adapter".into(), memo.hash_path(&l.adapter)?));
                (json!({"scale": l.scale}), format!("lora {} ×{}", name_of(&l.adapter), l.scale))
            }
            Step::Chatvector(c) => {
                for (role, name) in [("base", &c.base), ("chat", &c.chat)] {
                    reads.push((role.into(), memo.hash_path(&r.inputs[name])?));
                }
                if let Some(t) = &c.target {
                    reads.push(("target".into(), memo.hash_path(&r.inputs[t])?));
                }
                (
                    json!({"ratio": c.ratio, "skip": c.skip, "template_from_chat": c.template_from_chat,
                           "target_given": c.target.is_some()}),
                    format!("chatvector ({} − {}) ×{}", c.chat, c.base, c.ratio),
                )
            }
            Step::Merge(m) | Step::Moe(m) => {
                reads.push(("config".into(), memo.hash_path(m.config())?));
                // Parsed by the command's own reader: a bad config fails before any work.
                let resolved = resolve_merge_config(loaded, m.config(), &prev_path)?;
                let (text, origin) = (yaml_serde::to_string(&resolved)?, m.config().display().to_string());
                let models = match step {
                    Step::Moe(_) => crate::moe_build::config::MoeConfig::parse(&text, &origin)?.referenced_models(),
                    _ => crate::merge::config::MergeConfig::parse(&text, &origin)?.referenced_models(),
                };
                for (j, model) in models.iter().enumerate() {
                    let h = if Path::new(model) == prev_path {
                        prev_hash.clone()
                    } else {
                        memo.hash_path(Path::new(model))?
                    };
                    reads.push((format!("model{j}"), h));
                }
                (json!({"seed": m.seed()}), format!("{} {}", step.kind(), name_of(m.config())))
            }
        };
        let reads_ref: Vec<(&str, &Hash)> = reads.iter().map(|(a, b)| (a.as_str(), b)).collect();
        let key = step_key(step.kind(), &config, &reads_ref);
        let dir = loaded.cache_dir.join(&key[..32]);
        let artifact = dir.join("model.gguf");
        out.push(Planned {
            index: i + 1,
            step: step.clone(),
            description,
            key: key.clone(),
            input: prev_path,
            dir,
            artifact: artifact.clone(),
            imatrix,
        });
        prev_path = artifact;
        prev_hash = key;
    }
    Ok(out)
}

/// The imatrix of a quantize step: `imatrix: FILE`, `imatrix: {text …}`, or for a file type
/// that needs one, computed on `validate.text` (20 windows of 512, as `{text}` defaults).
fn quantize_imatrix(
    loaded: &Loaded,
    q: &QuantizeStep,
    memo: &mut HashMemo,
    input: &Hash,
) -> Result<Option<ImatrixPlan>> {
    let compute = match &q.imatrix {
        Some(ImatrixSpec::File(f)) => {
            return Ok(Some(ImatrixPlan { path: f.clone(), key: memo.hash_path(f)?, compute: None }))
        }
        Some(ImatrixSpec::Compute(c)) => c.clone(),
        None if needs_imatrix(&q.ty) => {
            // Checked by the recipe loader: such a step has a validate.text.
            let text =
                loaded.recipe.validate.as_ref().and_then(|v| v.text.clone()).context("no text for the imatrix")?;
            ImatrixCompute { text, chunks: 20, ctx: 512 }
        }
        None => return Ok(None),
    };
    let text_hash = memo.hash_path(&compute.text)?;
    let key = step_key(
        "imatrix",
        &json!({"chunks": compute.chunks, "ctx": compute.ctx}),
        &[("input", input), ("text", &text_hash)],
    );
    let path = loaded.cache_dir.join(&key[..32]).join("imatrix.gguf");
    Ok(Some(ImatrixPlan { path, key, compute: Some(compute) }))
}

/// The key of the evaluation settings (text and task contents, ctx, chunks).
fn eval_key(loaded: &Loaded, memo: &mut HashMemo) -> Result<Option<Hash>> {
    let Some(v) = &loaded.recipe.validate else { return Ok(None) };
    let mut reads = Vec::new();
    if let Some(t) = &v.text {
        reads.push(("text".to_string(), memo.hash_path(t)?));
    }
    for (i, t) in v.tasks.iter().enumerate() {
        reads.push((format!("task{i}"), memo.hash_path(t)?));
    }
    let reads_ref: Vec<(&str, &Hash)> = reads.iter().map(|(a, b)| (a.as_str(), b)).collect();
    Ok(Some(step_key("validate", &json!({"ctx": v.ctx, "chunks": v.chunks}), &reads_ref)))
}

fn name_of(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn print_plan(loaded: &Loaded, plan: &[Planned], eval_key: &Option<Hash>, no_cache: bool) {
    println!("recipe {} (cache {})", loaded.path.display(), loaded.cache_dir.display());
    println!("  0  input '{}': {}", loaded.start, loaded.recipe.inputs[&loaded.start].display());
    for p in plan {
        let hit = p.cached() && !no_cache;
        let evaluated = eval_key.as_ref().is_some_and(|k| eval_file(p, k).is_file());
        let state = match (hit, eval_key.is_some(), evaluated) {
            (false, _, _) => "run",
            (true, false, _) | (true, true, true) => "cached",
            (true, true, false) => "cached (evaluation runs)",
        };
        println!("  {}  {:<40} key {}  {state}", p.index, p.description, &p.key[..16]);
    }
    if let Some(g) = &loaded.recipe.outputs.gguf {
        println!("  → {}", g.display());
    }
    if let Some(h) = &loaded.recipe.outputs.hf {
        println!("  → {} (HF)", h.display());
    }
}

fn eval_file(p: &Planned, eval_key: &str) -> PathBuf {
    p.dir.join(format!("eval-{}.json", &eval_key[..16]))
}

/// Runs `plan` one step at a time, each result a file in the cache (`caching: per-step`).
fn run_steps(
    args: &BuildArgs,
    loaded: &Loaded,
    plan: &[Planned],
    eval_key: Option<&str>,
    no_cache: bool,
    report: &mut BuildReport,
) -> Result<()> {
    let validate = loaded.recipe.validate.as_ref();
    for p in plan {
        let t0 = Instant::now();
        let cached = p.cached() && !no_cache;
        if !cached {
            if !args.quiet {
                eprintln!("step {}: {}", p.index, p.description);
            }
            std::fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
            run_step(loaded, p, no_cache, args.quiet)
                .with_context(|| format!("step {} ({})", p.index, p.description))?;
        } else if !args.quiet {
            eprintln!("step {}: {} (cached)", p.index, p.description);
        }
        let mut figures = Figures::default();
        if let (Some(v), Some(ek)) = (validate, eval_key) {
            let file = eval_file(p, ek);
            let saved = if no_cache { None } else { read_figures(&file) };
            figures = match saved {
                Some(f) => f,
                None => {
                    let f = measure(v, &p.input, &p.artifact, args.quiet)
                        .with_context(|| format!("evaluating step {} ({})", p.index, p.description))?;
                    write_figures(&file, &f)?;
                    f
                }
            };
        }
        let model = Model::open(&p.artifact).with_context(|| format!("opening {}", p.artifact.display()))?;
        let size = StageSize { size_bytes: model_size(&p.artifact), bits_per_weight: bits_per_weight(&model) };
        let seconds = t0.elapsed().as_secs_f64();
        record_step(args, loaded, p, (cached, seconds, p.artifact.clone()), size, figures, report)?;
    }
    Ok(())
}

/// Adds a step's row to the report (and, for the first step, its input's figures), then
/// checks its gates: the first failure stops the build. `run`: (cached, seconds, artifact).
fn record_step(
    args: &BuildArgs,
    loaded: &Loaded,
    p: &Planned,
    (cached, seconds, artifact): (bool, f64, PathBuf),
    size: StageSize,
    figures: Figures,
    report: &mut BuildReport,
) -> Result<()> {
    let validate = loaded.recipe.validate.as_ref();
    if p.index == 1 {
        start_figures(validate, &figures, report, args.quiet)?;
    }
    let gate_failures = validate.map(|v| gate_failures(&v.gates, &figures)).unwrap_or_default();
    report.steps.push(StepRecord {
        index: p.index,
        kind: p.step.kind().into(),
        description: p.description.clone(),
        key: p.key.clone(),
        cached,
        seconds,
        artifact,
        size_bytes: size.size_bytes,
        bits_per_weight: size.bits_per_weight,
        figures,
        gate_failures: gate_failures.clone(),
    });
    match gate_failures.first() {
        Some(first) => bail!("step {} ({}) failed its quality gate: {first}", p.index, p.description),
        None => Ok(()),
    }
}

/// Runs one step on its input file into its cache artifact through its library pass
/// ([`pass_of`]).
fn run_step(loaded: &Loaded, p: &Planned, no_cache: bool, quiet: bool) -> Result<()> {
    let pass = pass_of(loaded, p, no_cache, quiet)?;
    let model = Model::open(&p.input).with_context(|| format!("opening {}", p.input.display()))?;
    let out = pass.apply(Stage::of(&model))?;
    let opts = WriteOptions { force: true, quiet: true, label: pass.name() };
    write_gguf(out.stage(), &p.artifact, &opts)?;
    Ok(())
}

/// The library pass of a step: convert, lora, quantize (to a file type or a measured mix,
/// with an imatrix given, computed on the step's input or none), chatvector, merge and moe
/// (whose `current` is the step's input). `no_cache`: a computed imatrix is computed again
/// even when cached.
fn pass_of(loaded: &Loaded, p: &Planned, no_cache: bool, quiet: bool) -> Result<Box<dyn Pass>> {
    Ok(match &p.step {
        Step::Convert(c) => Box::new(Convert::parse(c.outtype.as_deref()).map_err(anyhow::Error::msg)?),
        Step::Lora(l) => {
            // The scale as `lora merge --scale` reads it: the recipe's number printed, parsed as f32.
            let scale: f32 = l.scale.to_string().parse()?;
            Box::new(Lora::open(&[(l.adapter.as_path(), scale)])?)
        }
        Step::Quantize(q) => Box::new(StepQuantize::new(p, q, no_cache, quiet)?),
        Step::Chatvector(c) => chatvector_pass(loaded, p, c)?,
        Step::Merge(m) => config_pass(loaded, p, m, false)?,
        Step::Moe(m) => config_pass(loaded, p, m, true)?,
    })
}

/// A chatvector step's pass, with the options `chatvector --ratio R --skip G
/// --template-from chat` would get; without a `target`, the step's input is the target.
fn chatvector_pass(loaded: &Loaded, p: &Planned, c: &ChatVectorStep) -> Result<Box<dyn Pass>> {
    let r = &loaded.recipe;
    // The ratio as `--ratio` reads it: the recipe's number printed, parsed as f32.
    let ratio: f32 = c.ratio.to_string().parse()?;
    let skips = SkipRules { globs: c.skip.clone(), default_skips: true, skip_norms: false };
    let opts = ChatVectorOptions {
        ratios: vec![ratio],
        skips,
        template_from_chat: c.template_from_chat,
        ..ChatVectorOptions::default()
    };
    let target = c.target.as_ref().map(|t| r.inputs[t].as_path());
    let pair = (r.inputs[&c.base].as_path(), r.inputs[&c.chat].as_path());
    Ok(Box::new(ChatVector::open(target, &[pair], &[], opts)?.naming_input(&p.input)))
}

/// A merge (`moe == false`) or moe step's pass over its mergekit config, whose `current` is
/// the step's input, with the seed `merge|moe --seed N` would get.
fn config_pass(loaded: &Loaded, p: &Planned, m: &MergeStep, moe: bool) -> Result<Box<dyn Pass>> {
    let resolved = resolve_merge_config(loaded, m.config(), &p.input)?;
    let (text, origin) = (yaml_serde::to_string(&resolved)?, m.config().display().to_string());
    let dir = m.config().parent().map(Path::to_path_buf);
    Ok(if moe {
        let mut cfg = crate::moe_build::config::MoeConfig::parse(&text, &origin)?;
        cfg.dir = dir;
        let opts = MoeOptions { seed: m.seed().unwrap_or(MOE_DEFAULT_SEED), ..MoeOptions::default() };
        Box::new(Moe::open_over(cfg, opts, Some(&p.input))?)
    } else {
        let mut cfg = crate::merge::config::MergeConfig::parse(&text, &origin)?;
        cfg.dir = dir;
        let opts = MergeOptions { seed: m.seed().unwrap_or(MERGE_DEFAULT_SEED), ..MergeOptions::default() };
        Box::new(Merge::open_over(cfg, opts, Some(&p.input))?)
    })
}

/// A recipe's quantize step as a pass: its imatrix resolved on the step's input (read from
/// the file given or cached, or computed on the input stage and cached), then [`Quantize`]
/// to the file type or [`QuantizeMix`] — as `imatrix` then `quantize` on the step's files.
struct StepQuantize {
    index: usize,
    quiet: bool,
    imatrix: Option<StepImatrix>,
    kind: QuantizeKind,
}

struct StepImatrix {
    path: PathBuf,
    /// Computed on the input (unless `reuse` and the file is there).
    compute: Option<ImatrixCompute>,
    reuse: bool,
}

enum QuantizeKind {
    Type(QuantizeOptions),
    /// The mix; a mix without an imatrix computes one on its calibration text, recorded (and
    /// saved) next to the artifact, as `quantize --target-bpw` does next to its output.
    Mix(MixOptions, PathBuf),
}

impl StepQuantize {
    fn new(p: &Planned, q: &QuantizeStep, no_cache: bool, quiet: bool) -> Result<Self> {
        let overrides = q.keep.iter().map(|k| Override::parse(k)).collect::<Result<Vec<_>, _>>()?;
        let kind = match (q.target_bpw, &q.calibration) {
            (Some(b), Some(c)) => {
                if !overrides.is_empty() {
                    bail!("--keep/--keep-file cannot be combined with --target-bpw/--target-size (the mix sets every tensor)");
                }
                let placeholder = MixImatrix::Computed { path: PathBuf::new(), save: false };
                let mut o = MixOptions::new(MixTarget::Bpw(b), c, placeholder);
                o.pure = q.pure;
                QuantizeKind::Mix(o, p.artifact.with_extension("imatrix.gguf"))
            }
            _ => {
                let mut o = QuantizeOptions::new(&q.ty).map_err(|_| {
                    anyhow::anyhow!("--type {}: unknown type; expected one of {}", q.ty, FileType::names())
                })?;
                o.pure = q.pure;
                o.overrides = overrides;
                QuantizeKind::Type(o)
            }
        };
        let imatrix = p.imatrix.as_ref().map(|im| StepImatrix {
            path: im.path.clone(),
            compute: im.compute.clone(),
            reuse: !no_cache,
        });
        Ok(StepQuantize { index: p.index, quiet, imatrix, kind })
    }

    /// The step's imatrix (its path and matrix), computed on `input` when it must be.
    fn imatrix(&self, input: Stage<'_>) -> Result<Option<(PathBuf, Imatrix)>, PipelineError> {
        let Some(im) = &self.imatrix else { return Ok(None) };
        let c = match &im.compute {
            Some(c) if !(im.reuse && im.path.is_file()) => c,
            _ => return Ok(Some((im.path.clone(), Imatrix::read(&im.path)?))),
        };
        if !self.quiet {
            eprintln!("step {}: imatrix of its input on {}", self.index, c.text.display());
        }
        // `llmtool imatrix INPUT --text T --chunks N --ctx C`: the text read whole, the
        // matrix naming the text as given.
        let text = read_text(&c.text)?;
        let opts = ImatrixOptions::new(c.ctx, Some(c.chunks));
        let run = compute_imatrix(input, &text, &c.text.display().to_string(), &opts, |_, _| {})?;
        create_parent(&im.path)?;
        run.imatrix.write_gguf(&im.path, true)?;
        Ok(Some((im.path.clone(), run.imatrix)))
    }
}

impl Pass for StepQuantize {
    fn name(&self) -> &'static str {
        "quantize"
    }

    fn apply<'a>(&'a self, input: Stage<'a>) -> Result<Output<'a>, PipelineError> {
        let imatrix = self.imatrix(input)?;
        let opts = match &self.kind {
            QuantizeKind::Type(o) => QuantizeOptions { imatrix, ..o.clone() },
            QuantizeKind::Mix(o, beside) => {
                let imatrix = match imatrix {
                    Some((path, im)) => MixImatrix::Given(path, im),
                    None => {
                        create_parent(beside)?;
                        MixImatrix::Computed { path: beside.clone(), save: true }
                    }
                };
                let mix = QuantizeMix::new(MixOptions { imatrix, ..o.clone() });
                let choice = mix.choose(input, &mut |_| {})?;
                choice.quantize_options(&mix.opts)
            }
        };
        Quantize::new(opts)?.into_output(input)
    }
}

/// The cache directory of a file a pass saves (an imatrix), made when missing.
fn create_parent(path: &Path) -> Result<(), PipelineError> {
    let Some(dir) = path.parent() else { return Ok(()) };
    std::fs::create_dir_all(dir)
        .map_err(|source| llmtool_formats::FormatError::Io { path: dir.to_path_buf(), source }.into())
}

/// `caching: final | off`: the steps after the resume point are chained in memory as
/// library passes — the input read once, each stage validated where it is, the last stage
/// written once. Returns the path the final result went to when that is `outputs.gguf`
/// (mode off).
fn run_streamed(
    args: &BuildArgs,
    loaded: &Loaded,
    plan: &[Planned],
    eval_key: Option<&str>,
    mode: Caching,
    report: &mut BuildReport,
) -> Result<Option<PathBuf>> {
    let no_cache = args.no_cache || mode == Caching::Off;
    let from = if no_cache { 0 } else { resume_point(plan, eval_key) };
    for p in &plan[..from] {
        if p.cached() {
            run_steps(args, loaded, std::slice::from_ref(p), eval_key, false, report)?;
        } else {
            replay_step(args, loaded, p, eval_key, report)?;
        }
    }
    if from == plan.len() {
        return Ok(None);
    }
    // Mode off writes the final result straight to outputs.gguf; mode final to the last
    // step's cache artifact (a rebuild resumes from it).
    let direct = match (&loaded.recipe.outputs.gguf, mode) {
        (Some(g), Caching::Off) => Some(g.clone()),
        _ => None,
    };
    let dest = direct.clone().unwrap_or_else(|| plan[plan.len() - 1].artifact.clone());
    stream_run(args, loaded, &plan[from..], eval_key, !no_cache, &dest, report)?;
    Ok(direct)
}

/// The size and bits per weight of a step result that was not written (`stage.json` in the
/// step's cache directory, next to its figures), so a resumed build can report the step.
#[derive(serde::Serialize, serde::Deserialize)]
struct StageSize {
    size_bytes: u64,
    bits_per_weight: f64,
}

fn stage_size_file(p: &Planned) -> PathBuf {
    p.dir.join("stage.json")
}

fn read_stage_size(p: &Planned) -> Option<StageSize> {
    serde_json::from_slice(&std::fs::read(stage_size_file(p)).ok()?).ok()
}

/// A chained build resumes after the latest step whose result is in the cache, when every
/// step up to it can be reported from the cache: its result or its recorded size, and its
/// figures. 0 when there is none.
fn resume_point(plan: &[Planned], eval_key: Option<&str>) -> usize {
    let reportable = |p: &Planned| {
        (p.cached() || read_stage_size(p).is_some()) && eval_key.is_none_or(|k| eval_file(p, k).is_file())
    };
    (0..plan.len()).rev().find(|&j| plan[j].cached() && plan[..=j].iter().all(reportable)).map_or(0, |j| j + 1)
}

/// Reports a step of a resumed chained build that was not written: its size and figures from
/// the cache, its gates checked again.
fn replay_step(
    args: &BuildArgs,
    loaded: &Loaded,
    p: &Planned,
    eval_key: Option<&str>,
    report: &mut BuildReport,
) -> Result<()> {
    let size = read_stage_size(p).context("internal: a resumed step without its record")?;
    let figures = match eval_key {
        Some(k) => read_figures(&eval_file(p, k)).context("internal: a resumed step without its figures")?,
        None => Figures::default(),
    };
    if !args.quiet {
        eprintln!("step {}: {} (cached figures)", p.index, p.description);
    }
    record_step(args, loaded, p, (true, 0.0, PathBuf::new()), size, figures, report)
}

/// The first step's KLD run also scored its input: that is the start model's PPL. The
/// start model's task accuracy is scored on its file.
fn start_figures(
    validate: Option<&crate::build::recipe::Validate>,
    figures: &Figures,
    report: &mut BuildReport,
    quiet: bool,
) -> Result<()> {
    if let Some(ppl_in) = figures.ppl.zip(figures.ppl_change_pct).map(|(o, c)| o / (1.0 + c / 100.0)) {
        report.steps[0].figures.ppl = Some(ppl_in);
    }
    if let Some(v) = validate.filter(|v| !v.tasks.is_empty()) {
        let start = &report.steps[0].artifact.clone();
        let (mean, per) = task_accuracy(&v.tasks, start, quiet)?;
        report.steps[0].figures.task_acc = Some(mean);
        report.steps[0].figures.task_accs = per;
    }
    Ok(())
}

/// One run of library passes over the file `run[0].input`: each stage validated against
/// the one before in memory, the last stage written to `dest`.
fn stream_run(
    args: &BuildArgs,
    loaded: &Loaded,
    run: &[Planned],
    eval_key: Option<&str>,
    use_cache: bool,
    dest: &Path,
    report: &mut BuildReport,
) -> Result<()> {
    let input = &run[0].input;
    let model = Model::open(input).with_context(|| format!("opening {}", input.display()))?;
    let passes = run.iter().map(|p| pass_of(loaded, p, !use_cache, args.quiet)).collect::<Result<_>>()?;
    let pipeline = Pipeline::new(passes);
    let validate = loaded.recipe.validate.as_ref();
    let text = match validate.and_then(|v| v.text.as_ref()) {
        Some(t) => Some(read_text(t)?),
        None => None,
    };
    let sets = match validate {
        Some(v) => read_tasks(&v.tasks)?,
        None => Vec::new(),
    };
    let mut t0 = Instant::now();
    pipeline.run(
        Stage::of(&model),
        &mut |k, before, after| -> Result<()> {
            let p = &run[k];
            if !args.quiet {
                eprintln!("step {}: {} (in memory)", p.index, p.description);
            }
            let mut figures = Figures::default();
            if let (Some(v), Some(ek)) = (validate, eval_key) {
                let file = eval_file(p, ek);
                figures = match read_figures(&file).filter(|_| use_cache) {
                    Some(f) => f,
                    None => {
                        let f = measure_stages(v, before, after, text.as_deref(), &sets, args.quiet)
                            .with_context(|| format!("evaluating step {} ({})", p.index, p.description))?;
                        if use_cache {
                            std::fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
                            write_figures(&file, &f)?;
                        }
                        f
                    }
                };
            }
            let size = StageSize {
                size_bytes: gguf_header(after)?.layout()?.file_size,
                bits_per_weight: 8.0 * after.n_tensor_bytes() as f64 / after.n_params().max(1) as f64,
            };
            if use_cache {
                std::fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
                std::fs::write(stage_size_file(p), serde_json::to_vec(&size)?)?;
            }
            let seconds = t0.elapsed().as_secs_f64();
            record_step(args, loaded, p, (false, seconds, PathBuf::new()), size, figures, report)?;
            t0 = Instant::now();
            Ok(())
        },
        &mut |last| -> Result<()> {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            if !args.quiet {
                eprintln!("writing {}", dest.display());
            }
            let opts = WriteOptions { force: true, quiet: args.quiet, label: "build" };
            write_gguf(last, dest, &opts)?;
            Ok(())
        },
    )?;
    let rec = report.steps.last_mut().expect("a run has steps");
    rec.seconds += t0.elapsed().as_secs_f64();
    rec.artifact = dest.to_path_buf();
    Ok(())
}

/// Figures of `after` against `before`, both in memory.
fn measure_stages(
    v: &crate::build::recipe::Validate,
    before: Stage<'_>,
    after: Stage<'_>,
    text: Option<&str>,
    sets: &[crate::eval::tasks::TaskSet],
    quiet: bool,
) -> Result<Figures> {
    let reference = Scored::from_stage(before).context("loading the step's input")?;
    let result = Scored::from_stage(after).context("loading the step's result")?;
    if !quiet {
        eprintln!("scoring the step's result against its input in memory");
    }
    let text = text.map(|t| (t, Windows { ctx: v.ctx, chunks: v.chunks }));
    let f = measure_stage(&reference, &result, text, sets)?;
    Ok(figures_of(f.kld.as_ref(), f.tasks))
}

/// A mergekit (or mergekit-moe) config with every `model:`/`base_model:`/`source_model:` value made a path: `current` → the
/// model being built, an input name → that input, a relative path → relative to the config.
fn resolve_merge_config(loaded: &Loaded, config: &Path, current: &Path) -> Result<yaml_serde::Value> {
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let mut v: yaml_serde::Value =
        crate::yaml::from_str(&text).with_context(|| format!("{}: not valid YAML", config.display()))?;
    let dir = config.parent().unwrap_or(Path::new("."));
    let resolve = |s: &str| -> String {
        if s == "current" {
            current.display().to_string()
        } else if let Some(p) = loaded.recipe.inputs.get(s) {
            p.display().to_string()
        } else if Path::new(s).is_relative() {
            dir.join(s).display().to_string()
        } else {
            s.to_string()
        }
    };
    fn walk(v: &mut yaml_serde::Value, resolve: &dyn Fn(&str) -> String) {
        match v {
            yaml_serde::Value::Mapping(m) => {
                for (k, val) in m.iter_mut() {
                    let is_model = matches!(k.as_str(), Some("model") | Some("base_model") | Some("source_model"));
                    match val {
                        yaml_serde::Value::String(s) if is_model => *s = resolve(s),
                        _ => walk(val, resolve),
                    }
                }
            }
            yaml_serde::Value::Sequence(s) => s.iter_mut().for_each(|x| walk(x, resolve)),
            _ => {}
        }
    }
    walk(&mut v, &resolve);
    Ok(v)
}

fn read_figures(path: &Path) -> Option<Figures> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Saves a step's figures in the cache (temp file + rename).
fn write_figures(path: &Path, f: &Figures) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(f)?).and_then(|_| std::fs::rename(&tmp, path))?;
    Ok(())
}

/// Perplexity and KL divergence of `output` against `input` on the recipe's text, and the
/// task accuracy of `output` (the files scored through the library, [`Scored`]).
fn measure(v: &crate::build::recipe::Validate, input: &Path, output: &Path, quiet: bool) -> Result<Figures> {
    let kld = match &v.text {
        Some(text) => {
            let text = read_text(text)?;
            let in_model = Model::open(input).with_context(|| format!("opening {}", input.display()))?;
            let reference = Scored::open(&in_model).with_context(|| format!("loading {}", input.display()))?;
            crate::eval::validate::check_ctx(&reference.model, v.ctx)
                .with_context(|| format!("validate.ctx for {}", input.display()))?;
            let windows = Windows { ctx: v.ctx, chunks: v.chunks };
            Some(super::pass_eval::kld_against(&reference, input, output, &text, windows, quiet)?)
        }
        None => None,
    };
    let tasks = if v.tasks.is_empty() {
        None
    } else {
        let (mean, per_set) = task_accuracy(&v.tasks, output, quiet)?;
        Some(TaskAccuracy { mean, per_set })
    };
    Ok(figures_of(kld.as_ref(), tasks))
}

/// The report's figures of a KL divergence run (with its perplexities) and a task score.
fn figures_of(kld: Option<&crate::eval::KldResult>, tasks: Option<TaskAccuracy>) -> Figures {
    let mut f = Figures::default();
    if let Some(k) = kld {
        f.ppl = Some(k.ppl);
        f.ppl_uncertainty = Some(k.ppl_uncertainty);
        f.ppl_change_pct = Some(100.0 * (k.ppl / k.ppl_base - 1.0));
        f.kld_mean = Some(k.kld_mean);
        f.kld_p99 = Some(k.kld_p99);
        f.same_top = Some(k.same_top);
    }
    if let Some(t) = tasks {
        f.task_acc = Some(t.mean);
        f.task_accs = t.per_set;
    }
    f
}

fn gate_failures(g: &crate::build::recipe::Gates, f: &Figures) -> Vec<String> {
    g.limits().failures(f.ppl_change_pct, f.kld_mean, f.task_acc)
}

fn model_size(path: &Path) -> u64 {
    crate::build::cache::path_size(path)
}

fn bits_per_weight(m: &Model) -> f64 {
    8.0 * m.n_tensor_bytes() as f64 / (m.n_params().max(1)) as f64
}

/// Copies the last step's result to outputs.gguf (temp file + rename) and converts it to
/// outputs.hf; nothing is written unless every step passed.
/// `done`: outputs.gguf, when the build already wrote it (`caching: off`).
fn write_outputs(loaded: &Loaded, plan: &[Planned], done: Option<&Path>, quiet: bool) -> Result<Vec<PathBuf>> {
    let last = done.unwrap_or(&plan.last().expect("a recipe has steps").artifact);
    let mut written = Vec::new();
    if let Some(g) = loaded.recipe.outputs.gguf.as_ref().filter(|_| done.is_none()) {
        if let Some(parent) = g.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut out = llmtool_formats::atomic::AtomicFile::create(g, true)?;
        let mut src = std::fs::File::open(last).with_context(|| format!("opening {}", last.display()))?;
        std::io::copy(&mut src, out.writer()).with_context(|| format!("writing {}", g.display()))?;
        out.commit()?;
        written.push(g.clone());
    }
    if let Some(g) = done {
        written.push(g.to_path_buf());
    }
    if let Some(h) = &loaded.recipe.outputs.hf {
        if let Some(parent) = h.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        write_hf(last, h, quiet).with_context(|| format!("writing {}", h.display()))?;
        written.push(h.clone());
    }
    Ok(written)
}

/// `convert GGUF DIR --to hf --force`: the built GGUF as an HF model directory.
fn write_hf(gguf: &Path, dir: &Path, quiet: bool) -> Result<()> {
    let started = Instant::now();
    llmtool_formats::atomic::check_output_not_input(dir, &[gguf])?;
    let model = Model::open(gguf).with_context(|| format!("cannot open {}", gguf.display()))?;
    let opts = OutputOptions { force: true, quiet, label: "convert", shard_size: None };
    let written = write_hf_from_gguf_form(model.arch, &model.metadata, model.tensors.as_ref(), None, dir, &opts)?;
    if !quiet {
        super::convert::print_written(dir, written, started);
    }
    Ok(())
}

/// The recipe's deployment outputs (`outputs.ollama`, `outputs.lmstudio`) as `export`
/// arguments, without the source GGUF and the report: (target path, kind, what to write).
fn deploy_outputs(loaded: &Loaded) -> impl Iterator<Item = (PathBuf, &'static str, Deploy<'_>)> + '_ {
    let o = &loaded.recipe.outputs;
    let ollama = o.ollama.as_ref().map(|ol| (ol.dir.clone(), "ollama", Deploy::Ollama(ol)));
    let lmstudio = o.lmstudio.as_ref().map(|l| (l.root.clone(), "lmstudio", Deploy::LmStudio(l)));
    ollama.into_iter().chain(lmstudio)
}

enum Deploy<'a> {
    Ollama(&'a crate::build::recipe::OllamaOutput),
    LmStudio(&'a crate::build::recipe::LmStudioOutput),
}

/// The deployment layouts ([`crate::export::layout`], as `llmtool export … --report`) of the
/// built GGUF (outputs.gguf, else the last step's result), opened once, the model card's
/// table from the report just written.
fn write_deploy_outputs(loaded: &Loaded, plan: &[Planned], quiet: bool) -> Result<Vec<PathBuf>> {
    let gguf = loaded.recipe.outputs.gguf.clone().unwrap_or_else(|| plan.last().expect("steps").artifact.clone());
    let report = loaded.report_dir.join("report.json");
    let mut source = None;
    let mut written = Vec::new();
    for (target, kind, deploy) in deploy_outputs(loaded) {
        let context = || format!("writing outputs.{kind} {}", target.display());
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        if source.is_none() {
            let src = Source::open(&gguf).with_context(context)?;
            let quality = super::export::quality_from_report(&src, &report, quiet).with_context(context)?;
            source = Some((src, quality));
        }
        let (src, quality) = source.as_ref().expect("opened above");
        match deploy {
            Deploy::Ollama(o) => {
                let opts = OllamaOptions {
                    dir: target.clone(),
                    system: o.system.clone(),
                    name: o.name.clone(),
                    force: true,
                    ..OllamaOptions::default()
                };
                let plan = OllamaPlan::new(src, &opts).with_context(context)?;
                if !quiet {
                    plan.notes.iter().for_each(|n| eprintln!("note: {n}"));
                }
                plan.write(src, &opts, Some(quality)).with_context(context)?;
            }
            Deploy::LmStudio(l) => {
                let opts = LmStudioOptions {
                    root: target.clone(),
                    publisher: l.publisher.clone(),
                    model: l.model.clone(),
                    force: true,
                    ..LmStudioOptions::default()
                };
                let plan = LmStudioPlan::new(src, &opts).with_context(context)?;
                plan.write(src, &opts, Some(quality)).with_context(context)?;
            }
        }
        if !quiet {
            eprintln!("wrote outputs.{kind} {}", target.display());
        }
        written.push(target);
    }
    Ok(written)
}

/// Accuracy (lm-eval's `acc`) pooled over all items of the task files, and each file's, on
/// the model at `path`.
fn task_accuracy(tasks: &[PathBuf], path: &Path, quiet: bool) -> Result<(f64, Vec<(String, f64)>)> {
    let sets = read_tasks(tasks)?;
    let model = Model::open(path).with_context(|| format!("opening {}", path.display()))?;
    let scored = Scored::open(&model).with_context(|| format!("loading {}", path.display()))?;
    if !quiet {
        eprintln!("scoring tasks on {}", path.display());
    }
    let r = scored.task_accuracy(&sets).with_context(|| format!("task evaluation of {}", path.display()))?;
    Ok((r.mean, r.per_set))
}

fn read_tasks(tasks: &[PathBuf]) -> Result<Vec<crate::eval::tasks::TaskSet>> {
    tasks.iter().map(|t| crate::eval::tasks::TaskSet::read(t).map_err(anyhow::Error::from)).collect()
}
