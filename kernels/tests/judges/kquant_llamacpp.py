#!/usr/bin/env python3
"""Expected K-quant and IQ4_NL bytes from llama.cpp itself (ggml `quantize_row_q*_K_ref`,
and for IQ4_NL `quantize_iq4_nl` without an importance matrix, what llama-quantize runs).

gguf-py has no K-quant quantizer, so this script compiles ggml's `ggml-quants.c` from a
llama.cpp source tree (e.g. the PyPI sdist of llama-cpp-python 0.3.36, whose C sources are
in vendor/llama.cpp/ggml) with gcc into a small shared library and calls it with ctypes.
It is compiled with -ffp-contract=off (no fused multiply-adds: the plain C semantics our
Rust port follows). Not run by `cargo test`; it generated the committed fixture:

  kquant_llamacpp.py fixture GGML_DIR OUTDIR
      writes OUTDIR/kquant_input.f32 (fixed-seed test blocks, see make_input) and
      OUTDIR/kquant_expected.QTYPE.bin for Q2_K..Q6_K, Q8_K, IQ4_NL.
  kquant_llamacpp.py quantize GGML_DIR IN.f32 OUTPREFIX QTYPE...
      writes OUTPREFIX.QTYPE.bin for any input (multiple of 256 float32 values).
  kquant_llamacpp.py rows GGML_DIR IN.f32 N_PER_ROW IMATRIX.f32|- OUTPREFIX TYPE...
      ggml_quantize_chunk's path for whole rows: `quantize_<type>(src, dst, nrow, n_per_row,
      imatrix)` (what llama-quantize runs for every tensor) with the importance weights of
      IMATRIX.f32 (N_PER_ROW float32 values) or none (-); any ggml type with a quantize_<type>
      (Q4_0 … Q6_K, IQ1_S … IQ4_XS; the i-quant tables are initialised first, as
      ggml_quantize_init does). Writes OUTPREFIX.TYPE.bin.
"""
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np

TYPES = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210, "Q8_K": 292, "IQ4_NL": 18}

STUBS = r"""
#include <stdlib.h>
#include <stddef.h>
#include "ggml.h"
void ggml_abort(const char *f, int l, const char *fmt, ...) { abort(); }
const char *ggml_type_name(enum ggml_type t) { abort(); }
size_t ggml_type_size(enum ggml_type t) { abort(); }
"""


def row_size_stub():
    """ggml_row_size for the ROW_TYPES: quantize_<type> with an imatrix steps its output rows
    by it (ggml.c's type_traits are not compiled in)."""
    cases = "".join(f"    case GGML_TYPE_{name}: return n / {qk} * {size};\n" for name, (size, qk) in ROW_TYPES.items())
    return f"size_t ggml_row_size(enum ggml_type t, int64_t n) {{\n  switch (t) {{\n{cases}    default: abort();\n  }}\n}}\n"


def build(ggml_dir, flags=("-O2", "-ffp-contract=off")):
    """ggml-quants.c as a shared library; `flags` other than the judge's are for timing only."""
    tmp = tempfile.mkdtemp(prefix="kquant_llamacpp_")
    stubs = os.path.join(tmp, "stubs.c")
    with open(stubs, "w") as f:
        f.write(STUBS + row_size_stub())
    lib = os.path.join(tmp, "libggmlquants.so")
    subprocess.run(
        ["gcc", *flags, "-fPIC", "-shared",
         "-I", os.path.join(ggml_dir, "include"), "-I", os.path.join(ggml_dir, "src"),
         "-o", lib, os.path.join(ggml_dir, "src", "ggml-quants.c"), stubs, "-lm"],
        check=True)
    return ctypes.CDLL(lib)


def quantize(lib, x, name):
    x = np.ascontiguousarray(x, dtype=np.float32)
    assert x.size % 256 == 0
    qk = 32 if name == "IQ4_NL" else 256
    out = np.zeros(x.size // qk * TYPES[name], dtype=np.uint8)  # zeroed: ggml leaves Q8_K bsums of zero blocks unset
    src, dst = x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p)
    if name == "IQ4_NL":
        # quantize_iq4_nl(src, dst, nrow, n_per_row, quant_weights = NULL): ntry = 7, weights x²
        # (ggml_quantize_chunk's path; quantize_row_iq4_nl_ref uses ntry = -1 and is not used
        # for model files).
        lib.quantize_iq4_nl(src, dst, ctypes.c_int64(1), ctypes.c_int64(x.size), ctypes.c_void_p(None))
    else:
        getattr(lib, f"quantize_row_{name[:2].lower()}_K_ref")(src, dst, ctypes.c_int64(x.size))
    return out


