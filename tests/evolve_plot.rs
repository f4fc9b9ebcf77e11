//! The fitness chart: a CMA-ES run on the sphere function plotted as SVG, parsed by Python's
//! XML parser (an independent judge of well-formedness), its two polylines checked against
//! the data (one point per generation; lower fitness drawn higher up the page is wrong).

use std::io::Write;
use std::process::{Command, Stdio};

use llmtool::evolve::{fitness_svg, Cmaes, CmaesOptions, GenerationStat};

#[test]
fn svg_of_a_cmaes_run_parses_and_follows_the_data() {
    let mut es = Cmaes::new(vec![2.0; 4], &CmaesOptions { sigma0: 1.0, seed: 5, ..Default::default() }).unwrap();
    let mut stats = Vec::new();
    for g in 0..40 {
        let xs = es.ask();
        let fs: Vec<f64> = xs.iter().map(|x| x.iter().map(|v| v * v).sum()).collect();
        es.tell(&fs).unwrap();
        stats.push(GenerationStat::from_values(g, &fs, false).unwrap());
    }
    let svg = fitness_svg(&stats, "sphere <4-D> & CMA-ES", "fitness (lower is better)");
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
lines = {p.get("id"): [[float(v) for v in pt.split(",")] for pt in p.get("points").split()] for p in root.iter(ns + "polyline")}
texts = [t.text for t in root.iter(ns + "text")]
print(json.dumps({"lines": lines, "texts": texts, "w": float(root.get("width")), "h": float(root.get("height"))}))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for this test (see scripts/test.sh)");
    child.stdin.take().unwrap().write_all(svg.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python's XML parser rejected the SVG:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["texts"].as_array().unwrap().iter().any(|t| t == "sphere <4-D> & CMA-ES"), "title escaped and kept");
    let (w, h) = (v["w"].as_f64().unwrap(), v["h"].as_f64().unwrap());
    let vals = stats.iter().flat_map(|s| [s.best, s.median]);
    let range = vals.clone().fold(f64::NEG_INFINITY, f64::max) - vals.fold(f64::INFINITY, f64::min);
    for (id, f) in [("best", (|s: &GenerationStat| s.best) as fn(&GenerationStat) -> f64), ("median", |s| s.median)] {
        let pts: Vec<(f64, f64)> = v["lines"][id]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        assert_eq!(pts.len(), stats.len(), "{id}: one point per generation");
        for (i, w2) in pts.windows(2).enumerate() {
            assert!(w2[1].0 > w2[0].0, "{id}: x increases with the generation");
            // y on the page decreases exactly when the value increases (by more than a pixel's
            // worth: the chart is ~330 px high).
            let (a, b) = (f(&stats[i]), f(&stats[i + 1]));
            if (a - b).abs() > range * 0.01 {
                assert_eq!(w2[1].1 < w2[0].1, b > a, "{id}: generation {i}→{}", i + 1);
            }
        }
        assert!(pts.iter().all(|&(x, y)| (0.0..=w).contains(&x) && (0.0..=h).contains(&y)), "{id}: inside the canvas");
    }
}

#[test]
fn degenerate_inputs_still_make_a_valid_chart() {
    for stats in [
        vec![],
        vec![GenerationStat { generation: 0, best: 1.0, median: 1.0 }],
        vec![GenerationStat { generation: 0, best: f64::INFINITY, median: f64::NAN }],
    ] {
        let svg = fitness_svg(&stats, "t", "y");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
