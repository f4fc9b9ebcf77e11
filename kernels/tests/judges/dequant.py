#!/usr/bin/env python3
"""Judge for llmtool-kernels dequantization: gguf-py (llama.cpp's reference numpy code).

  dequant.py blocks QTYPE IN.bin OUT.f32
      IN.bin holds raw GGML blocks of QTYPE (e.g. Q4_0); writes gguf.quants.dequantize(...)
      as little-endian float32.
  dequant.py model MODEL.gguf OUTDIR NAME...
      For each tensor NAME of the GGUF file writes OUTDIR/NAME.raw (its stored bytes),
      OUTDIR/NAME.f32 (gguf-py's dequantization) and OUTDIR/manifest.tsv
      (one line per tensor: name, type name, element count, tab-separated).
"""
import os
import sys

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize
except ImportError as e:  # the Rust test shows this and fails
    sys.exit(f"judge needs the python packages numpy and gguf (pip install gguf): {e}")


def blocks(qtype, src, dst):
    data = np.fromfile(src, dtype=np.uint8)
    out = dequantize(data, GGMLQuantizationType[qtype]).astype("<f4", copy=False)
    out.reshape(-1).tofile(dst)


def model(path, outdir, names):
    reader = gguf.GGUFReader(path)
    by_name = {t.name: t for t in reader.tensors}
    manifest = []
    for name in names:
        if name not in by_name:
            sys.exit(f"{path}: no tensor {name!r}")
        t = by_name[name]
        raw = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
        raw.tofile(os.path.join(outdir, name + ".raw"))
        deq = dequantize(np.ascontiguousarray(t.data), t.tensor_type).astype("<f4")
        deq.reshape(-1).tofile(os.path.join(outdir, name + ".f32"))
        manifest.append(f"{name}\t{t.tensor_type.name}\t{int(t.n_elements)}\n")
    with open(os.path.join(outdir, "manifest.tsv"), "w") as f:
        f.writelines(manifest)


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "blocks":
        blocks(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 4 and sys.argv[1] == "model":
        model(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.exit(__doc__)
