#!/usr/bin/env python3
"""Judge: write a safetensors file with the PyPI `safetensors` package (numpy API; BF16 as
ml_dtypes.bfloat16) from deterministic values, and print, as JSON, each tensor's dtype, shape
and raw bytes (hex) as numpy holds them, for the Rust reader to compare against."""
import json
import sys

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

path = sys.argv[1]
g = np.random.default_rng(1234)
t = {
    "f32": g.standard_normal((3, 5), dtype=np.float32),
    "f16": g.standard_normal((4, 2)).astype(np.float16),
    "bf16": g.standard_normal((2, 3, 2), dtype=np.float32).astype(ml_dtypes.bfloat16),
    "f64": g.standard_normal(3),
    "i8": g.integers(-128, 127, (7,), dtype=np.int8),
    "i16": g.integers(-30000, 30000, (2, 2), dtype=np.int16),
    "i32": g.integers(-(2**31), 2**31 - 1, (5,), dtype=np.int32),
    "i64": g.integers(-(2**62), 2**62, (2,), dtype=np.int64),
    "u8": g.integers(0, 255, (3, 1), dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.float32),
}
save_file(t, path, metadata={"format": "pt", "note": "written by python"})
names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(ml_dtypes.bfloat16): "BF16",
         np.dtype(np.float64): "F64", np.dtype(np.int8): "I8", np.dtype(np.int16): "I16",
         np.dtype(np.int32): "I32", np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8",
         np.dtype(np.bool_): "BOOL"}
out = {}
for k, v in t.items():
    out[k] = {"dtype": names[v.dtype], "shape": list(v.shape), "hex": np.ascontiguousarray(v).tobytes().hex()}
json.dump(out, sys.stdout, sort_keys=True)
