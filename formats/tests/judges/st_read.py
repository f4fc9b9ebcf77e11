#!/usr/bin/env python3
"""Judge: read a safetensors file (or a sharded set via its index.json) with the PyPI
`safetensors` package and print, as JSON, the metadata and every tensor's dtype, shape and
raw bytes (hex). framework="pt" so that BF16 is readable (numpy has no bfloat16)."""
import json
import os
import sys

import torch
from safetensors import safe_open


def raw_bytes(t):
    t = t.contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def dump_file(path, out):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        for name in f.keys():
            sl = f.get_slice(name)
            out[name] = {
                "dtype": sl.get_dtype(),
                "shape": list(sl.get_shape()),
                "hex": raw_bytes(f.get_tensor(name)).hex(),
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
