#!/usr/bin/env python3
"""Reference log-likelihoods for tests/eval_tasks.rs, computed by transformers (float32,
eager attention) with the Hugging Face tokenizer of each fixture model — a judge independent
of llmtool's tokenizer, inference core and KV-cache reuse.

The items are those of `items()` in tests/eval_tasks.rs (delimiter " "). The tokens follow
lm-eval-harness's `_encode_pair`: the context's trailing whitespace moves to the
continuation; continuation tokens = enc(context + continuation)[len(enc(context)):], where
enc() is the tokenizer without special tokens plus BOS in front as lm-eval's HF backend
decides it (`add_bos_token`: False, except True for model types containing "gemma"; the
fixtures' llmtool `add_bos` must agree, which the Rust test checks); the model runs on
enc(context) ++ continuation tokens.

Run from the repository root:  python3 tests/eval_tasks_ref.py > tests/eval_tasks_ref.json
or, to add or redo some architectures and keep the others' committed values:
  python3 tests/eval_tasks_ref.py ARCH... > new.json && mv new.json tests/eval_tasks_ref.json
Needs torch, transformers (not CI: the output is committed).
"""

import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ARCHS = ["llama", "phi3", "gemma", "gemma2", "qwen2", "qwen3", "gemma3", "command_r", "cohere2"]
REF = Path(__file__).resolve().parent / "eval_tasks_ref.json"
ITEMS = [
    ("The cat sat on the", ["mat.", "roof of the old house.", "x"]),
    ("Question: is the sky blue?\nAnswer:", ["Yes", "No"]),
    ("Numbers: one, two, ", ["three", "seven hundred", "ten"]),
    ("Ünïcödé text — with dashes", ["and more…", "fin"]),
]


def main():
    out = {"generated_by": "tests/eval_tasks_ref.py", "items": [[c, ch] for c, ch in ITEMS], "archs": {}}
    archs = sys.argv[1:] or ARCHS
    if sys.argv[1:]:
        old = json.loads(REF.read_text())
        assert old["items"] == out["items"], "the items changed: rerun for every architecture"
        out["archs"] = old["archs"]
    for arch in archs:
        d = f"fixtures/models/{arch}"
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
        add_bos = "gemma" in model.config.model_type

        def enc(s):
            return ([tok.bos_token_id] if add_bos else []) + tok(s, add_special_tokens=False).input_ids

        rows = []
        for context, choices in ITEMS:
            trimmed = context.rstrip()
            moved = context[len(trimmed):]
            ctx = enc(trimmed)
            lls = []
            for c in choices:
                cont = enc(trimmed + moved + " " + c)[len(ctx):]
                ids = torch.tensor([ctx + cont])
                with torch.no_grad():
                    logits = model(ids).logits[0].double()
                logp = torch.log_softmax(logits, dim=-1)
                lls.append(sum(logp[len(ctx) + j - 1, t].item() for j, t in enumerate(cont)))
            rows.append(lls)
        out["archs"][arch] = {"add_bos": add_bos, "loglik": rows}
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
