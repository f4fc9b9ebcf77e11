"""Judge: the per-tensor types llama.cpp's `llama-quantize` would choose, for a GGUF file.

Usage: quant_plan.py MODEL.gguf FTYPE  ->  JSON {"file_type": id, "types": {name: type}}

An independent re-statement, in Python, of llama.cpp `src/llama-quant.cpp`
(tensor_allows_quantization, llama_tensor_get_type_impl, tensor_type_fallback,
llama_ftype_get_default_type) for the file types without an imatrix, no overrides, and
models without experts. File-type numbers come from gguf-py's `LlamaFileType`, block
sizes from gguf-py's `GGML_QUANT_SIZES`.
"""
import json
import sys

import gguf

Q = gguf.GGMLQuantizationType
DEFAULT = {
    "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q8_0": "Q8_0",
    "F16": "F16", "BF16": "BF16", "ALL_F32": "F32",
    "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
}
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def block(t):
    return gguf.GGML_QUANT_SIZES[Q[t]][0]


def is_quant(t):
    return t not in ("F32", "F16", "BF16")


def more_bits(i, n):
    # C semantics: integer division and a remainder with the sign of the dividend.
    r = abs(i - n // 8) % 3 * (1 if i - n // 8 >= 0 else -1)
    return i < n // 8 or i >= (7 * n) // 8 or r == 2


def layer(name):
    if name.startswith("blk."):
        d = ""
        for c in name[4:]:
            if not c.isdigit():
                break
            d += c
        if d:
            return int(d)
    return -1


def main():
    path, ftype = sys.argv[1], sys.argv[2]
    r = gguf.GGUFReader(path)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()

    def u(key, default=0):
        f = r.fields.get(f"{arch}.{key}")
        return int(f.parts[-1][0]) if f else default

    n_layer = u("block_count")
    n_head = u("attention.head_count")
    n_gqa = n_head // u("attention.head_count_kv", n_head)
    tensors = [(t.name, [int(x) for x in t.shape], t.tensor_type.name) for t in r.tensors]
    tensors.sort(key=lambda t: (layer(t[0]), t[0].encode()))
    names = [t[0] for t in tensors]
    tied = "output.weight" not in names
    n_wv = sum(1 for n in names if any(s in n for s in ("attn_v.weight", "attn_qkv.weight", "attn_kv_b.weight")))
    i_wv = 0
    i_down = 0
    default = DEFAULT[ftype]
    out = {}
    for name, ne, ty in tensors:
        ndims = max([i + 1 for i, n in enumerate(ne) if n > 1] or [1])
        allowed = ndims >= 2 and name.endswith("weight") and "_norm.weight" not in name
        if not allowed:
            out[name] = ty
            continue
        new = default
        if is_quant(default):
            if name == "output.weight" or (tied and name == "token_embd.weight"):
                if ne[0] % block(new) != 0:
                    new = "Q8_0"
                elif new != "Q8_0":
                    new = "Q6_K"
            elif name == "token_embd.weight":
                pass
            elif "attn_v.weight" in name or "attn_qkv.weight" in name or "attn_kv_b.weight" in name:
                if ftype == "Q2_K":
                    new = "Q4_K" if n_gqa >= 4 else "Q3_K"
                elif ftype == "Q2_K_S" and n_gqa >= 4:
                    new = "Q4_K"
                elif ftype == "Q3_K_M":
                    new = "Q5_K" if i_wv < 2 else "Q4_K"
                elif ftype == "Q3_K_L":
                    new = "Q5_K"
                elif ftype in ("Q4_K_M", "Q5_K_M") and more_bits(i_wv, n_wv):
                    new = "Q6_K"
                elif ftype == "Q4_K_S" and i_wv < 4:
                    new = "Q5_K"
                i_wv += 1
            elif "attn_k.weight" in name or "attn_q.weight" in name:
                pass
            elif "attn_output.weight" in name:
                new = {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(ftype, new)
            elif "ffn_up" in name or "ffn_gate" in name:
                pass
            elif "ffn_down" in name:
                i = i_down
                if ftype == "Q2_K":
                    new = "Q3_K"
                elif ftype == "Q2_K_S":
                    if i < n_layer // 8:
                        new = "Q4_K"
                elif ftype == "Q3_K_M":
                    new = "Q5_K" if i < n_layer // 16 else "Q4_K"
                elif ftype == "Q3_K_L":
                    new = "Q5_K"
                elif ftype == "Q4_K_M":
                    if more_bits(i, n_layer):
                        new = "Q6_K"
                elif ftype == "Q5_K_M" and more_bits(i, n_layer):
                    new = "Q6_K"
                elif ftype == "Q4_K_S" and i < n_layer // 8:
                    new = "Q5_K"
                i_down += 1
            if ne[0] % block(new) != 0:
                new = FALLBACK[new]
                if ne[0] % block(new) != 0:
                    new = "F16"
        out[name] = new
    ft_name = "ALL_F32" if ftype == "ALL_F32" else "MOSTLY_" + ftype
    print(json.dumps({"file_type": gguf.LlamaFileType[ft_name].value, "types": out}))


main()
