//! The state of a search (CMA-ES, history, per-generation statistics, elapsed time) and the
//! files it is kept in: `OUT_DIR/checkpoint.json`, `history.csv` and `fitness.svg`.
//!
//! One state, two drivers: the in-process loop ([`super::search::run_search`]) and the
//! ask/tell commands for an external driver (`llmtool evolve ask|tell|finish`, e.g. the Ray
//! driver in `python/llmtool_ray`) read and write the same checkpoint, so a run can move
//! between them and resume. Both tell CMA-ES one generation at a time through
//! [`SearchState::tell_generation`], in the order `ask` returned the candidates, which is
//! what makes their histories identical whatever order the evaluations finished in.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cmaes::{exact, Cmaes, CmaesOptions};
use super::config::EvolveConfig;
use super::plot::{fitness_svg, GenerationStat};
use super::search::{Evaluation, Score, SearchError};

pub const CHECKPOINT: &str = "checkpoint.json";

/// One row of `history.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryRow {
    pub generation: u64,
    pub index: usize,
    #[serde(with = "exact::vec")]
    pub genome: Vec<f64>,
    pub params: Vec<(String, String)>,
    pub score: Score,
    #[serde(with = "exact")]
    pub seconds: f64,
}

impl HistoryRow {
    /// The row of candidate `index` of `generation`, evaluated as `e`.
    pub fn new(generation: u64, index: usize, genome: &[f64], e: Evaluation) -> HistoryRow {
        HistoryRow {
            generation,
            index,
            genome: genome.to_vec(),
            params: e.decoded.params.iter().map(|(k, v)| (k.clone(), format!("{v:?}"))).collect(),
            score: e.score,
            seconds: e.seconds,
        }
    }
}

/// What is checkpointed after every generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchState {
    /// The genome length and method the state belongs to (checked on resume).
    pub genome_len: usize,
    pub method: String,
    pub cmaes: Cmaes,
    pub history: Vec<HistoryRow>,
    pub stats: Vec<GenerationStat>,
    /// Seconds of search of this and earlier runs.
    #[serde(with = "exact")]
    pub elapsed: f64,
    /// Unix time (seconds) of the `evolve ask` whose candidates are pending: `evolve tell`
    /// adds the time since then to `elapsed`. Never set by the in-process loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_at: Option<f64>,
}

impl SearchState {
    /// A new search as `cfg` says (initial genome, σ, population, seed).
    pub fn fresh(cfg: &EvolveConfig) -> Result<SearchState, SearchError> {
        let copts = CmaesOptions {
            sigma0: cfg.search.sigma,
            lambda: cfg.search.population,
            seed: cfg.search.seed,
            ..CmaesOptions::default()
        };
        Ok(SearchState {
            genome_len: cfg.genome_len(),
            method: cfg.method.name().into(),
            cmaes: Cmaes::new(cfg.initial_genome(), &copts)?,
            history: Vec::new(),
            stats: Vec::new(),
            elapsed: 0.0,
            asked_at: None,
        })
    }

    /// Reads `dir/checkpoint.json` and checks it belongs to `cfg`. The per-generation
    /// statistics are recomputed from the history (the checkpoint stores them as plain JSON
    /// numbers, which need not parse back to the same bits).
    pub fn load(dir: &Path, cfg: &EvolveConfig) -> Result<SearchState, SearchError> {
        let ck = dir.join(CHECKPOINT);
        let io = |msg: String| SearchError::Io { path: ck.clone(), msg };
        let bytes = std::fs::read(&ck).map_err(|e| io(e.to_string()))?;
        let mut st: SearchState = serde_json::from_slice(&bytes).map_err(|e| io(e.to_string()))?;
        if st.genome_len != cfg.genome_len() || st.method != cfg.method.name() {
            return Err(SearchError::CheckpointMismatch {
                path: ck,
                what: format!("method {} / genome length {}", st.method, st.genome_len),
            });
        }
        st.stats = stats_of(&st.history);
        Ok(st)
    }

    /// [`Self::load`] when `resume` and a checkpoint exists, else [`Self::fresh`].
    pub fn load_or_fresh(dir: &Path, cfg: &EvolveConfig, resume: bool) -> Result<SearchState, SearchError> {
        if resume && dir.join(CHECKPOINT).exists() {
            Self::load(dir, cfg)
        } else {
            Self::fresh(cfg)
        }
    }

    /// Whether the search is over: the evaluation or time budget is spent, or CMA-ES stops.
    pub fn finished(&self, cfg: &EvolveConfig) -> bool {
        cfg.search.max_evals.is_some_and(|m| self.cmaes.evaluations() >= m)
            || cfg.search.max_seconds.is_some_and(|m| self.elapsed >= m)
            || self.cmaes.stop().is_some()
    }

