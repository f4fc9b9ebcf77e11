//! Bit allocation for `quantize --target-bpw / --target-size`: one tensor type per tensor,
//! chosen to minimise the total estimated damage under a byte budget.
//!
//! Each quantizable tensor offers options (a type, its bytes, its estimated damage — in
//! llmtool the per-tensor KLD estimate of `quantize_sensitivity`). Damage is taken as
//! additive over tensors (the second-order view: independent small weight errors add up in
//! the KL divergence), so the problem is a multiple-choice knapsack: minimise Σ damage subject
//! to Σ bytes ≤ budget, one option per tensor. It is solved by dynamic programming over the
//! budget counted in at most [`MAX_UNITS`] units (bytes rounded up per option, so the result
//! always fits; exact when a unit is a byte), then a greedy fill spends the bytes the rounding
//! left on the upgrades that save the most damage per byte (the classic rate–distortion
//! step, Shoham & Gersho 1988, "Efficient bit allocation for an arbitrary set of quantizers").

use llmtool_formats::GgmlType;

/// One type a tensor may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub ty: GgmlType,
    pub bytes: u64,
    /// Estimated damage (any non-negative unit, the same for all tensors).
    pub damage: f64,
}

/// The options of one tensor.
#[derive(Debug, Clone)]
pub struct TensorOptions {
    pub name: String,
    pub choices: Vec<Choice>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MixError {
    #[error(
        "the budget of {budget} bytes is below the smallest reachable size of the quantized tensors \
         ({min} bytes, every tensor at its smallest type)"
    )]
    BudgetTooSmall { budget: u64, min: u64 },
    #[error("tensor '{0}' has no candidate type")]
    NoChoice(String),
    #[error("tensor '{name}': damage {damage} of {ty} is not a finite non-negative number")]
    BadDamage { name: String, ty: GgmlType, damage: f64 },
    #[error("size '{0}': expected bytes with an optional K, M or G suffix (powers of 1024), e.g. 80M")]
    BadSize(String),
}

fn total_bytes(tensors: &[TensorOptions], pick: &[usize]) -> u64 {
    tensors.iter().zip(pick).map(|(t, &i)| t.choices[i].bytes).sum()
}

/// Total damage of a pick.
pub fn total_damage(tensors: &[TensorOptions], pick: &[usize]) -> f64 {
    tensors.iter().zip(pick).map(|(t, &i)| t.choices[i].damage).sum()
}

/// The budget is counted in at most this many units by the dynamic programme.
const MAX_UNITS: u64 = 200_000;

/// Chooses one option per tensor with total bytes ≤ `budget`, minimising the total damage.
/// Returns the choice indices.
pub fn allocate(tensors: &[TensorOptions], budget: u64) -> Result<Vec<usize>, MixError> {
    for t in tensors {
        if t.choices.is_empty() {
            return Err(MixError::NoChoice(t.name.clone()));
        }
        if t.choices.len() > usize::from(u8::MAX) {
            return Err(MixError::NoChoice(format!("{} (more than 255 choices)", t.name)));
        }
        if let Some(c) = t.choices.iter().find(|c| !(c.damage.is_finite() && c.damage >= 0.0)) {
            return Err(MixError::BadDamage { name: t.name.clone(), ty: c.ty, damage: c.damage });
        }
    }
    let smallest: Vec<usize> = tensors
        .iter()
        .map(|t| {
            (0..t.choices.len())
                .min_by(|&a, &b| {
                    let (ca, cb) = (&t.choices[a], &t.choices[b]);
                    ca.bytes.cmp(&cb.bytes).then(ca.damage.total_cmp(&cb.damage))
                })
                .unwrap_or(0)
        })
        .collect();
    let min = total_bytes(tensors, &smallest);
    if min > budget {
        return Err(MixError::BudgetTooSmall { budget, min });
    }
    let mut pick = knapsack(tensors, budget).unwrap_or(smallest);
    greedy_fill(tensors, &mut pick, budget);
    Ok(pick)
}

