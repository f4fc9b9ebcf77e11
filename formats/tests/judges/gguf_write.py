#!/usr/bin/env python3
"""Independent writer: make a GGUF file with llama.cpp's gguf-py GGUFWriter holding every
metadata value type (nested arrays, unicode) and tensors of several GGML types, so that our
reader and writer can be checked on a file we did not produce.

Usage: gguf_write.py FILE
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as T


def main(path):
    w = gguf.GGUFWriter(path, "llama")  # adds general.architecture
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.1)
    w.add_bool("t.bool", False)
    w.add_string("t.str", "日本語 ✓ 🦀")
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float64("t.f64", 1e-300)
    w.add_array("a.str", ["a", "ü", ""])
    w.add_array("a.i32", [1, -2, 3])
    w.add_key_value("a.u8", [1, 2, 255], T.ARRAY, sub_type=T.UINT8)
    w.add_array("a.bool", [True, False, True])
    w.add_array("a.f32", [0.5, -1.25])
    w.add_array("a.nested", [[1, 2], [3]])
    rng = np.random.default_rng(0)
    w.add_tensor("f32", rng.standard_normal((3, 5), dtype=np.float32))
    w.add_tensor("f16", rng.standard_normal((7,)).astype(np.float16))
    # Block types as raw bytes: byte shape (rows, blocks * type_size).
    w.add_tensor("q8_0", rng.integers(0, 256, (3, 2 * 34), dtype=np.uint8), raw_dtype=Q.Q8_0)
    w.add_tensor("q4_k", rng.integers(0, 256, (2, 144), dtype=np.uint8), raw_dtype=Q.Q4_K)
    w.add_tensor("bf16", rng.integers(0, 256, (2, 8), dtype=np.uint8), raw_dtype=Q.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1])
