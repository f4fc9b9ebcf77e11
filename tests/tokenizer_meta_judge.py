#!/usr/bin/env python3
"""Judge for llmtool's tokenizer metadata conversion (tests/tokenizer_meta.rs).

  dump-gguf MODEL.gguf OUT.json
      tokenizer.* metadata of a GGUF file (read with gguf-py's GGUFReader), in file order,
      as [[key, type, value], ...] with type one of str, bool, u32, i32, f32, [str], [i32], [f32].
  compare-gguf OURS_DIR MODEL.gguf TEXT N
      Reference: what transformers' AutoTokenizer built from the GGUF file (gguf_file=...)
      gives on the first N lines of TEXT plus chat-formatted strings: ids and decodings (with
      and without special tokens), the chat template's rendering and the special ids, committed
      in fixtures/tokenizer/smollm2_transformers_gguf.json by
      fixtures/tokenizer/gen_transformers_gguf_ids.py (transformers' GGUF loader needs torch,
      the tests run without it). MODEL.gguf and the texts must be the ones recorded (sha256).
      Ours: tokenizers.Tokenizer.from_file(OURS_DIR/tokenizer.json), and OURS_DIR loaded by
      transformers AutoTokenizer (no torch needed). Both must give the reference's ids and
      decodings.
  train-spm TEXT OUT.json
      Trains a small SentencePiece-style BPE (byte fallback, "▁" normalizer, <unk>/<s>/</s>,
      the 256 <0xXX> byte pieces) on TEXT with the tokenizers library; writes tokenizer.json.
  pre-split TOKENIZER.json TEXT
      Prints the pre-tokenizer's pieces of TEXT as a JSON list.
  compare-json REF.json OURS.json TEXT N
      Both loaded with tokenizers.Tokenizer.from_file; the first N lines of TEXT must encode
      (with special tokens) and decode identically.
"""
import hashlib
import json
import os
import sys

try:
    import tokenizers
except ImportError as e:
    sys.exit(f"judge needs the python package tokenizers: {e}")


def lines(path, n):
    with open(path, encoding="utf-8") as f:
        out = []
        for line in f:
            out.append(line.rstrip("\n"))
            if len(out) >= int(n):
                break
    return out


def dump_gguf(model, out):
    import gguf
    from gguf import GGUFValueType as T
    r = gguf.GGUFReader(model)
    scalar = {T.UINT32: "u32", T.INT32: "i32", T.FLOAT32: "f32", T.BOOL: "bool", T.UINT8: "u32",
              T.UINT64: "u32", T.INT64: "i32"}
    rows = []
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        t = f.types[0]
        if t == T.STRING:
            rows.append([key, "str", bytes(f.parts[-1]).decode("utf-8")])
        elif t == T.ARRAY:
            et = f.types[1]
            if et == T.STRING:
                rows.append([key, "[str]", [bytes(f.parts[i]).decode("utf-8") for i in f.data]])
            elif et in (T.INT32, T.UINT32):
                rows.append([key, "[i32]", [int(f.parts[i][0]) for i in f.data]])
            elif et == T.FLOAT32:
                rows.append([key, "[f32]", [float(f.parts[i][0]) for i in f.data]])
            else:
                sys.exit(f"{key}: unexpected array type {et}")
        elif t in scalar:
            v = f.parts[-1][0]
            rows.append([key, scalar[t], bool(v) if t == T.BOOL else (float(v) if t == T.FLOAT32 else int(v))])
        else:
            sys.exit(f"{key}: unexpected type {t}")
    with open(out, "w", encoding="utf-8") as fp:
        json.dump(rows, fp, ensure_ascii=False)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF_REFERENCE = os.path.join(ROOT, "fixtures", "tokenizer", "smollm2_transformers_gguf.json")
CHAT_MESSAGES = [{"role": "user", "content": "Hi"}]
SPECIAL_ATTRS = ("bos_token_id", "eos_token_id", "unk_token_id", "pad_token_id")


def gguf_texts(text, n):
    """The texts compare-gguf encodes (shared with the reference's generator)."""
    return lines(text, n) + [
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "Hello world! 123  multiple   spaces\n\n\tCafé déjà vu. 你好 🙂",
    ]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_texts(texts):
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).hexdigest()


