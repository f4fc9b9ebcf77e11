#!/usr/bin/env python3
"""Input rows and an importance matrix for the IQ4_XS / IQ3_XXS / IQ3_S row-quantizer
fixtures (tests/quant_iq3_iq4xs.rs). numpy only, fixed seed.

  iq3_iq4xs_input.py OUTDIR
      writes OUTDIR/iq3_iq4xs_rows.f32 (ROWS x 512 float32) and OUTDIR/iq3_iq4xs_imatrix.f32
      (512 float32: exp(normal) with a few zeros and one all-zero block of 32 columns).

The expected bytes then come from llama.cpp's own quantizers:
  kquant_llamacpp.py rows GGML_DIR OUTDIR/iq3_iq4xs_rows.f32 512 - OUTDIR/iq3_iq4xs_plain IQ4_XS IQ3_XXS IQ3_S
  kquant_llamacpp.py rows GGML_DIR OUTDIR/iq3_iq4xs_rows.f32 512 OUTDIR/iq3_iq4xs_imatrix.f32 OUTDIR/iq3_iq4xs_weighted IQ4_XS IQ3_XXS IQ3_S
"""
import os
import sys

import numpy as np

N = 512


def make_rows():
    rng = np.random.default_rng(20261207)
    rows = []
    add = lambda v: rows.append(np.asarray(v, dtype=np.float32).reshape(N))
    for _ in range(4):
        add(rng.normal(0, 0.02, N))                  # weight-like
    add(rng.normal(0, 1, N))
    add(rng.uniform(-1, 1, N))
    add(np.abs(rng.normal(0, 1, N)))                 # positive only
    add(-np.abs(rng.normal(0, 1, N)))                # negative only
    v = rng.normal(0, 0.05, N)
    v[rng.integers(0, N, 4)] = rng.normal(0, 5, 4)   # outliers
    add(v)
    v = rng.normal(0, 1, N)
    v[rng.random(N) < 0.5] = 0.0                     # half exact zeros
    for g in (1, 2, 9, 12):
        v[32 * g:32 * g + 32] = 0.0                  # whole zero blocks of 32
    v[8 * 40:8 * 41] = 0.0                           # a zero group of 8
    add(v)
    add(np.concatenate([np.zeros(N // 2), np.full(N // 2, -0.0)]))
    add(np.concatenate([np.full(N // 2, 0.75), np.full(N // 2, -3.0)]))  # constant
    add(rng.normal(0, 1e-3, N) + 0.5)                # offset, narrow range
    v = rng.normal(0, 1e-6, N)                       # tiny, some blocks below IQ3_XXS's 1e-8
    v[64:160] = rng.normal(0, 1e-10, 96)
    add(v)
    add(rng.normal(0, 1e4, N))                       # large
    add(np.round(rng.normal(0, 4, N)))               # integers: ties in the searches
    add(np.tile(np.arange(-8, 8, dtype=np.float32) * 0.125, N // 16))
    v = np.zeros(N)
    v[[3, 100, 200, 300, 511]] = [1.0, -2.0, 0.5, -0.25, 3.0]  # sparse
    add(v)
    return np.concatenate(rows)


def make_imatrix():
    rng = np.random.default_rng(7)
    w = np.exp(rng.normal(0, 1, N)) * 0.3
    w[rng.integers(0, N, 6)] = 0.0
    w[96:128] = 0.0
    return w.astype(np.float32)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    make_rows().astype("<f4").tofile(os.path.join(sys.argv[1], "iq3_iq4xs_rows.f32"))
    make_imatrix().astype("<f4").tofile(os.path.join(sys.argv[1], "iq3_iq4xs_imatrix.f32"))
