"""Judge: gguf-py's table of GGML tensor types, as "id name block_size type_size" lines."""
import sys

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

with open(sys.argv[1], "w") as f:
    for t in GGMLQuantizationType:
        block, size = GGML_QUANT_SIZES[t]
        f.write(f"{t.value} {t.name} {block} {size}\n")