def check_same(what, texts, ref_ids, ref_decoded, enc_ours, dec_ours):
    """ref_ids[i] / ref_decoded[i]: the reference's ids of texts[i] and its decoding of them."""
    n_tokens = 0
    for i, text in enumerate(texts):
        a, b = ref_ids[i], enc_ours(text)
        if a != b:
            k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
            sys.exit(f"{what}: text {i} {text[:80]!r}: ids differ at {k}: reference {a[k:k+8]} ours {b[k:k+8]}")
        da, db = ref_decoded[i], dec_ours(b)
        if da != db:
            sys.exit(f"{what}: text {i} {text[:80]!r}: decodings differ: {da[:80]!r} vs {db[:80]!r}")
        n_tokens += len(a)
    print(f"{what}: {len(texts)} texts, {n_tokens} tokens identical")
    if n_tokens == 0:
        sys.exit(f"{what}: nothing was compared")


def compare_gguf(ours_dir, model, text, n):
    from transformers import AutoTokenizer
    with open(GGUF_REFERENCE, encoding="utf-8") as f:
        ref = json.load(f)
    if sha256_file(model) != ref["gguf_sha256"]:
        sys.exit(f"{model}: not the GGUF file {GGUF_REFERENCE} was made from ({ref['gguf']})")
    texts = gguf_texts(text, n)
    if len(texts) != len(ref["ids"]) or sha256_texts(texts) != ref["texts_sha256"]:
        sys.exit(f"the first {n} lines of {text} are not the texts {GGUF_REFERENCE} was made from "
                 f"({ref['n_lines']} lines of {ref['text']})")
    ours = tokenizers.Tokenizer.from_file(os.path.join(ours_dir, "tokenizer.json"))
    ours_tf = AutoTokenizer.from_pretrained(ours_dir)
    check_same("tokenizers(ours) vs transformers(GGUF)", texts, ref["ids"], ref["decoded"],
               lambda t: ours.encode(t, add_special_tokens=False).ids,
               lambda ids: ours.decode(ids, skip_special_tokens=False))
    check_same("transformers(ours dir, with specials) vs transformers(GGUF)", texts,
               ref["ids_with_specials"], ref["decoded_with_specials"],
               lambda t: ours_tf(t)["input_ids"], lambda ids: ours_tf.decode(ids))
    b = ours_tf.apply_chat_template(CHAT_MESSAGES, tokenize=False, add_generation_prompt=True)
    if ref["chat_template_render"] != b:
        sys.exit(f"chat templates render differently: {ref['chat_template_render']!r} vs {b!r}")
    for attr in SPECIAL_ATTRS:
        if ref["special_ids"][attr] != getattr(ours_tf, attr):
            sys.exit(f"{attr}: reference {ref['special_ids'][attr]} ours {getattr(ours_tf, attr)}")
    print("chat template and special ids identical")


def train_spm(text, out):
    from tokenizers import Tokenizer, models, normalizers, decoders, trainers, processors
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train([text], trainer)
    j = json.loads(tok.to_str())
    # Llama layout: <unk> <s> </s>, then the 256 byte pieces, then the learned pieces.
    learned = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in learned:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    j["model"]["vocab"] = vocab
    j["added_tokens"] = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for c, i in [("<unk>", 0), ("<s>", 1), ("</s>", 2)]]
    dec = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                             decoders.Strip(" ", 1, 0)])
    post = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tmp = Tokenizer.from_str(json.dumps(j))
    tmp.decoder = dec
    tmp.post_processor = post
    s = tmp.to_str()
    with open(out, "w", encoding="utf-8") as f:
        f.write(s)


def compare_json(ref_path, ours_path, text, n):
    ref = tokenizers.Tokenizer.from_file(ref_path)
    ours = tokenizers.Tokenizer.from_file(ours_path)
    texts = lines(text, n) + ["  leading spaces", "tabs\tand\nnewlines", "unicode: Café 你好 🙂 \u0000"]
    ref_ids = [ref.encode(t).ids for t in texts]
    check_same("tokenizers(ours) vs tokenizers(reference json)", texts, ref_ids,
               [ref.decode(ids) for ids in ref_ids], lambda t: ours.encode(t).ids, lambda ids: ours.decode(ids))


def pre_split(tokenizer_json, text):
    tok = tokenizers.Tokenizer.from_file(tokenizer_json)
    print(json.dumps([piece for piece, _ in tok.pre_tokenizer.pre_tokenize_str(text)], ensure_ascii=False))


if __name__ == "__main__":
    cmds = {"pre-split": (pre_split, 2), "dump-gguf": (dump_gguf, 2), "compare-gguf": (compare_gguf, 4),
            "train-spm": (train_spm, 2), "compare-json": (compare_json, 4)}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds or len(sys.argv) - 2 != cmds[sys.argv[1]][1]:
        sys.exit(__doc__)
    cmds[sys.argv[1]][0](*sys.argv[2:])
