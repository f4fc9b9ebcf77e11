#!/usr/bin/env python3
"""Input rows and importance matrix of tests/quant_iq2_iq1.rs (numpy only).

  iq2_iq1_input.py OUTDIR
      writes OUTDIR/iq2_iq1_input.f32: 4 weight-like rows of 512 (normal(0, 0.02)), then the
      blocks of kquant_llamacpp.py's make_input (zeros, constants, outliers, tiny, large,
      integers, …) and one block of small integers with signed zeros (ties of ±0 in IQ1's
      sort), as 23 more rows of 512; and OUTDIR/iq2_iq1_imatrix.f32: 512 importance weights
      exp(normal(0, 1.5)) with 6 exact zeros.

The expected bytes then come from llama.cpp (see the test's doc comment):
  kquant_llamacpp.py rows GGML_DIR OUTDIR/iq2_iq1_input.f32 512 OUTDIR/iq2_iq1_imatrix.f32 \\
      OUTDIR/iq2_iq1_expected IQ2_XXS IQ2_XS IQ2_S IQ1_S IQ1_M
  kquant_llamacpp.py rows GGML_DIR OUTDIR/iq2_iq1_input.f32 512 - OUTDIR/iq2_iq1_noimatrix IQ2_S
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kquant_llamacpp import make_input  # noqa: E402 (numpy only)


def main(outdir):
    rng = np.random.default_rng(20261207)
    weights = rng.normal(0, 0.02, (4, 512))
    v = np.round(rng.normal(0, 2, 256))
    zeros = v == 0
    v[zeros] = np.where(rng.random(zeros.sum()) < 0.5, -0.0, 0.0)
    x = np.concatenate([weights.ravel(), make_input(), v]).astype("<f4")
    assert x.size % 512 == 0
    imatrix = np.exp(rng.normal(0, 1.5, 512))
    imatrix[rng.choice(512, 6, replace=False)] = 0.0
    x.tofile(os.path.join(outdir, "iq2_iq1_input.f32"))
    imatrix.astype("<f4").tofile(os.path.join(outdir, "iq2_iq1_imatrix.f32"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
