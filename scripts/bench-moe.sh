#!/usr/bin/env bash
# Benchmark of `llmtool moe` against mergekit-moe on the same inputs, same run: a 3-expert
# MoE (2 per token) from SmolLM2-135M-Instruct and two LoRA-merged variants of it (the
# inputs of scripts/demo-moe.sh), as HF f16 directories since mergekit-moe reads only those.
# Both tools write an HF directory (safetensors, f16). For each gate_mode (hidden: router rows
# from hidden states of the prompts, which runs the base model; cheap_embed: from token
# embeddings; random) it prints wall time and peak RSS (best of $REPS, /usr/bin/time -v) and
# the ratios. mergekit-moe runs with `--device cpu` (this machine has no GPU) and, as
# released, computes hidden states in bfloat16. Both run in the scratch directory (mergekit-moe
# resolves the YAML's model paths against the working directory).
#
#   MERGEKIT_MOE=/path/to/venv/bin/mergekit-moe scripts/bench-moe.sh
#   MODES="hidden" REPS=1 scripts/bench-moe.sh
#
# mergekit-moe needs torch; install it in a separate venv (`pip install mergekit==0.1.5`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/bench-lib.sh"
: "${MERGEKIT_MOE:?set MERGEKIT_MOE to the mergekit-moe executable (pip install mergekit in a venv)}"
REPS="${REPS:-3}"
MODES="${MODES:-hidden cheap_embed random}"
bench_setup "${WORK:-$root/.cache/bench-moe}"
model="$("$root/scripts/fetch-models.sh")"
adapter="$root/fixtures/lora/smollm2-r2"
"$bin" convert --force --quiet --outtype f16 "$model" "$work/base"
"$bin" lora merge --force --quiet --base "$work/base" --adapter "$adapter" --scale 1 "$work/plus"
"$bin" lora merge --force --quiet --base "$work/base" --adapter "$adapter" --scale -1 "$work/minus"
input_bytes=$(du -cb "$work"/{base,plus,minus}/*.safetensors | tail -n 1 | cut -f1)
echo "inputs: 3 HF dirs (f16), $input_bytes bytes of safetensors; mergekit $("${MERGEKIT_MOE%/*}/python" -c 'import importlib.metadata as m; print(m.version("mergekit"), "torch", m.version("torch"))')"
for mode in $MODES; do
  cat > "$work/$mode.yml" <<YML
base_model: base
gate_mode: $mode
dtype: float16
experts_per_token: 2
experts:
  - source_model: base
    positive_prompts: ["The history of the city begins in the", "He was born in"]
  - source_model: plus
    positive_prompts: ["The album was released in", "The song reached number"]
  - source_model: minus
    positive_prompts: ["The species is found in", "The game was played at"]
    negative_prompts: ["The album was released in"]
YML
  echo "== gate_mode $mode"
  CLEAN="$work/out-llmtool" measure "llmtool moe ($mode)" "$input_bytes" \
    env -C "$work" "$bin" moe --quiet --force --seed 7 --to hf "$mode.yml" out-llmtool
  ours=$(cat "$work/last.wall"); ours_rss=$(cat "$work/last.rss")
  CLEAN="$work/out-mergekit" measure "mergekit-moe ($mode)" "$input_bytes" \
    env -C "$work" HF_HUB_OFFLINE=1 "$MERGEKIT_MOE" --device cpu --random-seed 7 --quiet "$mode.yml" out-mergekit
  theirs=$(cat "$work/last.wall"); theirs_rss=$(cat "$work/last.rss")
  echo "   speed-up $(ratio "$theirs" "$ours")×, peak RSS $(ratio "$ours_rss" "$theirs_rss")× of mergekit-moe's"
done
