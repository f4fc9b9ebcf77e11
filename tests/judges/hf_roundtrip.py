#!/usr/bin/env python3
"""Judge: a model directory rebuilt by llmtool (HF -> GGUF names/bytes/metadata -> HF) must
load in transformers and give the logits recorded in the fixture's expected_logits.json.

usage: hf_roundtrip.py FIXTURE_DIR REBUILT_DIR [FIXTURE_DIR REBUILT_DIR ...]
Checks: AutoConfig loads the rebuilt config.json; the hyper-parameters transformers derives
(rope_parameters included) equal the original's; AutoModelForCausalLM loads the rebuilt
safetensors with no missing/unexpected weights; logits equal the expected ones.
"""
import json
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM

ATTRS = [
    "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "vocab_size", "head_dim",
    "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "rope_parameters",
    "sliding_window", "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar",
    "original_max_position_embeddings", "hidden_act", "hidden_activation", "attention_bias",
    "layer_norm_eps", "logit_scale", "use_qk_norm", "layer_types",
]


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
    model, info = AutoModelForCausalLM.from_pretrained(rebuilt, torch_dtype=torch.float32,
                                                       attn_implementation="eager", output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"{fixture}: loading problems: {problems}")
    model.eval()
    exp = json.load(open(f"{fixture}/expected_logits.json"))
    with torch.no_grad():
        logits = model(torch.tensor([exp["input_ids"]])).logits[0]
    want = torch.tensor(exp["logits"], dtype=torch.float32)
    diff = (logits - want).abs().max().item()
    if not torch.allclose(logits, want, rtol=0, atol=1e-5):
        sys.exit(f"{fixture}: logits differ: max abs diff {diff}")
    print(f"ok {fixture} max_abs_diff={diff}")


def main() -> None:
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit("usage: hf_roundtrip.py FIXTURE_DIR REBUILT_DIR [...]")
    for i in range(0, len(args), 2):
        check(args[i], args[i + 1])


if __name__ == "__main__":
    main()
