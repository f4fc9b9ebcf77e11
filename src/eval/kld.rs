//! KL divergence of a model's next-token distributions from a base's, with llama.cpp's
//! statistics (tools/perplexity/perplexity.cpp `kl_divergence`): mean ± uncertainty, median
//! and percentiles of the per-token KLD, top-1 agreement, RMS Δp, PPL(Q), PPL(base) and
//! their ratio/difference. The base is a second model run on the same windows, or a saved
//! log-probability file in llama.cpp's `--kl-divergence-base` format:
//!
//! ```text
//! "_logits_"  n_ctx: u32  n_vocab: i32  n_chunk: i32  tokens: i32 × n_chunk·n_ctx
//! per window, per scored position (n_ctx − 1 − n_ctx/2 of them), nv = 2·⌈n_vocab/2⌉ + 4 u16:
//!   [scale: f32][min_log_prob: f32][q: u16 × n_vocab][pad]
//!   log p_i = scale·q_i + min_log_prob, min_log_prob = max(min logit, max logit − 16) − logsumexp
//! ```

use llmtool_kernels::vexp;
use std::io::{Read, Write};
use std::path::Path;

use rayon::prelude::*;

use super::perplexity::{plan, window_logits_into, EvalError, NllSums, PplOptions};
use crate::infer::InferModel;

const MAGIC: &[u8; 8] = b"_logits_";

/// u16 words per saved row.
pub fn row_words(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// ggml's `nearest_int` (round half to even via the 1.5·2^23 trick) for 0 ≤ x < 2^22.
fn nearest_int(x: f32) -> u16 {
    let v = x + 12_582_912.0;
    ((v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000) as u16
}

/// One row of logits as saved log-probabilities (perplexity.cpp `log_softmax` with
/// `log_prob`): returns the words and the NLL of `tok`.
pub fn encode_row(logits: &[f32], tok: u32, out: &mut [u16]) -> f64 {
    let max = vexp::max(logits);
    let min = logits.iter().copied().fold(f32::INFINITY, f32::min).max(max - 16.0);
    let sum = vexp::sum_exp_sub(logits, max);
    let log_sum_exp = sum.ln() as f32;
    let min_log_prob = min - max - log_sum_exp;
    let scale = (max - min) / 65535.0;
    out[..2].copy_from_slice(&words_of(scale));
    out[2..4].copy_from_slice(&words_of(min_log_prob));
    let q = &mut out[4..4 + logits.len()];
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (o, &l) in q.iter_mut().zip(logits) {
            *o = if l > min { nearest_int(inv * (l - min)) } else { 0 };
        }
    } else {
        q.fill(0);
    }
    out[4 + logits.len()..].fill(0);
    (max as f64 + log_sum_exp as f64) - logits[tok as usize] as f64
}

fn words_of(x: f32) -> [u16; 2] {
    let b = x.to_le_bytes();
    [u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]])]
}

fn f32_of(w: &[u16]) -> f32 {
    let (a, b) = (w[0].to_le_bytes(), w[1].to_le_bytes());
    f32::from_le_bytes([a[0], a[1], b[0], b[1]])
}

/// A saved base: header and the log-probability rows (all windows).
pub struct BaseFile {
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub n_chunk: usize,
    pub tokens: Vec<u32>,
    rows: Vec<u16>,
}

