"""Judge: dump a GGUF file as llama.cpp's own gguf-py reads it.

usage: gguf_dump.py FILE.gguf  -> JSON on stdout:
  {"version": int, "metadata": [{"key", "types": [..], "value"}...],
   "tensors": [{"name", "type", "ne": [..], "offset", "sha256"}...]}
sha256 is over the tensor's raw bytes as stored (block bytes for quantized types).
"""
import hashlib
import json
import sys

from gguf import GGUFReader


def main() -> None:
    reader = GGUFReader(sys.argv[1])
    metadata = []
    version = None
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            if key == "GGUF.version":
                version = int(field.contents())
            continue
        types = [t.name for t in field.types]
        value = field.contents()
        metadata.append({"key": key, "types": types, "value": value})
    tensors = []
    for t in reader.tensors:
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "ne": [int(x) for x in t.shape],
            "offset": int(t.data_offset),
            "sha256": hashlib.sha256(t.data.tobytes()).hexdigest(),
        })
    json.dump({"version": version, "metadata": metadata, "tensors": tensors}, sys.stdout)


if __name__ == "__main__":
    main()
