#!/usr/bin/env python3
"""Judge: llama.cpp's Q/K row permutation, reproduced with numpy from convert_hf_to_gguf.py
`LlamaModel.permute(weights, n_head, n_head_kv)`:

    if n_head_kv is not None and n_head != n_head_kv: n_head = n_head_kv
    weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
           .swapaxes(1, 2).reshape(weights.shape)

usage: permute.py IN.f32 OUT.f32 ROWS COLS N_HEAD N_HEAD_KV   (raw little-endian f32, row-major)
"""
import sys

import numpy as np


def permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def main() -> None:
    src, dst, rows, cols, n_head, n_head_kv = sys.argv[1:7]
    rows, cols = int(rows), int(cols)
    shape = (rows,) if cols == 0 else (rows, cols)
    w = np.fromfile(src, dtype="<f4").reshape(shape)
    permute(w, int(n_head), int(n_head_kv)).astype("<f4").tofile(dst)


if __name__ == "__main__":
    main()