/// The multiple-choice knapsack by dynamic programming over the budget in units of
/// `⌈budget / MAX_UNITS⌉` bytes, each option's bytes rounded up (so any result fits):
/// `best_t[u] = min_c best_{t−1}[u − units(c)] + damage(c)`, the least damage of the first t
/// tensors in at most u units. Exact when a unit is one byte; None when the rounding leaves
/// no feasible pick.
fn knapsack(tensors: &[TensorOptions], budget: u64) -> Option<Vec<usize>> {
    let unit = budget.div_ceil(MAX_UNITS).max(1);
    let cap = (budget / unit) as usize;
    let units = |c: &Choice| c.bytes.div_ceil(unit);
    let mut best = vec![0.0f64; cap + 1];
    let mut back = vec![0u8; tensors.len() * (cap + 1)];
    for (ti, t) in tensors.iter().enumerate() {
        let mut next = vec![f64::INFINITY; cap + 1];
        let row = &mut back[ti * (cap + 1)..(ti + 1) * (cap + 1)];
        for (ci, c) in t.choices.iter().enumerate() {
            let k = units(c);
            if k > cap as u64 {
                continue;
            }
            let k = k as usize;
            for u in k..=cap {
                let v = best[u - k] + c.damage;
                if v < next[u] {
                    next[u] = v;
                    row[u] = ci as u8;
                }
            }
        }
        best = next;
    }
    if !best[cap].is_finite() {
        return None;
    }
    let mut pick = vec![0usize; tensors.len()];
    let mut u = cap;
    for ti in (0..tensors.len()).rev() {
        let ci = usize::from(back[ti * (cap + 1) + u]);
        pick[ti] = ci;
        u -= units(&tensors[ti].choices[ci]) as usize;
    }
    Some(pick)
}

/// Spends the bytes left under `budget` on the upgrades (any option with less damage) that
/// save the most damage per extra byte, one at a time, while any fits.
fn greedy_fill(tensors: &[TensorOptions], pick: &mut [usize], budget: u64) {
    let mut used = total_bytes(tensors, pick);
    loop {
        let left = budget - used;
        let mut best: Option<(f64, usize, usize)> = None;
        for (ti, t) in tensors.iter().enumerate() {
            let cur = t.choices[pick[ti]];
            for (ci, c) in t.choices.iter().enumerate() {
                if c.damage >= cur.damage {
                    continue;
                }
                let extra = c.bytes.saturating_sub(cur.bytes);
                if c.bytes > cur.bytes && extra > left {
                    continue;
                }
                // free or smaller and better: take at once
                let ratio = if extra == 0 { f64::INFINITY } else { (cur.damage - c.damage) / extra as f64 };
                if best.is_none_or(|(r, _, _)| ratio > r) {
                    best = Some((ratio, ti, ci));
                }
            }
        }
        let Some((_, ti, ci)) = best else { break };
        used = used - tensors[ti].choices[pick[ti]].bytes + tensors[ti].choices[ci].bytes;
        pick[ti] = ci;
    }
}

