"""Write a synthetic Llama-shaped HF model dir with 7B-sized layers (random f16 weights),
for the conversion benchmark: hidden 4096, intermediate 11008, 32 heads, N layers, small
vocabulary. Data is generated in chunks so this script itself stays small in memory.

usage: gen-synthetic-model.py OUT_DIR [--layers 4] [--vocab 2048]
"""
import argparse
import json
import os
import struct

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2048)
    args = ap.parse_args()
    h, ff, heads = 4096, 11008, 32
    shapes = {"model.embed_tokens.weight": (args.vocab, h)}
    for i in range(args.layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (h,)
        shapes[p + "mlp.down_proj.weight"] = (h, ff)
        shapes[p + "mlp.gate_proj.weight"] = (ff, h)
        shapes[p + "mlp.up_proj.weight"] = (ff, h)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        for n in ("k", "o", "q", "v"):
            shapes[p + f"self_attn.{n}_proj.weight"] = (h, h)
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (args.vocab, h)

    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape in shapes.items():
            count = int(np.prod(shape))
            done = 0
            while done < count:
                k = min(count - done, 1 << 22)
                f.write((rng.standard_normal(k, dtype=np.float32) * 0.02).astype("<f2").tobytes())
                done += k
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h,
        "intermediate_size": ff, "num_hidden_layers": args.layers, "num_attention_heads": heads,
        "num_key_value_heads": heads, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 4096, "vocab_size": args.vocab, "tie_word_embeddings": False,
        "torch_dtype": "float16", "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