impl BaseFile {
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let io = |source| EvalError::BaseIo { path: path.to_path_buf(), source };
        let bad = |what: String| EvalError::Base(format!("{}: {what}", path.display()));
        let mut f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let mut head = [0u8; 20];
        f.read_exact(&mut head).map_err(|_| bad(format!("{len} bytes is too short for the 20-byte header")))?;
        if &head[..8] != MAGIC {
            return Err(bad("does not start with \"_logits_\" (not a llama.cpp log-probability file)".into()));
        }
        let n_ctx = u32::from_le_bytes(head[8..12].try_into().unwrap()) as u64;
        let n_vocab = i32::from_le_bytes(head[12..16].try_into().unwrap());
        let n_chunk = i32::from_le_bytes(head[16..20].try_into().unwrap());
        if n_ctx < 4 || n_vocab <= 0 || n_chunk <= 0 {
            return Err(bad(format!("bad header: n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunk}")));
        }
        let (n_vocab, n_chunk) = (n_vocab as u64, n_chunk as u64);
        let scored = n_ctx - 1 - n_ctx / 2;
        let expected = 20u64
            .checked_add(n_chunk.checked_mul(n_ctx).and_then(|t| t.checked_mul(4)).unwrap_or(u64::MAX))
            .and_then(|s| {
                s.checked_add(
                    n_chunk.checked_mul(scored)?.checked_mul(row_words(n_vocab as usize) as u64)?.checked_mul(2)?,
                )
            });
        if expected != Some(len) {
            return Err(bad(format!(
                "file is {len} bytes, but n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunk} need {}",
                expected.map_or("more than 2^64".into(), |e| e.to_string())
            )));
        }
        let mut tok_bytes = vec![0u8; (n_chunk * n_ctx * 4) as usize];
        f.read_exact(&mut tok_bytes).map_err(io)?;
        let tokens = tok_bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32).collect();
        let mut row_bytes = vec![0u8; (len - 20 - n_chunk * n_ctx * 4) as usize];
        f.read_exact(&mut row_bytes).map_err(io)?;
        let rows = row_bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        Ok(BaseFile { n_ctx: n_ctx as usize, n_vocab: n_vocab as usize, n_chunk: n_chunk as usize, tokens, rows })
    }

    /// The base of `model` on the windows of `tokens`, computed and kept in memory (the rows
    /// [`save_base`] would write).
    pub fn compute(model: &InferModel, tokens: &[u32], opts: &PplOptions) -> Result<Self, EvalError> {
        let n_chunk = plan(model, tokens.len(), opts)?;
        let (n_ctx, n_vocab) = (opts.n_ctx, model.cfg.n_vocab);
        let nv = row_words(n_vocab);
        let mut kv = model.new_cache(n_ctx);
        let mut rows = Vec::new();
        let mut logits = Vec::new();
        for i in 0..n_chunk {
            window_logits_into(model, &mut kv, tokens, i, opts, n_ctx / 2, &mut logits)?;
            let targets = &tokens[i * n_ctx + n_ctx / 2 + 1..(i + 1) * n_ctx];
            let mut words = vec![0u16; targets.len() * nv];
            words.par_chunks_exact_mut(nv).zip(logits.par_chunks_exact(n_vocab)).zip(targets.par_iter()).for_each(
                |((w, l), &t)| {
                    encode_row(l, t, w);
                },
            );
            rows.extend(words);
        }
        Ok(BaseFile { n_ctx, n_vocab, n_chunk, tokens: tokens[..n_chunk * n_ctx].to_vec(), rows })
    }

    /// Log-probabilities of row `r` (over all windows) decoded to f32; entries at the
    /// −16-nat floor are returned as they are stored (callers skip them like llama.cpp).
    fn row(&self, r: usize, out: &mut [f32]) {
        let nv = row_words(self.n_vocab);
        let w = &self.rows[r * nv..(r + 1) * nv];
        let (scale, min) = (f32_of(&w[0..2]), f32_of(&w[2..4]));
        for (o, &q) in out.iter_mut().zip(&w[4..4 + self.n_vocab]) {
            *o = scale * q as f32 + min;
        }
    }
}

/// Writes a base file while windows are evaluated.
pub struct BaseWriter<W: Write> {
    out: W,
    n_vocab: usize,
}

