#!/usr/bin/env python3
"""Local judge (not CI: needs torch + transformers) for the README's SmolLM2 figures of
`llmtool eval` on examples/tasks: acc and acc_norm computed by transformers (float32) on an
HF dir, with the HF tokenizer and lm-eval-harness's conventions (`_encode_pair`, delimiter " ",
no BOS for non-Gemma models, acc_norm by characters, ties to the first choice).

    llmtool convert "$(scripts/fetch-models.sh)" /tmp/smol_hf      # GGUF Q4_1 -> HF F32
    python3 tests/eval_tasks_real_judge.py /tmp/smol_hf examples/tasks/nli.jsonl examples/tasks/continuation.jsonl
"""

import json
import re
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def load(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    head = rows[0]["task"] if "task" in rows[0] else {}
    items = []
    for o in rows[1:] if head else rows:
        if "template" in head:
            ctx = re.sub(r"\{(\w+)\}", lambda m: str(o[m.group(1)]), head["template"])
        else:
            ctx = o["context"]
        choices = o.get("choices", head.get("choices"))
        label = o["label"]
        if isinstance(label, str):
            names = head.get("labels", choices) if "choices" not in o else choices
            label = names.index(label) if label in names else choices.index(label)
        items.append((ctx, choices, label))
    return items


def main():
    model_dir, files = sys.argv[1], sys.argv[2:]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()

    def enc(s):
        return tok(s, add_special_tokens=False).input_ids

    for path in files:
        items = load(path)
        acc = acc_norm = 0
        for ctx, choices, label in items:
            trimmed = ctx.rstrip()
            moved = ctx[len(trimmed):]
            c = enc(trimmed)
            lls = []
            for x in choices:
                cont = enc(trimmed + moved + " " + x)[len(c):]
                with torch.no_grad():
                    lp = torch.log_softmax(model(torch.tensor([c + cont])).logits[0].double(), -1)
                lls.append(sum(lp[len(c) + j - 1, t].item() for j, t in enumerate(cont)))
            first_max = lambda v: max(range(len(v)), key=lambda i: (v[i], -i))
            acc += first_max(lls) == label
            acc_norm += first_max([l / len(x) for l, x in zip(lls, choices)]) == label
        n = len(items)
        print(json.dumps({"file": path, "n": n, "acc": acc / n, "acc_norm": acc_norm / n}))


if __name__ == "__main__":
    main()
