#!/usr/bin/env python3
"""Judge: the PyPI `tokenizers` package encodes strings with a tokenizer.json.

usage: tok_hf_encode.py TOKENIZER_JSON STRINGS_JSON
Prints {"version", "plain": [[ids]...], "special": [[ids]...]}: `plain` is
encode(s, add_special_tokens=False), `special` is encode(s, add_special_tokens=True).
Added tokens written in the text are always matched, as llama.cpp does with parse_special.
"""
import json
import sys

import tokenizers


def main():
    tok = tokenizers.Tokenizer.from_file(sys.argv[1])
    strings = json.load(open(sys.argv[2], encoding="utf-8"))
    out = {
        "version": tokenizers.__version__,
        "plain": [tok.encode(s, add_special_tokens=False).ids for s in strings],
        "special": [tok.encode(s, add_special_tokens=True).ids for s in strings],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