# Bytes per block and elements per block of every type `rows` handles (ggml type_traits).
ROW_TYPES = {
    "Q4_0": (18, 32), "Q4_1": (20, 32), "Q5_0": (22, 32), "Q5_1": (24, 32), "Q8_0": (34, 32),
    "Q2_K": (84, 256), "Q3_K": (110, 256), "Q4_K": (144, 256), "Q5_K": (176, 256), "Q6_K": (210, 256),
    "IQ2_XXS": (66, 256), "IQ2_XS": (74, 256), "IQ2_S": (82, 256), "IQ3_XXS": (98, 256), "IQ3_S": (110, 256),
    "IQ1_S": (50, 256), "IQ1_M": (56, 256), "IQ4_NL": (18, 32), "IQ4_XS": (136, 256),
}
# ggml type ids for iq2xs_init_impl (ggml.h enum ggml_type) and grid sizes for iq3xs_init_impl.
IQ2_INIT = {"IQ2_XXS": 16, "IQ2_XS": 17, "IQ2_S": 22, "IQ1_S": 19, "IQ1_M": 29}
IQ3_INIT = {"IQ3_XXS": 256, "IQ3_S": 512}


def quantize_rows(lib, x, n_per_row, imatrix, name):
    """ggml_quantize_chunk(type, x, dst, 0, nrow, n_per_row, imatrix) for one type."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    assert x.size % n_per_row == 0
    size, qk = ROW_TYPES[name]
    assert n_per_row % qk == 0
    if name in IQ2_INIT:
        lib.iq2xs_init_impl(ctypes.c_int(IQ2_INIT[name]))
    if name in IQ3_INIT:
        lib.iq3xs_init_impl(ctypes.c_int(IQ3_INIT[name]))
    out = np.zeros(x.size // qk * size, dtype=np.uint8)
    qw = ctypes.c_void_p(None)
    if imatrix is not None:
        imatrix = np.ascontiguousarray(imatrix, dtype=np.float32)
        assert imatrix.size == n_per_row
        qw = imatrix.ctypes.data_as(ctypes.c_void_p)
    getattr(lib, f"quantize_{name.lower()}".replace("_k", "_K"))(
        x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
        ctypes.c_int64(x.size // n_per_row), ctypes.c_int64(n_per_row), qw)
    return out


def make_input():
    """Blocks of 256 by category, from numpy's PCG64 with seed 20251127."""
    rng = np.random.default_rng(20251127)
    blocks = []
    add = lambda v: blocks.append(np.asarray(v, dtype=np.float32).reshape(256))
    for _ in range(10):
        add(rng.normal(0, 0.02, 256))          # weight-like
    for _ in range(6):
        add(rng.normal(0, 1, 256))
    for _ in range(4):
        add(rng.uniform(-1, 1, 256))
    for _ in range(3):
        add(np.abs(rng.normal(0, 1, 256)))     # positive only
    for _ in range(3):
        add(-np.abs(rng.normal(0, 1, 256)))    # negative only
    for _ in range(3):
        v = rng.normal(0, 0.05, 256)
        v[rng.integers(0, 256, 3)] = rng.normal(0, 5, 3)  # outliers
        add(v)
    for _ in range(3):
        v = rng.normal(0, 1, 256)
        v[rng.random(256) < 0.5] = 0.0         # half exact zeros
        add(v)
    for _ in range(3):
        v = rng.normal(0, 1, 256)
        for g in rng.choice(16, 5, replace=False):
            v[16 * g:16 * g + 16] = 0.0        # whole zero sub-blocks
        add(v)
    add(np.zeros(256))
    add(np.full(256, -0.0))
    add(np.full(256, 0.75))                    # constant
    add(np.full(256, -3.0))
    add(rng.normal(0, 1e-3, 256) + 0.5)        # offset, narrow range
    add(rng.normal(0, 1e-6, 256))              # tiny
    add(rng.normal(0, 1e4, 256))               # large
    add(np.round(rng.normal(0, 4, 256)))       # integers: ties in the searches
    add(np.tile(np.arange(-8, 8, dtype=np.float32) * 0.125, 16))
    v = np.zeros(256)
    v[[3, 100, 200]] = [1.0, -2.0, 0.5]        # sparse
    add(v)
    return np.concatenate(blocks)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "fixture":
        lib = build(sys.argv[2])
        x = make_input()
        x.astype("<f4").tofile(os.path.join(sys.argv[3], "kquant_input.f32"))
        for name in TYPES:
            quantize(lib, x, name).tofile(os.path.join(sys.argv[3], f"kquant_expected.{name}.bin"))
    elif len(sys.argv) >= 6 and sys.argv[1] == "quantize":
        lib = build(sys.argv[2])
        x = np.fromfile(sys.argv[3], dtype="<f4")
        for name in sys.argv[5:]:
            quantize(lib, x, name).tofile(f"{sys.argv[4]}.{name}.bin")
    elif len(sys.argv) >= 8 and sys.argv[1] == "rows":
        lib = build(sys.argv[2])
        x = np.fromfile(sys.argv[3], dtype="<f4")
        n_per_row = int(sys.argv[4])
        imatrix = None if sys.argv[5] == "-" else np.fromfile(sys.argv[5], dtype="<f4")
        for name in sys.argv[7:]:
            quantize_rows(lib, x, n_per_row, imatrix, name).tofile(f"{sys.argv[6]}.{name}.bin")
    else:
        sys.exit(__doc__)
