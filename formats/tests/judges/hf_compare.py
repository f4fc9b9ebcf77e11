#!/usr/bin/env python3
"""Judge (no torch): two HF model directories hold the same model.
usage: hf_compare.py A B  -- transformers' AutoConfig (which needs no torch) loads both to equal
                             configs; the PyPI `safetensors` package (numpy API, BF16 as
                             ml_dtypes.bfloat16) reads both weight sets (single file or index):
                             same tensor names, and each tensor has the same dtype, shape and
                             bytes. Prints "same N" (N = tensors)."""
import json
import os
import sys

import ml_dtypes  # noqa: F401  (registers the bfloat16 dtype with numpy)
from safetensors import safe_open
from transformers import AutoConfig


def weights(root):
    index = os.path.join(root, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        weight_map, files = None, ["model.safetensors"]
    out = {}
    for file in files:
        with safe_open(os.path.join(root, file), framework="np") as f:
            for name in f.keys():
                assert name not in out, f"{root}: {name} in two shards"
                assert weight_map is None or weight_map[name] == file, f"{root}: {name} not in {file}"
                out[name] = f.get_tensor(name)
    assert weight_map is None or set(weight_map) == set(out), f"{root}: index and shards disagree"
    return out


def config(root):
    c = AutoConfig.from_pretrained(root).to_dict()
    c.pop("_name_or_path", None)
    return c


a, b = sys.argv[1], sys.argv[2]
ca, cb = config(a), config(b)
assert ca == cb, (ca, cb)
wa, wb = weights(a), weights(b)
assert wa.keys() == wb.keys(), (sorted(wa), sorted(wb))
for k in wa:
    x, y = wa[k], wb[k]
    assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), k
print("same", len(wa))
