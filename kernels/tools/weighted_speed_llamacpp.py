#!/usr/bin/env python3
"""Times llama.cpp's own `quantize_<type>` with an importance matrix (what
ggml_quantize_chunk runs), single-threaded, on a 576 x 1536 matrix of normal(0, 0.02)
values with exp(normal) weights, and writes that input so our `benches/weighted_speed.rs`
can time the same data:

  weighted_speed_llamacpp.py GGML_DIR OUTDIR [CFLAGS...]
      builds ggml-quants.c like tests/judges/kquant_llamacpp.py (-O2 -ffp-contract=off, or
      the given CFLAGS), prints ms per matrix (best of 5) for each type, and writes
      OUTDIR/speed_input.f32 and OUTDIR/speed_imatrix.f32; then
      cargo bench -p llmtool-kernels --bench weighted_speed -- OUTDIR/speed_input.f32 \\
          OUTDIR/speed_imatrix.f32 1536
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "judges"))
import kquant_llamacpp as judge  # noqa: E402

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL"]


def build(ggml_dir, cflags):
    if not cflags:
        return judge.build(ggml_dir)
    import ctypes
    tmp = tempfile.mkdtemp(prefix="weighted_speed_")
    stubs = os.path.join(tmp, "stubs.c")
    with open(stubs, "w") as f:
        f.write(judge.STUBS)
    lib = os.path.join(tmp, "libggmlquants.so")
    subprocess.run(["gcc", *cflags, "-fPIC", "-shared", "-I", os.path.join(ggml_dir, "include"),
                    "-I", os.path.join(ggml_dir, "src"), "-o", lib,
                    os.path.join(ggml_dir, "src", "ggml-quants.c"), stubs, "-lm"], check=True)
    return ctypes.CDLL(lib)


def _time(lib, x, n_per_row, qw, name):
    t = time.perf_counter()
    judge.quantize_rows(lib, x, n_per_row, qw, name)
    return time.perf_counter() - t


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    lib = build(sys.argv[1], sys.argv[3:])
    rng = np.random.default_rng(1536)
    n_per_row = 1536
    x = (rng.normal(0, 0.02, 576 * n_per_row)).astype(np.float32)
    qw = np.exp(rng.normal(0, 1, n_per_row)).astype(np.float32)
    x.astype("<f4").tofile(os.path.join(sys.argv[2], "speed_input.f32"))
    qw.astype("<f4").tofile(os.path.join(sys.argv[2], "speed_imatrix.f32"))
    print(f"576 rows x {n_per_row}, with imatrix, llama.cpp C one thread; ms per matrix (best of 5)")
    for name in TYPES:
        best = min(_time(lib, x, n_per_row, qw, name) for _ in range(5))
        print(f"{name:<7} {best * 1e3:8.1f}")
