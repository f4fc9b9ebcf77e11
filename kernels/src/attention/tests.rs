use super::*;

/// Deterministic values in [-amp, amp).
fn fill(seed: u64, n: usize, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

struct Case {
    p: AttnParams,
    n: usize,
    pos0: usize,
    cap: usize,
}

/// A cache whose positions past `pos0 + n` (never visible) hold NaN, and whose padding
/// columns of the key rows too: a kernel that read them would poison its output.
fn cache(c: &Case, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (hd, g) = (c.p.head_dim, c.p.n_head_kv);
    let ks = key_stride(c.cap);
    let mut kt = fill(seed, g * hd * ks, 1.0);
    let mut v = fill(seed + 1, g * c.cap * hd, 1.0);
    let end = c.pos0 + c.n;
    for (i, x) in kt.iter_mut().enumerate() {
        if i % ks >= end {
            *x = f32::NAN;
        }
    }
    for (i, x) in v.iter_mut().enumerate() {
        if (i / hd) % c.cap >= end {
            *x = f32::NAN;
        }
    }
    (kt, v)
}

fn run(c: &Case, isa: Isa, seed: u64) -> Vec<f32> {
    let (kt, v) = cache(c, seed);
    let q = fill(seed + 2, c.n * c.p.n_head * c.p.head_dim, 2.0);
    let mut out = vec![f32::NAN; q.len()];
    let kv = KvView { keys_t: &kt, values: &v, cap: c.cap };
    if isa == Isa::Scalar {
        attention_reference(&c.p, &q, kv, c.pos0, &mut out);
    } else {
        attention_with(&c.p, &q, kv, c.pos0, &mut out, isa);
    }
    out
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // (n_head, n_head_kv, head_dim): SmolLM2's 9/3/64, a multiple of 16 that is not of 64,
    // tails of 8 and of 7 lanes (scalar dimensions), Gemma's 256.
    for (n_head, n_head_kv, head_dim) in [(9, 3, 64), (4, 4, 80), (2, 1, 40), (3, 1, 7), (2, 2, 256)] {
        for (n, pos0, extra) in [(1, 0, 0), (1, 37, 5), (5, 0, 11), (13, 3, 0), (50, 17, 1), (97, 0, 16)] {
            for (window, softcap) in [(None, None), (Some(5), None), (Some(16), Some(30.0)), (None, Some(0.5))] {
                let p = AttnParams { n_head, n_head_kv, head_dim, scale: 0.125, softcap, window };
                cases.push(Case { p, n, pos0, cap: pos0 + n + extra });
            }
        }
    }
    cases
}

#[test]
fn simd_paths_equal_the_reference_exactly() {
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| *i != Isa::Scalar && i.available()).collect();
    eprintln!("attention paths tested here: {:?}", isas);
    for (k, c) in cases().iter().enumerate() {
        let want = run(c, Isa::Scalar, k as u64);
        assert!(want.iter().all(|x| x.is_finite()), "reference read a masked position: {:?}", c.p);
        for &isa in &isas {
            let got = run(c, isa, k as u64);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g == w,
                    "{isa:?} n={} pos0={} cap={} {:?}: element {i} = {g}, reference {w}",
                    c.n,
                    c.pos0,
                    c.cap,
                    c.p
                );
            }
        }
    }
}

/// The reference against textbook attention in f64 (softmax(q·kᵀ·scale) · v per head).
#[test]
fn reference_is_causal_softmax_attention() {
    for c in cases().iter().filter(|c| c.p.head_dim != 256) {
        let got = run(c, Isa::Scalar, 7);
        let (kt, v) = cache(c, 7);
        let q = fill(9, c.n * c.p.n_head * c.p.head_dim, 2.0);
        let (hd, ks) = (c.p.head_dim, key_stride(c.cap));
        let group = c.p.n_head / c.p.n_head_kv;
        for t in 0..c.n {
            let i = c.pos0 + t;
            let lo = c.p.window.map_or(0, |w| (i + 1).saturating_sub(w));
            for h in 0..c.p.n_head {
                let g = h / group;
                let qh = &q[(t * c.p.n_head + h) * hd..][..hd];
                let s: Vec<f64> = (lo..=i)
                    .map(|j| {
                        let dot: f64 = (0..hd).map(|d| qh[d] as f64 * kt[(g * hd + d) * ks + j] as f64).sum();
                        let x = dot * c.p.scale as f64;
                        c.p.softcap.map_or(x, |cap| cap as f64 * (x / cap as f64).tanh())
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for d in 0..hd {
                    let want: f64 = (lo..=i).map(|j| e[j - lo] / sum * v[(g * c.cap + j) * hd + d] as f64).sum();
                    let g_ = got[(t * c.p.n_head + h) * hd + d] as f64;
                    assert!(
                        (g_ - want).abs() <= 2e-5 * (1.0 + want.abs()),
                        "{:?} t={t} h={h} d={d}: {g_} vs {want}",
                        c.p
                    );
                }
            }
        }
    }
}
