//! Timing of the sparsification stages on one 4096×11008 task vector (ignored; run with
//! `cargo test --test merge_methods_stages -- --ignored --nocapture`).
use llmtool::merge::methods::sparsify::{self, Rescale};

#[test]
#[ignore]
fn stages() {
    let n = 4096 * 11008;
    let mut rng = llmtool::sample::Rng::new(3);
    let x: Vec<f32> = (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect();
    let t = std::time::Instant::now();
    let m = sparsify::rank_range_mask(&x, n / 2, n);
    eprintln!("rank_range_mask {:.3}", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let y = sparsify::apply_mask(&x, &m, Rescale::L1);
    eprintln!("apply_mask {:.3}", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let r = sparsify::random_mask(n, 0.5, 1);
    eprintln!("random_mask {:.3}", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let p = sparsify::della_probabilities(&x, &[4096, 11008], 0.5, 0.1);
    eprintln!("della_probabilities {:.3}", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let q = sparsify::bernoulli_mask(n, 1, |i| p[i] as f64);
    eprintln!("bernoulli_mask {:.3}", t.elapsed().as_secs_f64());
    assert_eq!(y.len() + r.len() + q.len(), 3 * n);
}
