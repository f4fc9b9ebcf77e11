#!/usr/bin/env python3
"""Judge: the metadata of a GGUF file written by llama.cpp's converter, read with gguf-py's
GGUFReader. Prints JSON {"kv": [[key, type, value], ...] in file order (arrays give their length),
"tensors": [[name, type, [ne0, ne1, ...]], ...]}.

usage: gguf_metadata.py FILE.gguf [OUT.safetensors]
With OUT, also writes every F32/F16 tensor's data (GGUF names, row-major shape = ne reversed)
to a safetensors file, for byte comparisons.
"""
import json
import sys

import gguf


def main() -> None:
    r = gguf.GGUFReader(sys.argv[1])
    out = []
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        t = gguf.GGUFValueType(f.types[0]).name
        if t == "ARRAY":
            out.append([k, t, len(f.data)])
        else:
            v = f.contents()
            out.append([k, t, v])
    tensors = [[t.name, t.tensor_type.name, [int(d) for d in t.shape]] for t in r.tensors]
    if len(sys.argv) > 2:
        import numpy as np
        from safetensors.numpy import save_file

        data = {}
        for t in r.tensors:
            if t.tensor_type.name in ("F32", "F16"):
                shape = [int(d) for d in reversed(t.shape)]
                data[t.name] = np.ascontiguousarray(t.data).reshape(shape)
        save_file(data, sys.argv[2])
    print(json.dumps({"kv": out, "tensors": tensors}))


if __name__ == "__main__":
    main()