/// Parses a byte count: digits (a decimal point allowed) with an optional `K`, `M`, `G`
/// (or `KiB`, `MiB`, `GiB`, `B`) suffix, powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, MixError> {
    let bad = || MixError::BadSize(s.to_string());
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| bad())?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = v * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// The `--keep` argument that pins one tensor to a type: an anchored regex of the exact name.
pub fn keep_line(name: &str, ty: GgmlType) -> String {
    format!("^{}$={}", regex::escape(name), ty.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use GgmlType as G;

    fn t(name: &str, opts: &[(GgmlType, u64, f64)]) -> TensorOptions {
        TensorOptions {
            name: name.into(),
            choices: opts.iter().map(|&(ty, bytes, damage)| Choice { ty, bytes, damage }).collect(),
        }
    }

    /// Two tensors of the same size, one ten times as sensitive.
    fn pair() -> Vec<TensorOptions> {
        vec![
            t("a", &[(G::Q4_0, 100, 1.0), (G::Q8_0, 200, 0.1), (G::F16, 400, 0.0)]),
            t("b", &[(G::Q4_0, 100, 10.0), (G::Q8_0, 200, 1.0), (G::F16, 400, 0.0)]),
        ]
    }

    /// Every pick by brute force: the least damage within the budget.
    fn brute(ts: &[TensorOptions], budget: u64) -> f64 {
        let mut best = f64::INFINITY;
        let n: usize = ts.iter().map(|t| t.choices.len()).product();
        for mut code in 0..n {
            let pick: Vec<usize> = ts
                .iter()
                .map(|t| {
                    let i = code % t.choices.len();
                    code /= t.choices.len();
                    i
                })
                .collect();
            if total_bytes(ts, &pick) <= budget {
                best = best.min(total_damage(ts, &pick));
            }
        }
        best
    }

    #[test]
    fn large_budgets_stay_within_and_near_optimal() {
        // 40 tensors of a few MB: units are coarser than a byte; the fill uses what is left
        let ts: Vec<TensorOptions> = (0..40u64)
            .map(|i| {
                let n = 1_000_000 + i * 37_123;
                let s = 1.0 + (i % 7) as f64;
                t(
                    &format!("t{i}"),
                    &[(G::Q4_0, n * 9 / 16, 8.0 * s), (G::Q5_0, n * 11 / 16, 3.0 * s), (G::Q8_0, n * 17 / 16, 0.2 * s)],
                )
            })
            .collect();
        let min: u64 = ts.iter().map(|t| t.choices[0].bytes).sum();
        let max: u64 = ts.iter().map(|t| t.choices[2].bytes).sum();
        let mut last = f64::INFINITY;
        for k in 0..=10 {
            let budget = min + (max - min) * k / 10;
            let pick = allocate(&ts, budget).unwrap();
            let used = total_bytes(&ts, &pick);
            assert!(used <= budget, "{used} > {budget}");
            let d = total_damage(&ts, &pick);
            assert!(d <= last + 1e-9);
            last = d;
        }
        assert!(last < 1e-9 + ts.iter().map(|t| t.choices[2].damage).sum::<f64>());
    }

    #[test]
    fn budget_is_respected_and_sensitive_tensor_gets_the_bits() {
        let ts = pair();
        let pick = allocate(&ts, 300).unwrap();
        assert!(total_bytes(&ts, &pick) <= 300);
        assert_eq!(ts[1].choices[pick[1]].ty, G::Q8_0, "the sensitive tensor is upgraded");
        assert_eq!(ts[0].choices[pick[0]].ty, G::Q4_0);
        assert_eq!(total_damage(&ts, &pick), 2.0);
    }

    #[test]
    fn damage_falls_as_budget_grows() {
        let ts = pair();
        let mut last = f64::INFINITY;
        for budget in (200..=800).step_by(50) {
            let pick = allocate(&ts, budget).unwrap();
            assert!(total_bytes(&ts, &pick) <= budget);
            let d = total_damage(&ts, &pick);
            assert!(d <= last, "budget {budget}: {d} > {last}");
            last = d;
        }
        assert_eq!(last, 0.0, "everything F16 at 800 bytes");
    }

    #[test]
    fn matches_brute_force_on_small_cases() {
        // a non-convex option set (the middle option is dominated on the hull)
        let ts = vec![
            t("a", &[(G::Q4_0, 10, 5.0), (G::Q5_0, 12, 4.9), (G::Q8_0, 20, 0.5)]),
            t("b", &[(G::Q4_0, 10, 3.0), (G::Q5_0, 12, 1.0), (G::Q8_0, 20, 0.9)]),
            t("c", &[(G::Q4_0, 8, 2.0), (G::Q6_K, 11, 0.7), (G::F16, 30, 0.0)]),
        ];
        for budget in 28..=80 {
            let pick = allocate(&ts, budget).unwrap();
            assert!(total_bytes(&ts, &pick) <= budget);
            let (got, best) = (total_damage(&ts, &pick), brute(&ts, budget));
            // one byte per unit at these budgets: the exact optimum
            assert!((got - best).abs() < 1e-12, "budget {budget}: {got} vs optimum {best}");
        }
    }

    #[test]
    fn too_small_budget_and_bad_damage_are_errors() {
        assert_eq!(allocate(&pair(), 199), Err(MixError::BudgetTooSmall { budget: 199, min: 200 }));
        let bad = vec![t("x", &[(G::Q4_0, 1, f64::NAN)])];
        assert!(matches!(allocate(&bad, 10), Err(MixError::BadDamage { .. })));
        assert!(matches!(allocate(&[t("y", &[])], 10), Err(MixError::NoChoice(_))));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert_eq!(parse_size("2K").unwrap(), 2048);
        assert_eq!(parse_size("1.5M").unwrap(), 1_572_864);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn keep_lines_parse_back_and_match_only_their_tensor() {
        let line = keep_line("blk.1.attn_q.weight", G::Q5_0);
        let o = super::super::quantize::Override::parse(&line).unwrap();
        assert_eq!(o.ty, G::Q5_0);
        assert!(o.pattern.is_match("blk.1.attn_q.weight"));
        assert!(!o.pattern.is_match("blk.11.attn_q.weight"));
        assert!(!o.pattern.is_match("blk.1xattn_q.weight"));
    }
}
