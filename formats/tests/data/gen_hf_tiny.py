#!/usr/bin/env python3
"""Generator (needs torch; not run by the tests) of formats/tests/data/hf_tiny/: a tiny random
Llama saved by transformers itself (bf16, sharded at 20KB), read by formats/tests/hf_dir.rs.
Run from the repository root with the generator venv (torch + transformers):

    /opt/genvenv/bin/python3 formats/tests/data/gen_hf_tiny.py formats/tests/data/hf_tiny
"""
import sys

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

torch.manual_seed(0)
cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                  num_hidden_layers=2, vocab_size=64, rms_norm_eps=1e-06, tie_word_embeddings=False)
m = LlamaForCausalLM(cfg).to(torch.bfloat16)
m.save_pretrained(sys.argv[1], max_shard_size="20KB", safe_serialization=True)
print(f"saved by torch {torch.__version__}, transformers {transformers.__version__}")
