#!/usr/bin/env python3
"""Judge: read a safetensors file (or a sharded set via its index.json) with the PyPI
`safetensors` package's numpy API and print, as JSON, the metadata and every tensor's dtype,
shape and raw bytes (hex). BF16 reads as ml_dtypes.bfloat16 (importing ml_dtypes registers
numpy's "bfloat16" dtype, which safetensors' numpy backend asks for)."""
import json
import os
import sys

import ml_dtypes  # noqa: F401  (registers the bfloat16 dtype with numpy)
import numpy as np
from safetensors import safe_open

# safetensors dtype name -> the numpy dtype its numpy API must hand back.
NP_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
             "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U64": np.uint64,
             "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_}


def raw_bytes(a):
    return np.ascontiguousarray(a).tobytes()


def dump_file(path, out):
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
        for name in f.keys():
            sl = f.get_slice(name)
            dtype = sl.get_dtype()
            a = f.get_tensor(name)
            assert a.dtype == np.dtype(NP_DTYPES[dtype]), (name, dtype, a.dtype)
            assert list(a.shape) == list(sl.get_shape()), (name, a.shape, sl.get_shape())
            out[name] = {
                "dtype": dtype,
                "shape": list(sl.get_shape()),
                "hex": raw_bytes(a).hex(),
                "file": os.path.basename(path),
            }
    return meta


def main():
    path = sys.argv[1]
    tensors = {}
    result = {"tensors": tensors}
    if path.endswith(".index.json"):
        with open(path) as fh:
            index = json.load(fh)
        result["index_metadata"] = index.get("metadata")
        shards = sorted(set(index["weight_map"].values()))
        metas = [dump_file(os.path.join(os.path.dirname(path), s), tensors) for s in shards]
        result["metadata"] = metas[0]
        for name, shard in index["weight_map"].items():
            assert tensors[name]["file"] == shard, (name, shard)
        assert set(index["weight_map"]) == set(tensors)
    else:
        result["metadata"] = dump_file(path, tensors)
    json.dump(result, sys.stdout, sort_keys=True)


main()
