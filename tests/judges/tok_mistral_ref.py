#!/usr/bin/env python3
"""Judge: Mistral's own tokenizers encode and decode a text file.

usage: tok_mistral_ref.py KIND SOURCE TEXT_FILE
  KIND spm: SOURCE is a SentencePiece .model, run by the `sentencepiece` package.
  KIND tekken: SOURCE is a tekken.json, run by mistral-common's Tekkenizer (tiktoken).
Prints {"versions", "ids": encode(text) without BOS/EOS, "decoded": decode(ids)}.
The text is the file's bytes as UTF-8, whole, as `llmtool tokenize --file` reads it.
"""
import json
import sys


def main():
    kind, source, text_file = sys.argv[1:4]
    with open(text_file, "rb") as f:
        text = f.read().decode("utf-8")
    if kind == "spm":
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_file=source)
        ids = sp.encode(text)
        decoded = sp.decode(ids)
        versions = {"sentencepiece": sentencepiece.__version__}
    elif kind == "tekken":
        import mistral_common
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        tok = Tekkenizer.from_file(source)
        ids = tok.encode(text, bos=False, eos=False)
        decoded = tok.decode(ids)
        versions = {"mistral_common": mistral_common.__version__}
    else:
        sys.exit(f"unknown kind {kind!r} (spm, tekken)")
    json.dump({"versions": versions, "ids": ids, "decoded": decoded}, sys.stdout)


if __name__ == "__main__":
    main()
