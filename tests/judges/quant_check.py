"""Judge: is every tensor of a quantized GGUF what gguf-py makes of the input?

Usage: quant_check.py IN.gguf OUT.gguf  ->  JSON report

For each output tensor: same type as the input → bytes must be identical; otherwise the
input is dequantized with `gguf.quants.dequantize` (or read as floats) and re-encoded with
`gguf.quants.quantize` (or numpy astype for F32/F16), and the bytes compared. Blocks that
differ are allowed only when both sides decode to all zeros: for all-zero blocks ggml (which
we follow) and gguf-py disagree on the sign of the zero scale (see kernels/src/quant/mod.rs).
"""
import hashlib
import json
import sys

import numpy as np
import gguf
from gguf import quants

Q = gguf.GGMLQuantizationType


def to_f32(t):
    data = np.asarray(t.data)
    if t.tensor_type in (Q.F32, Q.F16):
        return data.astype(np.float32).reshape(-1)
    return quants.dequantize(data, t.tensor_type).astype(np.float32).reshape(-1)


def quantizable_types():
    """Types gguf-py can quantize: probe each with one block of zeros."""
    out = set()
    for qtype in quants._type_traits:
        try:
            quants.quantize(np.zeros((1, gguf.GGML_QUANT_SIZES[qtype][0]), dtype=np.float32), qtype)
            out.add(qtype)
        except NotImplementedError:
            pass
    return out


def main():
    global QUANTIZABLE
    QUANTIZABLE = quantizable_types()
    a = gguf.GGUFReader(sys.argv[1])
    b = gguf.GGUFReader(sys.argv[2])
    src = {t.name: t for t in a.tensors}
    report = {"tensors": {}, "file_type": None, "quantization_version": None}
    for key in ("general.file_type", "general.quantization_version"):
        f = b.fields.get(key)
        if f is not None:
            report[key.split(".")[1]] = int(f.parts[-1][0])
    for t in b.tensors:
        s = src[t.name]
        ours = bytes(np.asarray(t.data).view(np.uint8).reshape(-1))
        entry = {"type": t.tensor_type.name, "from": s.tensor_type.name, "ne": [int(x) for x in t.shape]}
        if t.tensor_type == s.tensor_type:
            entry["ok"] = ours == bytes(np.asarray(s.data).view(np.uint8).reshape(-1))
            entry["how"] = "copied"
        else:
            x = to_f32(s)
            ne0 = int(t.shape[0])
            rows = x.reshape(-1, ne0)
            if t.tensor_type == Q.F32:
                theirs = rows.astype(np.float32).tobytes()
            elif t.tensor_type == Q.F16:
                theirs = rows.astype(np.float16).tobytes()
            elif t.tensor_type not in QUANTIZABLE:
                # gguf-py has no quantizer for this type (the K-quants): judge the result by
                # its error instead. Our bytes decoded by gguf-py vs the input, as RMS error
                # relative to the input's RMS.
                back = quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64).reshape(-1)
                rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
                err = float(np.sqrt(np.mean((back - x) ** 2)))
                entry["ok"], entry["how"] = True, "error only (gguf-py cannot quantize this type)"
                entry["rel_rmse"] = err / rms if rms > 0 else err
                entry["sha256"] = hashlib.sha256(ours).hexdigest()
                report["tensors"][t.name] = entry
                continue
            else:
                theirs = bytes(quants.quantize(rows, t.tensor_type).view(np.uint8).reshape(-1))
            if ours == theirs:
                entry["ok"], entry["how"] = True, "identical"
            elif len(ours) != len(theirs):
                entry["ok"], entry["how"] = False, f"sizes differ: {len(ours)} vs {len(theirs)}"
            else:
                bs, ts = gguf.GGML_QUANT_SIZES[t.tensor_type]
                ob = np.frombuffer(ours, np.uint8).reshape(-1, ts)
                tb = np.frombuffer(theirs, np.uint8).reshape(-1, ts)
                diff = np.nonzero((ob != tb).any(axis=1))[0]
                od = quants.dequantize(ob[diff], t.tensor_type).reshape(len(diff), -1)
                td = quants.dequantize(tb[diff], t.tensor_type).reshape(len(diff), -1)
                zero = bool((od == 0).all() and (td == 0).all())
                entry["ok"] = zero
                entry["how"] = f"{len(diff)} block(s) differ" + (" (all-zero blocks: sign of the zero scale)" if zero else "")
            entry["sha256"] = hashlib.sha256(ours).hexdigest()
        report["tensors"][t.name] = entry
    print(json.dumps(report))


main()
