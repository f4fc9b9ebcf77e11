#!/usr/bin/env python3
"""Judge: re-dump a JSON file as transformers does.
usage: py_json.py FILE SORT_KEYS(0/1) ENSURE_ASCII(0/1)
prints json.dumps(json.load(FILE), indent=2, sort_keys=..., ensure_ascii=...) + "\\n"."""
import json
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    v = json.load(f)
sys.stdout.write(json.dumps(v, indent=2, sort_keys=sys.argv[2] == "1", ensure_ascii=sys.argv[3] == "1") + "\n")
