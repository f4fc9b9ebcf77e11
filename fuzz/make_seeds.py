#!/usr/bin/env python3
"""Fills fuzz/seeds/<target>/ from the repository's fixtures and examples (plus a few tiny
hand-made files where the real ones are too big to commit). Run from the repository root;
needs only the standard library and (optionally) the `gguf` package (gguf-py) and
mistral_common for extra seeds."""
import glob, hashlib, json, os, shutil, struct, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
seeds = os.path.join(root, "fuzz", "seeds")


def put(target, data, name=None):
    d = os.path.join(seeds, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = name or hashlib.sha1(data).hexdigest()[:12]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def files(pattern):
    return sorted(glob.glob(os.path.join(root, pattern), recursive=True))


def read(p):
    with open(p, "rb") as f:
        return f.read()


for p in files("fixtures/models/*/config.json"):
    put("hf_config", read(p))
seen = set()
for p in files("fixtures/models/*/tokenizer.json"):
    b = read(p)
    if b not in seen:
        seen.add(b)
        put("tokenizer_json", b)
for p in files("fixtures/models/*/tokenizer_config.json"):
    tc = json.loads(read(p))
    put("tokenizer_config", json.dumps(tc))
    jinja = os.path.join(os.path.dirname(p), "chat_template.jinja")
    if os.path.exists(jinja):
        tc["chat_template"] = read(jinja).decode()
        put("tokenizer_config", json.dumps(tc))
        put("chat_template", read(jinja))
fx = json.loads(read(os.path.join(root, "fixtures/tokenizer/chat_templates.json")))
put("chat_template", fx["synthetic"])
# Hostile templates (tests/chat_template_limits.rs): the fuzzer starts from the limits.
for t in [
    '{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    '{{ messages|tojson(indent=2) }}{{ "%s-%s"|format(bos_token, eos_token) }}{{ "{0}".format(1) }}',
    "{% for m in messages %}{{ m.role|upper ~ ': ' ~ m.content.strip() + '\\n' }}{% endfor %}\0user:hi\nassistant:yo",
]:
    put("chat_template", t)

# SentencePiece ModelProto: pieces = field 1 (piece = 1, score = 2, type = 3).
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def piece(text, score, typ):
    t = text.encode()
    body = b"\x0a" + varint(len(t)) + t + b"\x15" + struct.pack("<f", score) + b"\x18" + varint(typ)
    return b"\x0a" + varint(len(body)) + body


put("tokenizer_model", piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) + piece("\u2581a", -1.5, 1) + piece("<0x41>", 0, 6))
try:
    import mistral_common

    v1 = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")
    put("tokenizer_model", read(v1)[:4096], "mistral_v1_head")
except Exception:
    pass

for p in files("fixtures/lora/**/adapter_config.json"):
    put("peft_adapter", read(p))
for p in files("fixtures/lora/**/*.gguf"):
    if os.path.getsize(p) <= 64 << 10:
        put("gguf_lora", read(p))
for p in files("fixtures/merge/**/*.yml")[:12] + files("examples/merge/*.yml"):
    put("merge_yaml", read(p))
for p in files("examples/evolve/*.yml"):
    put("evolve_yaml", read(p))
for p in files("examples/build/*.yml"):
    put("recipe_yaml", read(p))
put("merge_yaml", "a: &a [1, 2]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\nmerge_method: linear\n")
for p in files("examples/tasks/*.jsonl"):
    put("tasks_jsonl", read(p))

# llama.cpp log-probability file: "_logits_", n_ctx, n_vocab, n_chunk, tokens, rows of
# (n_ctx - 1 - n_ctx/2) scored positions × (2·ceil(n_vocab/2) + 4) u16 words.
n_ctx, n_vocab, n_chunk = 4, 3, 1
scored = n_ctx - 1 - n_ctx // 2
words = 2 * ((n_vocab + 1) // 2) + 4
put("logits_file", b"_logits_" + struct.pack("<Iii", n_ctx, n_vocab, n_chunk) + struct.pack("<4i", 1, 2, 0, 1) + b"\x01\x00" * (n_chunk * scored * words))

# Legacy imatrix .dat: n_entries, then (name_len, name, ncall, nval, f32[nval]); trailer
# chunk count and dataset name.
def dat(entries, trailer=True):
    b = struct.pack("<i", len(entries))
    for name, ncall, vals in entries:
        n = name.encode()
        b += struct.pack("<i", len(n)) + n + struct.pack("<ii", ncall, len(vals)) + struct.pack(f"<{len(vals)}f", *vals)
    if trailer:
        b += struct.pack("<i", 4) + struct.pack("<i", 4) + b"wiki"
    return b


put("imatrix", dat([("blk.0.attn_q.weight", 2, [1.0, 2.0, 3.0, 4.0]), ("output.weight", 1, [0.5, 0.25])]))
put("imatrix", dat([("x", 1, [1.0])], trailer=False))
try:
    import numpy as np
    import gguf

    path = os.path.join(seeds, "tmp.gguf")
    w = gguf.GGUFWriter(path, "imatrix")
    w.add_uint32("imatrix.chunk_count", 4)
    w.add_uint32("imatrix.chunk_size", 512)
    w.add_array("imatrix.datasets", ["wiki"])
    w.add_tensor("blk.0.attn_q.weight.in_sum2", np.arange(8, dtype=np.float32).reshape(1, 8))
    w.add_tensor("blk.0.attn_q.weight.counts", np.array([[4.0]], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    put("imatrix", read(path))
    os.remove(path)
except Exception as e:
    print("imatrix GGUF seed skipped:", e, file=sys.stderr)

# Structure-aware targets: the first byte picks the input, the rest drives the document
# generator (fuzz/fuzz_targets/shapes.rs). Deterministic pseudo-random bytes, one seed per
# input and length, so each input starts with documents of a few sizes.
def pseudo_random(tag, n):
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(f"{tag}/{i}".encode()).digest()
        i += 1
    return out[:n]


for target, inputs in (("json_shapes", 5), ("yaml_shapes", 3)):
    for which in range(inputs):
        for n in (64, 512, 4000):
            put(target, bytes([which]) + pseudo_random(f"{target}/{which}", n), f"{which}-{n}")
