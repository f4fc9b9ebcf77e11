#!/usr/bin/env python3
"""Judge for llmtool-kernels float conversion: numpy (f16) and ml_dtypes (bf16).

  convert.py encode IN.f32 OUT_F16.u16 OUT_BF16.u16
      f32 values -> f16 bits (numpy astype(float16)) and bf16 bits (ml_dtypes.bfloat16, the
      numpy bfloat16 dtype of JAX/TensorFlow), both round-to-nearest-even.
  convert.py decode OUT_F16.f32 OUT_BF16.f32
      every 16-bit pattern 0..65535 decoded as f16 (numpy) and as bf16 (ml_dtypes) to f32.
"""
import sys

try:
    import ml_dtypes
    import numpy as np
except ImportError as e:
    sys.exit(f"judge needs the python packages numpy and ml_dtypes: {e}")


def encode(src, out16, outbf):
    x = np.fromfile(src, dtype="<f4")
    with np.errstate(over="ignore", invalid="ignore"):
        x.astype("<f2").view("<u2").tofile(out16)
        x.astype(ml_dtypes.bfloat16).view("<u2").tofile(outbf)


def decode(out16, outbf):
    bits = np.arange(65536, dtype=np.uint32).astype("<u2")
    bits.view("<f2").astype("<f4").tofile(out16)
    bits.view(ml_dtypes.bfloat16).astype("<f4").tofile(outbf)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "encode":
        encode(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "decode":
        decode(*sys.argv[2:])
    else:
        sys.exit(__doc__)
