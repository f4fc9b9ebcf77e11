#!/usr/bin/env python3
"""Speed of llama.cpp's own row quantizers (`quantize_<type>(src, dst, nrow, n_per_row,
imatrix)`, one thread, as ggml_quantize_chunk calls them) on a 576 x 1536 normal(0, 0.02)
matrix with exp(normal) column weights, in MB/s of f32 input, best of 5; the counterpart of
`benches/quant_rows_speed.rs`. Not a test.

  quant_rows_llamacpp.py GGML_DIR WORKDIR [TYPE...]
      writes WORKDIR/rows.f32 and WORKDIR/imatrix.f32, times ggml-quants.c built as the
      judge builds it (gcc -O2 -ffp-contract=off) and as a release build would
      (-O3 -march=native), and prints the command that times ours on the same files.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "judges"))
import kquant_llamacpp as judge  # noqa: E402

ROWS, COLS = 576, 1536
# The types with an importance-weighted quantizer (quant_rows_speed.rs's default list).
TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL",
         "IQ4_XS", "IQ3_XXS", "IQ3_S", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M"]
# ggml_quantize_requires_imatrix (and IQ1_M, whose quantizer asserts weights).
NEEDS_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"}


def best_secs(f):
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ggml_dir, workdir = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or TYPES
    rng = np.random.default_rng(1)
    x = (rng.normal(0, 0.02, ROWS * COLS)).astype(np.float32)
    imatrix = np.exp(rng.normal(0, 1, COLS)).astype(np.float32)
    x.tofile(os.path.join(workdir, "rows.f32"))
    imatrix.tofile(os.path.join(workdir, "imatrix.f32"))
    mb = x.size * 4 / 1e6
    builds = [("judge -O2 -ffp-contract=off", ["-O2", "-ffp-contract=off"]), ("-O3 -march=native", ["-O3", "-march=native"])]
    print(f"{ROWS} x {COLS}, MB/s of f32 input, one thread")
    print(f"{'type':<8} {'build':<28} {'plain':>8} {'imatrix':>8}")
    for tag, flags in builds:
        lib = judge.build(ggml_dir, flags)
        for name in names:
            plain = "-" if name in NEEDS_IMATRIX else \
                f"{mb / best_secs(lambda: judge.quantize_rows(lib, x, COLS, None, name)):.1f}"
            weighted = mb / best_secs(lambda: judge.quantize_rows(lib, x, COLS, imatrix, name))
            print(f"{name:<8} {tag:<28} {plain:>8} {weighted:>8.1f}")
    print(f"ours: QUANT_ROWS_INPUT={workdir}/rows.f32 QUANT_ROWS_IMATRIX={workdir}/imatrix.f32 "
          "cargo bench -p llmtool-kernels --bench quant_rows_speed")


if __name__ == "__main__":
    main()
