#!/usr/bin/env bash
# Quantization benchmark (not a test): MB/s (of input) and peak RSS of `llmtool quantize`
# F16 → Q8_0, Q4_0 and Q4_K_M with --threads 2, on SmolLM2 converted to F16 and on a
# synthetic Llama with 7B-sized layers (gen-synthetic-model.py, converted to an F16 GGUF),
# each against `cp` of the same bytes measured in the same run (best of $REPS). If
# LLAMA_QUANTIZE names a llama-quantize binary, it is timed on the same inputs with 2
# threads, and the ratio of throughputs (ours / llama-quantize; target ≥ 1.5) is printed.
#
# Then the same with importance weights and the i-quant types (SmolLM2 with its imatrix; the
# synthetic model with the i-quants that need none).
#
# Then the importance matrix: `llmtool imatrix` on the real model (Q4_1) and $IMATRIX_CHUNKS
# (default 8) windows of 512 tokens of WikiText-2, tokens/s, against LLAMA_IMATRIX (a
# llama-imatrix binary, 2 threads, --no-ppl off so both also compute the perplexity) when set.
#
# usage: [LLAMA_QUANTIZE=.../llama-quantize] [LLAMA_IMATRIX=.../llama-imatrix] [SYNTH_LAYERS=4]
#        scripts/bench-quantize.sh [WORK_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench-lib.sh
source "$root/scripts/bench-lib.sh"
bench_setup "${1:-}"
lq="${LLAMA_QUANTIZE:-}"
[[ -z "$lq" || -x "$lq" ]] || { echo "LLAMA_QUANTIZE=$lq is not an executable" >&2; exit 1; }

model="$("$root/scripts/fetch-models.sh")"
smol="$work/smol-f16.gguf"
[[ -f "$smol" ]] || "$bin" quantize --quiet "$model" "$smol" --type F16 2>/dev/null
layers="${SYNTH_LAYERS:-4}"
synth_hf="$work/synthetic-7b-layers-$layers"
[[ -f "$synth_hf/model.safetensors" ]] || python3 "$root/scripts/gen-synthetic-model.py" "$synth_hf" --layers "$layers"
synth="$work/synth-$layers-f16.gguf"
[[ -f "$synth" ]] || "$bin" convert --quiet "$synth_hf" "$synth"

bench_input() {  # NAME INPUT.gguf
  local name="$1" in="$2" bytes; bytes=$(stat -c %s "$in")
  echo "== $name ($bytes bytes)"
  measure "$name: cp" "$bytes" cp "$in" "$work/cp.tmp"
  local cpt; cpt=$(cat "$work/last.wall")
  for t in Q8_0 Q4_0 Q4_K_M; do
    local out="$work/q.$t.gguf"
    CLEAN="$out" measure "$name → $t: llmtool" "$bytes" "$bin" quantize --quiet --threads 2 --type "$t" "$in" "$out"
    local ours; ours=$(cat "$work/last.wall")
    local line="    llmtool / cp time = $(ratio "$ours" "$cpt")"
    if [[ -n "$lq" ]]; then
      CLEAN="$out" measure "$name → $t: llama-quantize" "$bytes" "$lq" "$in" "$out" "$t" 2
      local theirs; theirs=$(cat "$work/last.wall")
      line+="; throughput llmtool / llama-quantize = $(ratio "$theirs" "$ours")"
    fi
    echo "$line"
    rm -f "$out"
  done
}

bench_input "SmolLM2 F16" "$smol"
bench_input "synthetic $layers×7B-layer F16" "$synth"
rm -f "$work/cp.tmp"

# Weighted quantization and the i-quants: the same inputs with the committed SmolLM2 imatrix
# (fixtures/imatrix) — on the synthetic model its entries do not fit, so only SmolLM2, whose
# 576-wide rows fall back to Q5_0/IQ4_NL everywhere but ffn_down; then the synthetic model
# without imatrix for the i-quant types that need none (4096-wide rows: the real kernels).
imatrix="$root/fixtures/imatrix/smollm2-q4_1-wiki4.gguf"
bench_types() {  # NAME INPUT.gguf IMATRIX|- TYPE...
  local name="$1" in="$2" im="$3"; shift 3
  local bytes; bytes=$(stat -c %s "$in")
  local ours_args=() their_args=()
  if [[ "$im" != - ]]; then ours_args=(--imatrix "$im"); their_args=(--imatrix "$im"); fi
  local what=", no imatrix"; [[ "$im" == - ]] || what=", imatrix $(basename "$im")"
  echo "== $name ($bytes bytes)$what"
  for t in "$@"; do
    local out="$work/q.$t.gguf"
    CLEAN="$out" measure "$name → $t: llmtool" "$bytes" "$bin" quantize --quiet --threads 2 "${ours_args[@]}" --type "$t" "$in" "$out"
    local ours; ours=$(cat "$work/last.wall")
    if [[ -n "$lq" ]]; then
      CLEAN="$out" measure "$name → $t: llama-quantize" "$bytes" "$lq" "${their_args[@]}" "$in" "$out" "$t" 2
      local theirs; theirs=$(cat "$work/last.wall")
      echo "    throughput llmtool / llama-quantize = $(ratio "$theirs" "$ours")"
    fi
    rm -f "$out"
  done
}
bench_types "SmolLM2 F16" "$smol" "$imatrix" ${IMATRIX_TYPES:-Q4_K_M IQ4_XS IQ3_S IQ3_XXS IQ2_XXS IQ1_M}
bench_types "synthetic $layers×7B-layer F16" "$synth" - ${SYNTH_IQ_TYPES:-IQ4_NL IQ4_XS IQ3_S}

# Importance matrix (tokens/s over every token of the windows; both also print PPL).
li="${LLAMA_IMATRIX:-}"
chunks="${IMATRIX_CHUNKS:-8}"
text="$("$root/scripts/wiki-text.sh")"
tokens=$((chunks * 512))
echo "== imatrix: SmolLM2 Q4_1, $chunks × 512 tokens"
CLEAN="$work/im.gguf" measure "imatrix: llmtool" "$(stat -c %s "$model")" \
  "$bin" imatrix "$model" --text "$text" --ctx 512 --chunks "$chunks" -o "$work/im.gguf" -q
ours=$(cat "$work/last.wall")
line="    llmtool: $(echo "scale=1; $tokens / $ours" | bc -l) tokens/s"
if [[ -n "$li" ]]; then
  CLEAN="$work/im-llama.gguf" measure "imatrix: llama-imatrix" "$(stat -c %s "$model")" \
    "$li" -m "$model" -f "$text" -c 512 -b 512 --chunks "$chunks" -t 2 -o "$work/im-llama.gguf"
  theirs=$(cat "$work/last.wall")
  line+="; llama-imatrix: $(echo "scale=1; $tokens / $theirs" | bc -l) tokens/s; llmtool / llama-imatrix = $(ratio "$theirs" "$ours")"
fi
echo "$line"
