"""Judge: read an HF model dir's safetensors weights with the PyPI `safetensors` package,
its tokenizer.json with `tokenizers` and its config.json with `transformers.AutoConfig`.

usage: st_dump.py DIR -> JSON on stdout:
  {"tensors": {name: {"dtype", "shape", "sha256"}}, "metadata": {...} | null,
   "config_model_type": str, "config_rope_parameters": {...} | null,
   "tokenizer_vocab_size": int | null}
"""
import glob
import hashlib
import json
import os
import sys

from safetensors import safe_open


def main() -> None:
    root = sys.argv[1]
    files = sorted(glob.glob(os.path.join(root, "*.safetensors")))
    index_path = os.path.join(root, "model.safetensors.index.json")
    weight_map = None
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
    tensors = {}
    metadata = None
    for path in files:
        # framework="numpy" cannot hold bfloat16: hash the raw bytes through the header.
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
            base = 8 + n
            for name, info in header.items():
                if name == "__metadata__":
                    metadata = metadata or info
                    continue
                begin, end = info["data_offsets"]
                f.seek(base + begin)
                data = f.read(end - begin)
                tensors[name] = {"dtype": info["dtype"], "shape": info["shape"],
                                 "sha256": hashlib.sha256(data).hexdigest(),
                                 "file": os.path.basename(path)}
        # ...and the reference reader must open it and agree on names and shapes.
        with safe_open(path, framework="numpy") as st:
            for name in st.keys():
                sl = st.get_slice(name)
                assert list(sl.get_shape()) == tensors[name]["shape"], name
    if weight_map is not None:
        assert set(weight_map) == set(tensors), "index and shards disagree"
        for name, file in weight_map.items():
            assert tensors[name]["file"] == file, name
    out = {"tensors": tensors, "metadata": metadata}
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(root)
    out["config_model_type"] = config.model_type
    # transformers' standardized rope parameters (rope_type, rope_theta, factors, ...)
    out["config_rope_parameters"] = getattr(config, "rope_parameters", None)
    tok_path = os.path.join(root, "tokenizer.json")
    if os.path.exists(tok_path):
        from tokenizers import Tokenizer
        out["tokenizer_vocab_size"] = Tokenizer.from_file(tok_path).get_vocab_size()
    else:
        out["tokenizer_vocab_size"] = None
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
