"""Test helper: writes DIR/model.safetensors with the first 64 values of every row of
`model.layers.0.self_attn.q_proj.weight` replaced by -0.0 (all-zero blocks whose first
element is -0.0, where ggml and gguf-py disagree on the sign of the zero scale). Prints {}."""
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

path = sys.argv[1] + "/model.safetensors"
t = load_file(path)
w = t["model.layers.0.self_attn.q_proj.weight"].copy()
w[:, :64] = -0.0
t["model.layers.0.self_attn.q_proj.weight"] = w
save_file(t, path, metadata={"format": "pt"})
print("{}")
