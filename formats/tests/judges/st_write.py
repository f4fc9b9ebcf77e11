#!/usr/bin/env python3
"""Judge: write a safetensors file with the PyPI `safetensors` package (torch API, so BF16 is
included) from deterministic values, and print, as JSON, each tensor's dtype, shape and raw
bytes (hex) as torch holds them, for the Rust reader to compare against."""
import json
import sys

import torch
from safetensors.torch import save_file

path = sys.argv[1]
g = torch.Generator().manual_seed(1234)
t = {
    "f32": torch.randn(3, 5, generator=g),
    "f16": torch.randn(4, 2, generator=g).to(torch.float16),
    "bf16": torch.randn(2, 3, 2, generator=g).to(torch.bfloat16),
    "f64": torch.randn(3, generator=g).to(torch.float64),
    "i8": torch.randint(-128, 127, (7,), generator=g, dtype=torch.int8),
    "i16": torch.randint(-30000, 30000, (2, 2), generator=g, dtype=torch.int16),
    "i32": torch.randint(-(2**31), 2**31 - 1, (5,), generator=g, dtype=torch.int32),
    "i64": torch.randint(-(2**62), 2**62, (2,), generator=g, dtype=torch.int64),
    "u8": torch.randint(0, 255, (3, 1), generator=g, dtype=torch.uint8),
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(2.5),
    "empty": torch.zeros(0, 4),
}
save_file(t, path, metadata={"format": "pt", "note": "written by python"})
names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
         torch.int8: "I8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64",
         torch.uint8: "U8", torch.bool: "BOOL"}
out = {}
for k, v in t.items():
    flat = v.contiguous().reshape(-1)
    out[k] = {"dtype": names[v.dtype], "shape": list(v.shape),
              "hex": flat.view(torch.uint8).numpy().tobytes().hex() if flat.numel() else ""}
json.dump(out, sys.stdout, sort_keys=True)
