#!/usr/bin/env bash
# Benchmark of `llmtool merge`: a merge of three synthetic models with 7B-shaped Llama layers
# (hidden 4096, FFN 11008, 32 heads, f16; vocabulary 2048 so that the largest tensor is a
# layer's FFN matrix), with 2 and 4 layers. Prints the peak RSS (/usr/bin/time -v) against
# the bound 2 × largest tensor × (inputs + 1) + 200 MB — the largest tensor counted as f32,
# the type the merge computes in, and also as stored (f16) — and the MB/s of input processed.
# The RSS must not grow with the number of layers.
#
#   scripts/bench-merge.sh            # ties (falls back to linear while ties is not implemented)
#   METHOD=linear scripts/bench-merge.sh
#   CONFIG=my.yml scripts/bench-merge.sh   # a YAML of your own; MODEL_A/B/C are replaced by the paths
#   BIN=target/debug/llmtool REPS=3 scripts/bench-merge.sh
#
# Needs python3 with numpy and safetensors. Scratch files go to $WORK (default
# /tmp/llmtool-bench-merge) and are deleted at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
work_dir="${WORK:-/tmp/llmtool-bench-merge}"
trap 'rm -rf "$work_dir"' EXIT
REPS="${REPS:-1}"
# BIN=path: use that llmtool instead of building the release binary.
if [[ -n "${BIN:-}" ]]; then work="$work_dir"; mkdir -p "$work"; bin="$BIN"; else bench_setup "$work_dir"; fi
METHOD="${METHOD:-ties}"

gen() { # gen DIR N_LAYERS SEED
  python3 - "$@" <<'PY'
import json, os, sys
import numpy as np
from safetensors.numpy import save_file
d, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
h, ff, vocab, heads = 4096, 11008, 2048, 32
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h,
       "intermediate_size": ff, "num_attention_heads": heads, "num_key_value_heads": heads,
       "num_hidden_layers": n, "vocab_size": vocab, "max_position_embeddings": 4096,
       "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "torch_dtype": "float16",
       "tie_word_embeddings": False, "hidden_act": "silu"}
json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
rng = np.random.default_rng(seed)
def r(*shape):
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)
t = {"model.embed_tokens.weight": r(vocab, h), "lm_head.weight": r(vocab, h),
     "model.norm.weight": np.ones(h, np.float16)}
for i in range(n):
    p = f"model.layers.{i}."
    for k in ["q_proj", "k_proj", "v_proj", "o_proj"]:
        t[p + f"self_attn.{k}.weight"] = r(h, h)
    t[p + "mlp.gate_proj.weight"] = r(ff, h)
    t[p + "mlp.up_proj.weight"] = r(ff, h)
    t[p + "mlp.down_proj.weight"] = r(h, ff)
    t[p + "input_layernorm.weight"] = np.ones(h, np.float16)
    t[p + "post_attention_layernorm.weight"] = np.ones(h, np.float16)
save_file(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
PY
}

config_for() { # config_for METHOD DIR -> prints the YAML
  local m="$1" d="$2"
  if [[ -n "${CONFIG:-}" ]]; then
    sed -e "s#MODEL_A#$d/a#g" -e "s#MODEL_B#$d/b#g" -e "s#MODEL_C#$d/c#g" "$CONFIG"
    return
  fi
  cat <<EOF
merge_method: $m
base_model: $d/a
models:
  - model: $d/a
    parameters: {weight: 0.4, density: 0.6}
  - model: $d/b
    parameters: {weight: 0.3, density: 0.6}
  - model: $d/c
    parameters: {weight: 0.3, density: 0.6}
EOF
}

# The parameters a method does not take are refused; strip density for linear.
yaml_for() { config_for "$1" "$2" | if [[ "$1" == linear ]]; then sed 's/, density: 0.6//; /^base_model/d'; else cat; fi; }

echo "llmtool merge benchmark: three synthetic models, 7B-shaped layers (4096 / 11008, f16)"
for layers in 2 4; do
  d="$work_dir/l$layers"
  rm -rf "$d"; mkdir -p "$d"
  for m in a b c; do gen "$d/$m" "$layers" "$(printf '%d' "'$m")"; done
  method="$METHOD"
  yaml_for "$method" "$d" > "$d/merge.yml"
  if ! "$bin" merge -q "$d/merge.yml" "$d/probe.gguf" --force 2>"$d/err.txt"; then
    if grep -q "not implemented yet" "$d/err.txt" && [[ -z "${CONFIG:-}" ]]; then
      echo "  ($method is not implemented in this build; measuring linear instead)"
      method=linear
      yaml_for "$method" "$d" > "$d/merge.yml"
    else
      cat "$d/err.txt" >&2; exit 1
    fi
  fi
  rm -f "$d/probe.gguf"
  input_bytes=$(du -cb "$d"/{a,b,c}/model.safetensors | tail -1 | cut -f1)
  largest_f16=$((11008 * 4096 * 2))
  largest_f32=$((11008 * 4096 * 4))
  inputs=3
  bound_f32=$(( (2 * largest_f32 * (inputs + 1) + 200000000) ))
  bound_f16=$(( (2 * largest_f16 * (inputs + 1) + 200000000) ))
  CLEAN="$d/out.gguf" measure "merge $method, $layers layers, 3 inputs -> GGUF" "$input_bytes" \
    "$bin" merge -q "$d/merge.yml" "$d/out.gguf" --force
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work_dir/time.log")
  rss=$((rss_kb * 1024))
  printf '  input %.1f MB; peak RSS %.1f MB; bound (largest tensor as f32, %.1f MB) %.1f MB: %s; as stored (f16, %.1f MB) %.1f MB: %s\n' \
    "$(echo "$input_bytes / 1000000" | bc -l)" "$(echo "$rss / 1000000" | bc -l)" \
    "$(echo "$largest_f32 / 1000000" | bc -l)" "$(echo "$bound_f32 / 1000000" | bc -l)" \
    "$([[ $rss -le $bound_f32 ]] && echo within || echo EXCEEDED)" \
    "$(echo "$largest_f16 / 1000000" | bc -l)" "$(echo "$bound_f16 / 1000000" | bc -l)" \
    "$([[ $rss -le $bound_f16 ]] && echo within || echo exceeded)"
  rm -rf "$d"
done
