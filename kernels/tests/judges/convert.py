#!/usr/bin/env python3
"""Judge for llmtool-kernels float conversion: numpy (f16) and torch (bf16).

  convert.py encode IN.f32 OUT_F16.u16 OUT_BF16.u16
      f32 values -> f16 bits (numpy astype(float16)) and bf16 bits (torch .to(bfloat16)),
      both round-to-nearest-even.
  convert.py decode OUT_F16.f32 OUT_BF16.f32
      every 16-bit pattern 0..65535 decoded as f16 (numpy) and as bf16 (torch) to f32.
"""
import sys

try:
    import numpy as np
    import torch
except ImportError as e:
    sys.exit(f"judge needs the python packages numpy and torch: {e}")


def encode(src, out16, outbf):
    x = np.fromfile(src, dtype="<f4")
    with np.errstate(over="ignore", invalid="ignore"):
        x.astype("<f2").view("<u2").tofile(out16)
    torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view("<u2").tofile(outbf)


def decode(out16, outbf):
    bits = np.arange(65536, dtype=np.uint32).astype("<u2")
    bits.view("<f2").astype("<f4").tofile(out16)
    t = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).to(torch.float32)
    t.numpy().astype("<f4").tofile(outbf)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "encode":
        encode(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "decode":
        decode(*sys.argv[2:])
    else:
        sys.exit(__doc__)
