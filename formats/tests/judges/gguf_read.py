#!/usr/bin/env python3
"""Independent judge: dump a GGUF file as JSON using llama.cpp's gguf-py GGUFReader.

Usage: gguf_read.py FILE [--no-data]  -> JSON on stdout (--no-data: "hex" is null):
  {"version", "alignment", "data_offset",
   "kv": [{"key", "type": id, "value": V}],          # file order
   "tensors": [{"name", "type": id, "ne": [...], "offset": absolute, "n_bytes", "hex"}]}
V: int for integers, bool, str, {"f32_bits": u32} / {"f64_bits": u64} for floats (bit exact,
NaN payloads kept), {"elem_type": id, "items": [V...]} for arrays (nested arrays too).
GGUFReader flattens nested arrays in .contents(), so we walk the raw parts it parsed.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType


def decode(parts, gtype):
    if gtype == GGUFValueType.STRING:
        next(parts)  # length
        return bytes(next(parts)).decode("utf-8")
    if gtype == GGUFValueType.ARRAY:
        itype = GGUFValueType(int(next(parts)[0]))
        n = int(next(parts)[0])
        return {"elem_type": int(itype), "items": [decode(parts, itype) for _ in range(n)]}
    v = next(parts)
    if gtype == GGUFValueType.FLOAT32:
        return {"f32_bits": int(v.view(np.uint32)[0])}
    if gtype == GGUFValueType.FLOAT64:
        return {"f64_bits": int(v.view(np.uint64)[0])}
    if gtype == GGUFValueType.BOOL:
        return bool(v[0])
    return int(v[0])


def main(path, with_data=True):
    r = GGUFReader(path)
    kv = []
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            continue  # pseudo fields for the fixed header
        gtype = GGUFValueType(int(field.parts[2][0]))
        kv.append({"key": name, "type": int(gtype), "value": decode(iter(field.parts[3:]), gtype)})
    tensors = [
        {
            "name": t.name,
            "type": int(t.tensor_type),
            "ne": [int(d) for d in t.shape],
            "offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes),
            "hex": t.data.tobytes().hex() if with_data else None,
        }
        for t in r.tensors
    ]
    out = {
        "version": int(r.fields["GGUF.version"].parts[0][0]),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "kv": kv,
        "tensors": tensors,
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], "--no-data" not in sys.argv[2:])
