#!/usr/bin/env python3
"""Judge for llmtool-kernels quantization: gguf-py (llama.cpp's numpy port of ggml's
quantize_row_*_ref, documented there as bit-exact for Q8_0 and written op for op for the
other legacy formats).

  quant.py quantize IN.f32 OUTPREFIX QTYPE...
      IN.f32 holds little-endian float32 values (a multiple of 32 of them); for each QTYPE
      (e.g. Q4_0) writes OUTPREFIX.QTYPE.bin = gguf.quants.quantize(values, QTYPE) bytes.
"""
import sys

try:
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize
except ImportError as e:  # the Rust test shows this and fails
    sys.exit(f"judge needs the python packages numpy and gguf (pip install gguf): {e}")


def quantize_file(src, prefix, qtypes):
    data = np.fromfile(src, dtype="<f4").astype(np.float32)
    for name in qtypes:
        out = quantize(data, GGMLQuantizationType[name])
        assert out.dtype == np.uint8, out.dtype
        out.reshape(-1).tofile(f"{prefix}.{name}.bin")


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "quantize":
        quantize_file(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
