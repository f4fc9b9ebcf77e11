#!/usr/bin/env python3
"""Judge: tensor names and metadata keys as gguf-py (llama.cpp's gguf package) defines them.

usage: gguf_names.py ARCH N_BLOCKS < hf_names.json
Prints JSON:
  model_tensors: gguf-py MODEL_TENSORS[arch] names formatted for blocks 0..N_BLOCKS-1
  map: {hf_name: gguf name (with .weight/.bias) or null} via TensorNameMap.get_name
  keys: every metadata key gguf-py's Keys class defines, formatted for ARCH
"""
import json
import sys

import gguf
from gguf.constants import MODEL_ARCH_NAMES, MODEL_TENSORS, TENSOR_NAMES, Keys


def main() -> None:
    arch_name, n_blocks = sys.argv[1], int(sys.argv[2])
    arch = next(a for a, n in MODEL_ARCH_NAMES.items() if n == arch_name)
    names = set()
    for t in MODEL_TENSORS[arch]:
        fmt = TENSOR_NAMES[t]
        for bid in range(n_blocks):
            names.add(fmt.format(bid=bid))
    tmap = gguf.get_tensor_name_map(arch, n_blocks)
    hf_names = json.load(sys.stdin)
    mapped = {}
    for hf in hf_names:
        mapped[hf] = tmap.get_name(hf, try_suffixes=(".weight", ".bias"))
    keys = set()
    for group in vars(Keys).values():
        if isinstance(group, type):
            stack = [group]
            while stack:
                g = stack.pop()
                for v in vars(g).values():
                    if isinstance(v, str):
                        keys.add(v.replace("{arch}", arch_name))
                    elif isinstance(v, type):
                        stack.append(v)
    print(json.dumps({"model_tensors": sorted(names), "map": mapped, "keys": sorted(keys)}))


if __name__ == "__main__":
    main()
