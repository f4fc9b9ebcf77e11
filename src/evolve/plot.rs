//! An SVG line chart of the best and median fitness per generation, written by hand (a few
//! dozen lines of SVG need no plotting crate: `plotters` would add its dependency tree to
//! the build for one chart).

use std::fmt::Write as _;

/// One generation's fitness summary.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerationStat {
    pub generation: u64,
    pub best: f64,
    pub median: f64,
}

impl GenerationStat {
    /// Best (max if `higher_is_better`, else min) and median of the finite `values` (a failed
    /// candidate may be ±inf or NaN); None when no value is finite.
    pub fn from_values(generation: u64, values: &[f64], higher_is_better: bool) -> Option<GenerationStat> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let m = v.len();
        let median = if m % 2 == 1 { v[m / 2] } else { (v[m / 2 - 1] + v[m / 2]) / 2.0 };
        let best = if higher_is_better { v[m - 1] } else { v[0] };
        Some(GenerationStat { generation, best, median })
    }
}

const W: f64 = 720.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// About `n` round tick values (1, 2, 5 × 10^k steps) covering lo..hi.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart as an SVG document: x = generation, y = fitness; blue = best, orange = median.
/// Non-finite values are left out.
pub fn fitness_svg(stats: &[GenerationStat], title: &str, y_label: &str) -> String {
    let pts = |f: fn(&GenerationStat) -> f64| -> Vec<(f64, f64)> {
        stats.iter().filter(|s| f(s).is_finite()).map(|s| (s.generation as f64, f(s))).collect()
    };
    let best = pts(|s| s.best);
    let median = pts(|s| s.median);
    let all = best.iter().chain(&median);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 <= y1.abs().max(y0.abs()) * 1e-12 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.05 };
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + (y1 - y) / (y1 - y0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#, W / 2.0, esc(title));
    let _ = writeln!(s, r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##);
    for t in ticks(y0, y1, 6) {
        let y = sy(t);
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="#ddd"/>"##, LEFT + pw);
        let _ =
            writeln!(s, r#"<text x="{:.2}" y="{:.2}" text-anchor="end">{}</text>"#, LEFT - 6.0, y + 4.0, fmt_tick(t));
    }
    for t in ticks(x0, x1, 8).into_iter().filter(|t| t.fract() == 0.0) {
        let x = sx(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.2}" y1="{:.2}" x2="{x:.2}" y2="{:.2}" stroke="#444"/>"##,
            TOP + ph,
            TOP + ph + 5.0
        );
        let _ = writeln!(s, r#"<text x="{x:.2}" y="{:.2}" text-anchor="middle">{t}</text>"#, TOP + ph + 18.0);
    }
    let _ =
        writeln!(s, r#"<text x="{:.2}" y="{:.2}" text-anchor="middle">generation</text>"#, LEFT + pw / 2.0, H - 10.0);
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.2}" text-anchor="middle" transform="rotate(-90 16 {:.2})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (name, color, p) in [("best", "#1f77b4", &best), ("median", "#ff7f0e", &median)] {
        let coords: Vec<String> = p.iter().map(|&(x, y)| format!("{:.2},{:.2}", sx(x), sy(y))).collect();
        let _ = writeln!(
            s,
            r#"<polyline id="{name}" fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            coords.join(" ")
        );
    }
    for (i, (name, color)) in [("best", "#1f77b4"), ("median", "#ff7f0e")].iter().enumerate() {
        let y = TOP + 16.0 + 18.0 * i as f64;
        let x = LEFT + pw - 90.0;
        let _ =
            writeln!(s, r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"/>"#, x + 24.0);
        let _ = writeln!(s, r#"<text x="{}" y="{}">{name}</text>"#, x + 30.0, y + 4.0);
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_tick(t: f64) -> String {
    if t == 0.0 {
        return "0".into();
    }
    let a = t.abs();
    if !(1e-3..1e5).contains(&a) {
        format!("{t:.2e}")
    } else {
        // Enough decimals for the tick step; trailing zeros dropped.
        let s = format!("{t:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_from_values() {
        let s = GenerationStat::from_values(3, &[4.0, f64::INFINITY, 1.0, 2.0, f64::NAN], false).unwrap();
        assert_eq!(s, GenerationStat { generation: 3, best: 1.0, median: 2.0 });
        let s = GenerationStat::from_values(0, &[0.5, 0.25, 0.75, 1.0], true).unwrap();
        assert_eq!((s.best, s.median), (1.0, 0.625));
        assert_eq!(GenerationStat::from_values(0, &[f64::NAN], true), None);
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        // raw step 94/8 = 11.75 → 20
        assert_eq!(ticks(3.0, 97.0, 8), vec![20.0, 40.0, 60.0, 80.0]);
        assert_eq!(ticks(-0.013, 0.004, 4), vec![-0.01, -0.005, 0.0]);
    }
}
