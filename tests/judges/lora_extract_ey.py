#!/usr/bin/env python3
"""Judge: the Eckart–Young optimum of each module's delta, against an extracted adapter.

For every 2-D tensor whose delta ΔW = W_tuned − W_base is not zero, numpy's SVD (float64)
gives the best rank-k approximation opt_k = U_k·S_k·V_kᵀ, k = min(RANK, rows, cols); the
adapter's own delta (its factors multiplied here, with its scaling) must equal it. The
models are both HF dirs (the adapter a PEFT dir, HF names and layout) or both GGUF files
(read and dequantized by gguf-py; the adapter a GGUF LoRA, GGUF names and layout — the
best approximation of a row-permuted matrix is the row-permuted best approximation).

usage: lora_extract_ey.py BASE TUNED ADAPTER RANK -> JSON on stdout:
  {"modules": {tensor: {"err": max|ours − opt| / max|opt|, "k": k}},
   "missing": [tensors with a delta the adapter lacks]}
"""
import json
import os
import re
import sys

import numpy as np


def hf_tensors(d: str) -> dict:
    from safetensors.numpy import load_file

    return {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "model.safetensors")).items()}


def gguf_tensors(path: str) -> dict:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    out = {}
    for t in GGUFReader(path).tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        out[t.name] = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(shape)
    return out


def peft_deltas(d: str) -> dict:
    """HF tensor name -> the adapter's delta (PEFT's rules: scaling alpha/r, rank_pattern and
    alpha_pattern matched as `^(.*\\.)?KEY$`, embeddings (B·A)ᵀ)."""
    from safetensors.numpy import load_file

    cfg = json.load(open(os.path.join(d, "adapter_config.json")))
    t = {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "adapter_model.safetensors")).items()}

    def pattern(p: dict, module: str, default):
        for key, v in p.items():
            if re.match(rf"^(.*\.)?({key})$", module):
                return v
        return default

    out = {}
    for k in t:
        m = re.match(r"^base_model\.model\.(.*)\.(lora_A\.weight|lora_embedding_A)$", k)
        if not m:
            continue
        module, kind = m.group(1), m.group(2)
        r = pattern(cfg.get("rank_pattern") or {}, module, cfg["r"])
        alpha = pattern(cfg.get("alpha_pattern") or {}, module, cfg["lora_alpha"])
        if kind == "lora_A.weight":
            a, b = t[k], t[f"base_model.model.{module}.lora_B.weight"]
            out[f"{module}.weight"] = (alpha / r) * (b @ a)
        else:
            a, b = t[k], t[f"base_model.model.{module}.lora_embedding_B"]
            out[f"{module}.weight"] = (alpha / r) * (b @ a).T
        assert a.shape[0] == r, (k, a.shape, r)
    return out


def gguf_deltas(path: str) -> dict:
    """GGUF tensor name -> the adapter's delta (llama.cpp's rules: alpha/r, token_embd flipped)."""
    from gguf import GGUFReader

    rd = GGUFReader(path)
    alpha = float(rd.fields["adapter.lora.alpha"].parts[-1][0])
    t = {x.name: np.asarray(x.data, dtype=np.float64) for x in rd.tensors}
    out = {}
    for k in t:
        if not k.endswith(".lora_a"):
            continue
        base = k[: -len(".lora_a")]
        a, b = t[k], t[base + ".lora_b"]  # numpy shapes: a [r, n_in] (token_embd: [n_vocab, r]), b [n_out, r]
        r = b.shape[1]
        if base.startswith("token_embd"):
            out[base] = (alpha / r) * (a @ b.T)
        else:
            out[base] = (alpha / r) * (b @ a)
    return out


def main() -> None:
    base_p, tuned_p, adapter_p, rank = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    gguf_in = base_p.endswith(".gguf")
    base = gguf_tensors(base_p) if gguf_in else hf_tensors(base_p)
    tuned = gguf_tensors(tuned_p) if gguf_in else hf_tensors(tuned_p)
    ours = gguf_deltas(adapter_p) if gguf_in else peft_deltas(adapter_p)
    modules, missing = {}, []
    for name, w in tuned.items():
        if w.ndim != 2:
            continue
        delta = w - base[name]
        if not delta.any():
            continue
        if name not in ours:
            missing.append(name)
            continue
        k = min(rank, *delta.shape)
        u, s, vt = np.linalg.svd(delta, full_matrices=False)
        opt = (u[:, :k] * s[:k]) @ vt[:k]
        err = float(np.abs(ours[name] - opt).max() / np.abs(opt).max())
        modules[name] = {"err": err, "k": k}
    print(json.dumps({"modules": modules, "missing": sorted(missing)}))


if __name__ == "__main__":
    main()
