#!/usr/bin/env python3
"""Judge for HF directories with transformers itself.
usage: hf_tiny.py save DIR      -- save a tiny random Llama (bf16, sharded at 20KB) to DIR
       hf_tiny.py compare A B   -- load both dirs with from_pretrained, assert identical
                                   configs and state dicts, print "same N" (N = tensors)"""
import sys

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

if sys.argv[1] == "save":
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
                      num_hidden_layers=2, vocab_size=64, rms_norm_eps=1e-06, tie_word_embeddings=False)
    m = LlamaForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(sys.argv[2], max_shard_size="20KB", safe_serialization=True)
else:
    a = AutoModelForCausalLM.from_pretrained(sys.argv[2])
    b = AutoModelForCausalLM.from_pretrained(sys.argv[3])
    ca, cb = a.config.to_dict(), b.config.to_dict()
    ca.pop("_name_or_path", None)
    cb.pop("_name_or_path", None)
    assert ca == cb, (ca, cb)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), (sorted(sa), sorted(sb))
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    print("same", len(sa))
