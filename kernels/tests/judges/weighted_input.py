#!/usr/bin/env python3
"""Input rows and an importance matrix for tests/quant_weighted.rs (numpy only, fixed seed).

  weighted_input.py OUTDIR
      writes OUTDIR/weighted_input.f32 (8 rows x 768 float32: weight-like rows and the
      awkward blocks of kquant_llamacpp.py's make_input, three 256-blocks per row) and
      OUTDIR/weighted_imatrix.f32 (768 float32: exp(normal) spread, some zeros, a zero run).
The expected bytes are then made by kquant_llamacpp.py rows (see tests/quant_weighted.rs).
"""
import os
import sys

import numpy as np

N_PER_ROW = 768


def make_rows(rng):
    def outliers(scale):
        v = rng.normal(0, scale, 256)
        v[rng.integers(0, 256, 3)] = rng.normal(0, 100 * scale, 3)
        return v

    def half_zeros():
        v = rng.normal(0, 1, 256)
        v[rng.random(256) < 0.5] = 0.0
        return v

    def zero_sub_blocks():
        v = rng.normal(0, 1, 256)
        for g in rng.choice(16, 5, replace=False):
            v[16 * g:16 * g + 16] = 0.0
        return v

    sparse = np.zeros(256)
    sparse[[3, 100, 200]] = [1.0, -2.0, 0.5]
    rows = [
        [rng.normal(0, 0.02, 256) for _ in range(3)],                 # weight-like
        [outliers(0.02), outliers(0.05), rng.normal(0, 0.02, 256)],   # weight-like, outliers
        [np.zeros(256), np.full(256, 0.75), np.full(256, -3.0)],      # zero, constant
        [rng.normal(0, 1e-6, 256), rng.normal(0, 1e4, 256),           # tiny, large, integers
         np.round(rng.normal(0, 4, 256))],
        [half_zeros(), zero_sub_blocks(), np.abs(rng.normal(0, 1, 256))],
        [-np.abs(rng.normal(0, 1, 256)), rng.normal(0, 1e-3, 256) + 0.5, sparse],
        [rng.uniform(-1, 1, 256), rng.normal(0, 1, 256),
         np.tile(np.arange(-8, 8) * 0.125, 16)],
        [np.zeros(256), np.zeros(256), np.zeros(256)],                # a zero row: sigma2 = 0
    ]
    return np.concatenate([np.concatenate(r) for r in rows]).astype(np.float32)


def make_imatrix(rng):
    w = np.exp(rng.normal(0, 1.5, N_PER_ROW))
    w[rng.integers(0, N_PER_ROW, 6)] = 0.0
    w[32:48] = 0.0                                                    # a zero sub-block of weights
    return w.astype(np.float32)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rng = np.random.default_rng(20260512)
    make_rows(rng).astype("<f4").tofile(os.path.join(sys.argv[1], "weighted_input.f32"))
    make_imatrix(rng).astype("<f4").tofile(os.path.join(sys.argv[1], "weighted_imatrix.f32"))