impl<W: Write> BaseWriter<W> {
    /// Writes the header and the tokens of the `n_chunk` windows.
    pub fn new(mut out: W, n_ctx: usize, n_vocab: usize, n_chunk: usize, tokens: &[u32]) -> std::io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&(n_ctx as u32).to_le_bytes())?;
        out.write_all(&(n_vocab as i32).to_le_bytes())?;
        out.write_all(&(n_chunk as i32).to_le_bytes())?;
        for &t in &tokens[..n_chunk * n_ctx] {
            out.write_all(&(t as i32).to_le_bytes())?;
        }
        Ok(BaseWriter { out, n_vocab })
    }

    /// Appends the scored rows of one window; returns their NLLs.
    pub fn window(&mut self, logits: &[f32], targets: &[u32]) -> std::io::Result<Vec<f64>> {
        let nv = row_words(self.n_vocab);
        let mut words = vec![0u16; targets.len() * nv];
        let nlls: Vec<f64> = words
            .par_chunks_exact_mut(nv)
            .zip(logits.par_chunks_exact(self.n_vocab))
            .zip(targets.par_iter())
            .map(|((w, l), &t)| encode_row(l, t, w))
            .collect();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.out.write_all(&bytes)?;
        Ok(nlls)
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Per-token comparison of one logits row with base log-probabilities.
#[derive(Debug, Clone, Copy)]
struct TokenCmp {
    nll: f64,
    nll_base: f64,
    kld: f64,
    p_diff: f64,
    same_top: bool,
}

/// perplexity.cpp `log_softmax(..., base_log_prob, tok, kld)`. `floor`: base entries at or
/// below it are skipped in the KLD sum (−16 for a saved file, −∞ for a live base).
fn compare_row(logits: &[f32], base_logp: &[f32], tok: u32, floor: f32) -> TokenCmp {
    let (mut imax, mut max) = (0usize, logits[0]);
    for (i, &l) in logits.iter().enumerate().skip(1) {
        if l > max {
            (imax, max) = (i, l);
        }
    }
    let sum = vexp::sum_exp_sub(logits, max);
    let lse = sum.ln() as f32;
    let nll = (max + lse - logits[tok as usize]) as f64;
    let nll_base = -(base_logp[tok as usize] as f64);
    let norm = max + lse;
    let (mut imax_base, mut pmax_base) = (0usize, base_logp[0]);
    let mut kld = 0.0f64;
    for (i, (&lb, &l)) in base_logp.iter().zip(logits).enumerate() {
        if i == 0 || lb > pmax_base {
            (imax_base, pmax_base) = (i, lb);
        }
        if lb > floor {
            kld += (lb.exp() * (lb - l + norm)) as f64;
        }
    }
    let p_diff = (-nll).exp() - (-nll_base).exp();
    TokenCmp { nll, nll_base, kld, p_diff, same_top: imax == imax_base }
}

/// mean and its uncertainty (perplexity.cpp `mean_and_uncertainty`).
fn mean_unc(sum: f64, sum2: f64, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let f = sum / n as f64;
    let df = sum2 / n as f64 - f * f;
    (f, if df > 0.0 && n > 10 { (df / (n as f64 - 1.0)).sqrt() } else { 0.0 })
}

/// Linear-interpolated percentile of sorted values (perplexity.cpp `percentile`).
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if fraction <= 0.0 {
        return sorted[0];
    }
    if fraction >= 1.0 {
        return sorted[sorted.len() - 1];
    }
    let p = fraction * (sorted.len() - 1) as f64;
    let ip = p as usize;
    let frac = p - ip as f64;
    (1.0 - frac) * sorted[ip] + frac * sorted[(ip + 1).min(sorted.len() - 1)]
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KldResult {
    pub n_chunks: usize,
    pub n_tokens: usize,
    pub ppl: f64,
    pub ppl_uncertainty: f64,
    pub ppl_base: f64,
    pub ppl_base_uncertainty: f64,
    /// ln(PPL(Q)/PPL(base)) and PPL(Q) − PPL(base).
    pub ln_ppl_ratio: f64,
    pub ppl_diff: f64,
    pub kld_mean: f64,
    pub kld_uncertainty: f64,
    pub kld_median: f64,
    pub kld_p99: f64,
    pub kld_p90: f64,
    pub kld_max: f64,
    pub kld_min: f64,
    /// Share of tokens where both models rank the same token first.
    pub same_top: f64,
    pub p_diff_rms: f64,
    pub p_diff_mean: f64,
}

/// The base distributions: a second model, or a saved file.
pub enum Base<'a, 'm> {
    Model(&'a InferModel<'m>),
    File(&'a BaseFile),
}

#[derive(Default)]
struct Acc {
    q: NllSums,
    base: NllSums,
    nll_nll_base: f64,
    kld: Vec<f64>,
    kld2: f64,
    p_diff: Vec<f64>,
    p_diff2: f64,
    p_diff4: f64,
    same_top: usize,
}

/// Runs `model` over the windows and compares with `base`. With a saved file the tokens and
/// n_ctx come from the file (like llama.cpp); `tokens`/`opts.n_ctx` are used for a live base.
pub fn kl_divergence(
    model: &InferModel,
    base: Base,
    tokens: &[u32],
    opts: &PplOptions,
    mut on_chunk: impl FnMut(usize, usize, f64),
) -> Result<KldResult, EvalError> {
    let (tokens, opts) = match &base {
        Base::File(f) => {
            if f.n_vocab != model.cfg.n_vocab {
                return Err(EvalError::Base(format!(
                    "vocabulary of {} tokens, the model has {}",
                    f.n_vocab, model.cfg.n_vocab
                )));
            }
            let mut o = opts.clone();
            o.n_ctx = f.n_ctx;
            o.batch = o.batch.min(f.n_ctx);
            o.n_chunks = Some(opts.n_chunks.map_or(f.n_chunk, |c| c.min(f.n_chunk)));
            (&f.tokens[..], o)
        }
        Base::Model(m) => {
            if m.cfg.n_vocab != model.cfg.n_vocab {
                return Err(EvalError::Base(format!(
                    "base model has a vocabulary of {} tokens, the model {}",
                    m.cfg.n_vocab, model.cfg.n_vocab
                )));
            }
            (tokens, opts.clone())
        }
    };
    let n_chunks = match &base {
        // a file may hold exactly one window's worth more than plan() would accept
        Base::File(_) => opts.n_chunks.unwrap_or(1),
        Base::Model(_) => plan(model, tokens.len(), &opts)?,
    };
    if let Base::File(_) = &base {
        if opts.n_ctx > model.cfg.n_ctx_train {
            return Err(EvalError::ContextTooLarge { n_ctx: opts.n_ctx, n_ctx_train: model.cfg.n_ctx_train });
        }
    }
    let n_ctx = opts.n_ctx;
    let first = n_ctx / 2;
    let scored = n_ctx - 1 - first;
    let n_vocab = model.cfg.n_vocab;
    let mut kv = model.new_cache(n_ctx);
    let mut kv_base = match &base {
        Base::Model(m) => Some(m.new_cache(n_ctx)),
        Base::File(_) => None,
    };
    let mut acc = Acc::default();
    let (mut logits, mut base_logits) = (Vec::new(), Vec::new());
    for i in 0..n_chunks {
        window_logits_into(model, &mut kv, tokens, i, &opts, n_ctx / 2, &mut logits)?;
        let targets = &tokens[i * n_ctx + first + 1..(i + 1) * n_ctx];
        let base_rows: Vec<f32> = match &base {
            Base::Model(m) => {
                window_logits_into(m, kv_base.as_mut().unwrap(), tokens, i, &opts, n_ctx / 2, &mut base_logits)?;
                base_logits
                    .par_chunks_exact(n_vocab)
                    .flat_map_iter(|row| {
                        let max = vexp::max(row);
                        let lse = vexp::sum_exp_sub(row, max).ln() as f32;
                        row.iter().map(move |&l| l - max - lse)
                    })
                    .collect()
            }
            Base::File(f) => {
                let mut v = vec![0.0f32; scored * n_vocab];
                v.par_chunks_exact_mut(n_vocab).enumerate().for_each(|(r, out)| f.row(i * scored + r, out));
                v
            }
        };
        let floor = if matches!(base, Base::File(_)) { -16.0 } else { f32::NEG_INFINITY };
        let cmps: Vec<TokenCmp> = logits
            .par_chunks_exact(n_vocab)
            .zip(base_rows.par_chunks_exact(n_vocab))
            .zip(targets.par_iter())
            .map(|((l, b), &t)| compare_row(l, b, t, floor))
            .collect();
        for c in cmps {
            acc.q.add(c.nll);
            acc.base.add(c.nll_base);
            acc.nll_nll_base += c.nll * c.nll_base;
            acc.kld.push(c.kld);
            acc.kld2 += c.kld * c.kld;
            acc.p_diff.push(c.p_diff);
            acc.p_diff2 += c.p_diff * c.p_diff;
            acc.p_diff4 += c.p_diff.powi(4);
            acc.same_top += c.same_top as usize;
        }
        let mean_kld = acc.kld.iter().sum::<f64>() / acc.kld.len() as f64;
        on_chunk(i + 1, n_chunks, mean_kld);
    }
    let n = acc.kld.len();
    let kld_sum: f64 = acc.kld.iter().sum();
    let (kld_mean, kld_unc) = mean_unc(kld_sum, acc.kld2, n);
    let (lq, lq_unc) = mean_unc(acc.q.nll, acc.q.nll2, n);
    let (lb, lb_unc) = mean_unc(acc.base.nll, acc.base.nll2, n);
    let p_diff_sum: f64 = acc.p_diff.iter().sum();
    let (p_mse, _) = mean_unc(acc.p_diff2, acc.p_diff4, n);
    let mut sorted = acc.kld.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if n % 2 == 0 { 0.5 * (sorted[n / 2] + sorted[n / 2 - 1]) } else { sorted[n / 2] };
    let (ppl, ppl_base) = (lq.exp(), lb.exp());
    Ok(KldResult {
        n_chunks,
        n_tokens: n,
        ppl,
        ppl_uncertainty: ppl * lq_unc,
        ppl_base,
        ppl_base_uncertainty: ppl_base * lb_unc,
        ln_ppl_ratio: lq - lb,
        ppl_diff: ppl - ppl_base,
        kld_mean,
        kld_uncertainty: kld_unc,
        kld_median: median,
        kld_p99: percentile(&sorted, 0.99),
        kld_p90: percentile(&sorted, 0.90),
        kld_max: sorted[n - 1],
        kld_min: sorted[0],
        same_top: acc.same_top as f64 / n as f64,
        p_diff_rms: p_mse.sqrt(),
        p_diff_mean: p_diff_sum / n as f64,
    })
}

/// Evaluates the windows and saves the base file (llama.cpp's `--kl-divergence-base` run);
/// returns the perplexity sums of the saved model.
pub fn save_base(model: &InferModel, tokens: &[u32], opts: &PplOptions, path: &Path) -> Result<NllSums, EvalError> {
    let n_chunks = plan(model, tokens.len(), opts)?;
    let io = |source| EvalError::BaseIo { path: path.to_path_buf(), source };
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let n_ctx = opts.n_ctx;
    let mut w = BaseWriter::new(file, n_ctx, model.cfg.n_vocab, n_chunks, tokens).map_err(io)?;
    let mut kv = model.new_cache(n_ctx);
    let mut sums = NllSums::default();
    let mut logits = Vec::new();
    for i in 0..n_chunks {
        window_logits_into(model, &mut kv, tokens, i, opts, n_ctx / 2, &mut logits)?;
        let targets = &tokens[i * n_ctx + n_ctx / 2 + 1..(i + 1) * n_ctx];
        w.window(&logits, targets).map_err(io)?.into_iter().for_each(|v| sums.add(v));
    }
    w.finish().map_err(io)?;
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.0), 0);
        assert_eq!(nearest_int(1.4), 1);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(65535.0), 65535);
    }

    #[test]
    fn encoded_row_decodes_to_log_probs() {
        let logits: Vec<f32> = (0..101).map(|i| ((i * 37) % 101) as f32 * 0.25 - 12.0).collect();
        let nv = row_words(logits.len());
        let mut w = vec![0u16; nv];
        let nll = encode_row(&logits, 7, &mut w);
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        let lse = max as f64 + logits.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln();
        assert!((nll - (lse - logits[7] as f64)).abs() < 1e-5);
        let f = BaseFile { n_ctx: 4, n_vocab: logits.len(), n_chunk: 1, tokens: vec![], rows: w };
        let mut lp = vec![0.0f32; logits.len()];
        f.row(0, &mut lp);
        for (i, (&l, &p)) in logits.iter().zip(&lp).enumerate() {
            let exact = (l as f64 - lse) as f32;
            // within the 16-nat window the step is (max − min)/65535
            if exact > lp.iter().copied().fold(f32::MAX, f32::min) {
                assert!((p - exact).abs() < 2e-4, "{i}: {p} vs {exact}");
            }
        }
        // identical distributions: zero divergence, same top token
        let c = compare_row(&logits, &lp, 7, -16.0);
        assert!(c.kld.abs() < 1e-4 && c.same_top, "{c:?}");
    }

    #[test]
    fn percentile_interpolates() {
        let v = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert!((percentile(&v, 0.99) - 3.96).abs() < 1e-12);
        assert_eq!(percentile(&v, 1.0), 4.0);
    }
}
