//! Optional timing spans (set `LLMTOOL_TIMING=1`): wall time per kind of operation,
//! summed over a run, printed by [`report`]. Costs one env lookup per span when off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Matmul,
    Attention,
    Other,
}

static NANOS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("LLMTOOL_TIMING").is_some_and(|v| v != "0"))
}

/// Runs `f`, adding its wall time to `op` when timing is on.
pub fn span<T>(op: Op, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let t = Instant::now();
    let r = f();
    NANOS[op as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    r
}

/// Seconds per op so far: (matmul, attention, other).
pub fn totals() -> [f64; 3] {
    std::array::from_fn(|i| NANOS[i].load(Ordering::Relaxed) as f64 * 1e-9)
}

/// Prints the totals to stderr when timing is on.
pub fn report(total_seconds: f64) {
    if enabled() {
        let [m, a, _] = totals();
        eprintln!(
            "timing: matmul {m:.2} s, attention {a:.2} s, rest {:.2} s (of {total_seconds:.2} s)",
            (total_seconds - m - a).max(0.0)
        );
    }
}
