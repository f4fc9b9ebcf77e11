#!/usr/bin/env python3
"""Fixtures for kernels/tests/matmul_ggml.rs, produced by llama.cpp's own CPU backend.

Loads libggml-base / libggml-cpu from a llama.cpp build (default /work/llama-build/bin, built
with GGML_NATIVE on x86 with AVX2) and, per weight type, records:
  - weights quantized by `ggml_quantize_chunk` (the reference quantizers),
  - the activations converted by `ggml_get_type_traits_cpu(vec_dot_type)->from_float`, i.e.
    exactly what ggml-cpu RUNS (x86 `quantize_row_q8_0`/`q8_1` AVX2 paths, `q8_K`, f16/bf16),
  - the dot products `type_traits_cpu(w)->vec_dot(weight row, activation row)`.
File kernels/tests/data/matmul_ggml.<TYPE>.bin, little-endian:
  u32 k, u32 rows, u32 tokens, then f32 x[tokens*k], weight bytes, activation bytes,
  f32 dot[tokens*rows] (dot[t*rows + r]).
Usage: python3 kernels/tools/gen_matmul_fixtures.py [LLAMA_BIN_DIR] [--iquants]
With --iquants: only the 256-element i-quants (IQ4_XS … IQ1_M), from their own random stream
(seed 20261207, so the earlier fixtures stay reproducible by the plain command), quantized with
a random importance matrix (IQ2_XXS, IQ2_XS, IQ1_S and IQ1_M require one). Made with
/opt/llamacpp/build/bin (llama.cpp 0c1e570, the tree vendored in llama-cpp-python 0.3.36).
"""
import ctypes
import os
import struct
import sys

import numpy as np

ARGS = [a for a in sys.argv[1:] if a != "--iquants"]
IQUANTS = "--iquants" in sys.argv[1:]
BIN = ARGS[0] if ARGS else "/work/llama-build/bin"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")

base = ctypes.CDLL(os.path.join(BIN, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(os.path.join(BIN, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)

FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class TraitsCpu(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p), ("vec_dot_type", ctypes.c_int),
                ("nrows", ctypes.c_int64)]


cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TraitsCpu)
cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
cpu.ggml_cpu_init.restype = None
base.ggml_quantize_chunk.restype = ctypes.c_size_t
base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                     ctypes.c_int64, ctypes.c_void_p]
base.ggml_row_size.restype = ctypes.c_size_t
base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
cpu.ggml_cpu_init()

# ggml type ids (ggml.h enum ggml_type)
TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11,
         "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "IQ4_NL": 20, "BF16": 30}
IQ_TYPES = {"IQ4_XS": 23, "IQ3_S": 21, "IQ3_XXS": 18, "IQ2_S": 22, "IQ2_XS": 17, "IQ2_XXS": 16, "IQ1_M": 29,
            "IQ1_S": 19}
K, ROWS, TOKENS = 512, 7, 5


def main():
    rng = np.random.default_rng(20261207 if IQUANTS else 20261127)
    for name, ty in (IQ_TYPES if IQUANTS else TYPES).items():
        tr = cpu.ggml_get_type_traits_cpu(ty).contents
        vdt = tr.vec_dot_type
        vtr = cpu.ggml_get_type_traits_cpu(vdt).contents
        w32 = (rng.standard_normal((ROWS, K)) * 0.05).astype(np.float32)
        x = rng.standard_normal((TOKENS, K)).astype(np.float32)
        x[:, ::97] *= 8.0  # a few outliers, like real activations
        # Last token: halfway cases. Each 32-block holds 127 (so the AVX2 multiplier 127/amax is
        # exactly 1) and values j + 0.5: ggml's AVX2 rounding (half to even) and the portable
        # quantize_row_q8_0_ref (roundf, half away from zero) disagree on every other one.
        ties = np.array([(j - 16) + 0.5 for j in range(32)], dtype=np.float32)
        ties[7] = 127.0
        x[-1] = np.tile(ties, K // 32) * np.repeat(np.where(np.arange(K // 32) % 2 == 0, 1.0, -1.0), 32)
        wrow = base.ggml_row_size(ty, K)
        arow = base.ggml_row_size(vdt, K)
        wbuf = ctypes.create_string_buffer(wrow * ROWS)
        imatrix = (rng.random(K) + 0.1).astype(np.float32) if IQUANTS else None
        n = base.ggml_quantize_chunk(ty, w32.ctypes.data, wbuf, 0, ROWS, K,
                                     None if imatrix is None else imatrix.ctypes.data)
        assert n == wrow * ROWS, (name, n, wrow * ROWS)
        abuf = ctypes.create_string_buffer(arow * TOKENS)
        from_float = FROM_FLOAT(vtr.from_float)
        for t in range(TOKENS):
            from_float(x[t].ctypes.data, ctypes.addressof(abuf) + t * arow, K)
        vec_dot = VEC_DOT(tr.vec_dot)
        dots = np.zeros((TOKENS, ROWS), dtype=np.float32)
        s = ctypes.c_float()
        for t in range(TOKENS):
            for r in range(ROWS):
                vec_dot(K, ctypes.addressof(s), 0, ctypes.addressof(wbuf) + r * wrow, 0,
                        ctypes.addressof(abuf) + t * arow, 0, 1)
                dots[t, r] = s.value
        path = os.path.join(OUT, f"matmul_ggml.{name}.bin")
        with open(path, "wb") as f:
            f.write(struct.pack("<III", K, ROWS, TOKENS))
            f.write(x.tobytes())
            f.write(wbuf.raw)
            f.write(abuf.raw)
            f.write(dots.tobytes())
        print(f"{name}: vec_dot_type {vdt}, {os.path.getsize(path)} bytes -> {path}")


if __name__ == "__main__":
    main()
