//! Bit allocation for `quantize --target-bpw / --target-size`: one tensor type per tensor,
//! chosen to minimise the total estimated damage under a byte budget.
//!
//! Each quantizable tensor offers options (a type, its bytes, its estimated damage — in
//! llmtool the per-tensor KLD estimate of `quantize_sensitivity`). Damage is taken as
//! additive over tensors (the second-order view: independent small weight errors add up in
//! the KL divergence), so the problem is a multiple-choice knapsack. It is solved the usual
//! way for rate–distortion allocation (Shoham & Gersho 1988, "Efficient bit allocation for an
//! arbitrary set of quantizers"):
//! 1. Lagrangian: for a multiplier λ every tensor takes `argmin damage + λ·bytes`; the total
//!    bytes fall as λ grows, so λ is bisected to the smallest value that fits the budget;
//! 2. greedy fill: the bytes left over go to the upgrades with the best damage saved per
//!    byte that still fit, until none does.
//!
//! The result is within the budget by construction and never worse than the Lagrangian
//! point (the fill only takes upgrades that lower the damage).

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

/// The index of the choice per tensor that `damage + λ·bytes` minimises (ties: fewer bytes).
fn lagrangian_pick(t: &TensorOptions, lambda: f64) -> usize {
    let cost = |c: &Choice| c.damage + lambda * c.bytes as f64;
    let mut best = 0;
    for (i, c) in t.choices.iter().enumerate().skip(1) {
        let (a, b) = (cost(c), cost(&t.choices[best]));
        if a < b || (a == b && c.bytes < t.choices[best].bytes) {
            best = i;
        }
    }
    best
}

fn total_bytes(tensors: &[TensorOptions], pick: &[usize]) -> u64 {
    tensors.iter().zip(pick).map(|(t, &i)| t.choices[i].bytes).sum()
}

/// Total damage of a pick.
pub fn total_damage(tensors: &[TensorOptions], pick: &[usize]) -> f64 {
    tensors.iter().zip(pick).map(|(t, &i)| t.choices[i].damage).sum()
}

/// Chooses one option per tensor with total bytes ≤ `budget`, minimising the total damage
/// (Lagrangian bisection, then a greedy fill of what is left). Returns the choice indices.
pub fn allocate(tensors: &[TensorOptions], budget: u64) -> Result<Vec<usize>, MixError> {
    for t in tensors {
        if t.choices.is_empty() {
            return Err(MixError::NoChoice(t.name.clone()));
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
    // λ = 0 picks the least damage; if that fits, done (after the fill, which then is a no-op).
    let mut pick: Vec<usize> = tensors.iter().map(|t| lagrangian_pick(t, 0.0)).collect();
    if total_bytes(tensors, &pick) > budget {
        // Bisect λ on a log scale between a value that fits and one that does not.
        let (mut lo, mut hi) = (0.0f64, 1e-12f64);
        let fits =
            |l: f64| total_bytes(tensors, &tensors.iter().map(|t| lagrangian_pick(t, l)).collect::<Vec<_>>()) <= budget;
        while !fits(hi) {
            lo = hi;
            hi *= 4.0;
            if hi > 1e30 {
                break;
            }
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if fits(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        pick = tensors.iter().map(|t| lagrangian_pick(t, hi)).collect();
        if total_bytes(tensors, &pick) > budget {
            pick = smallest;
        }
    }
    greedy_fill(tensors, &mut pick, budget);
    Ok(pick)
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
            // the greedy solution may miss the optimum, but not by much on these
            assert!(got <= best + 1.0 + 1e-12, "budget {budget}: {got} vs optimum {best}");
        }
        // enough for the optimum with a clear hull: exact
        assert_eq!(total_damage(&ts, &allocate(&ts, 80).unwrap()), brute(&ts, 80));
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
