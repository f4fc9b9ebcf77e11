#!/usr/bin/env python3
"""Judge: a model directory rebuilt by llmtool (HF -> GGUF names/bytes/metadata -> HF) is the
fixture transformers computed expected_logits.json on: same derived config, same weights.

usage: hf_roundtrip.py FIXTURE_DIR REBUILT_DIR [FIXTURE_DIR REBUILT_DIR ...]

Checks, without torch:
- transformers' AutoConfig (which needs no torch) loads the rebuilt config.json and derives the
  same hyper-parameters (rope_parameters and layer_types included) as from the original's;
- the PyPI `safetensors` package (numpy API) reads the rebuilt model.safetensors: the same
  tensor names as the fixture (so transformers would find no missing or unexpected weight),
  and every tensor has the fixture's dtype, shape and bytes.
The fixture's expected_logits.json are transformers' logits (f32, eager) for exactly these
weights under this config (fixtures/gen_fixtures.py), so a rebuilt directory that passes
would reproduce them bit for bit: this replaces loading it with AutoModelForCausalLM (which
needs torch) and comparing logits.
"""
import sys

import numpy as np
from safetensors import safe_open
from transformers import AutoConfig

ATTRS = [
    "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "vocab_size", "head_dim",
    "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "rope_parameters",
    "sliding_window", "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar",
    "original_max_position_embeddings", "hidden_act", "hidden_activation", "attention_bias",
    "layer_norm_eps", "logit_scale", "use_qk_norm", "layer_types", "architectures",
    # Mixture of Experts
    "num_local_experts", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
    "shared_expert_intermediate_size", "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers", "qkv_bias",
]


def tensors(path: str) -> dict:
    out = {}
    with safe_open(path, framework="np") as f:
        for name in f.keys():
            out[name] = f.get_tensor(name)
    return out


def check(fixture: str, rebuilt: str) -> None:
    a = AutoConfig.from_pretrained(fixture)
    b = AutoConfig.from_pretrained(rebuilt)
    bad = []
    for k in ATTRS:
        va, vb = getattr(a, k, "<absent>"), getattr(b, k, "<absent>")
        if va != vb:
            bad.append(f"{k}: original {va!r} rebuilt {vb!r}")
    if bad:
        sys.exit(f"{fixture}: config mismatch:\n  " + "\n  ".join(bad))
    want = tensors(f"{fixture}/model.safetensors")
    got = tensors(f"{rebuilt}/model.safetensors")
    if set(want) != set(got):
        sys.exit(f"{fixture}: missing {sorted(set(want) - set(got))}, unexpected {sorted(set(got) - set(want))}")
    for name, w in want.items():
        g = got[name]
        if g.dtype != w.dtype or g.shape != w.shape:
            sys.exit(f"{fixture}: {name}: rebuilt {g.dtype}{list(g.shape)}, original {w.dtype}{list(w.shape)}")
        if g.tobytes() != w.tobytes():
            n = int(np.count_nonzero(g.view(np.uint8) != w.view(np.uint8)))
            sys.exit(f"{fixture}: {name}: {n} bytes differ")
    print(f"ok {fixture} config and {len(want)} tensors identical")


def main() -> None:
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit("usage: hf_roundtrip.py FIXTURE_DIR REBUILT_DIR [...]")
    for i in range(0, len(args), 2):
        check(args[i], args[i + 1])


if __name__ == "__main__":
    main()