    /// The best evaluation so far (first of equals).
    pub fn best(&self) -> Option<&HistoryRow> {
        best_of(&self.history)
    }

    /// Records one generation's evaluations (`rows[i]` is candidate i of the pending `ask`)
    /// and tells CMA-ES −fitness (it minimizes). Refuses rows that are not exactly the
    /// pending candidates, in order.
    pub fn tell_generation(&mut self, rows: Vec<HistoryRow>) -> Result<(), SearchError> {
        let generation = self.cmaes.generation();
        let pending = self.cmaes.pending();
        let bad = |msg: String| Err(SearchError::Tell(msg));
        if pending.is_empty() {
            return bad("no candidates are pending (ask first)".into());
        }
        if rows.len() != pending.len() {
            return bad(format!(
                "{} results for the {} candidates of generation {generation}",
                rows.len(),
                pending.len()
            ));
        }
        for (i, (r, x)) in rows.iter().zip(pending).enumerate() {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            if r.generation != generation || r.index != i || bits(&r.genome) != bits(x) {
                return bad(format!(
                    "result {i} is candidate {} of generation {} with another genome; expected candidate {i} of \
                     generation {generation} as asked",
                    r.index, r.generation
                ));
            }
        }
        let fits: Vec<f64> = rows.iter().map(|r| r.score.fitness).collect();
        let neg: Vec<f64> = fits.iter().map(|f| -f).collect();
        self.cmaes.tell(&neg)?;
        if let Some(s) = GenerationStat::from_values(generation, &fits, true) {
            self.stats.push(s);
        }
        self.history.extend(rows);
        Ok(())
    }

    /// Writes `checkpoint.json` into `dir` (temp file + rename).
    pub fn write_checkpoint(&self, dir: &Path) -> Result<(), SearchError> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| SearchError::Io { path: dir.join(CHECKPOINT), msg: e.to_string() })?;
        write_atomic(&dir.join(CHECKPOINT), &json)
    }

    /// Writes `checkpoint.json`, `history.csv` and `fitness.svg` into `dir` (each by temp
    /// file + rename).
    pub fn write_outputs(&self, dir: &Path) -> Result<(), SearchError> {
        self.write_checkpoint(dir)?;
        write_atomic(&dir.join("history.csv"), history_csv(self).as_bytes())?;
        let svg = fitness_svg(&self.stats, "merge --evolve: fitness per generation", "fitness (higher is better)");
        write_atomic(&dir.join("fitness.svg"), svg.as_bytes())
    }
}

/// The best of `rows` (first of equals).
pub fn best_of<'a, I: IntoIterator<Item = &'a HistoryRow>>(rows: I) -> Option<&'a HistoryRow> {
    rows.into_iter().fold(None, |b: Option<&HistoryRow>, r| match b {
        Some(b) if b.score.fitness >= r.score.fitness => Some(b),
        _ => Some(r),
    })
}

/// Best and median fitness of each generation of `history`.
fn stats_of(history: &[HistoryRow]) -> Vec<GenerationStat> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < history.len() {
        let g = history[i].generation;
        let n = history[i..].iter().take_while(|r| r.generation == g).count();
        let fits: Vec<f64> = history[i..i + n].iter().map(|r| r.score.fitness).collect();
        out.extend(GenerationStat::from_values(g, &fits, true));
        i += n;
    }
    out
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SearchError> {
    let tmp: PathBuf = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| SearchError::Io { path: path.to_path_buf(), msg: e.to_string() })
}

/// `history.csv`: one row per evaluation.
pub fn history_csv(state: &SearchState) -> String {
    let mut s = String::new();
    let Some(first) = state.history.first() else { return s };
    let mut head = vec!["generation".to_string(), "index".into()];
    head.extend((0..first.genome.len()).map(|i| format!("x{i}")));
    head.extend(first.params.iter().map(|(k, _)| k.clone()));
    head.push("fitness".into());
    for c in &first.score.components {
        head.push(c.name.clone());
    }
    head.push("seconds".into());
    s.push_str(&head.join(","));
    s.push('\n');
    for r in &state.history {
        let mut row = vec![r.generation.to_string(), r.index.to_string()];
        row.extend(r.genome.iter().map(|x| format!("{x:?}")));
        row.extend(r.params.iter().map(|(_, v)| v.clone()));
        row.push(format!("{:?}", r.score.fitness));
        row.extend(r.score.components.iter().map(|c| format!("{:?}", c.value)));
        row.push(format!("{:.3}", r.seconds));
        s.push_str(&row.join(","));
        s.push('\n');
    }
    s
}
