#!/usr/bin/env bash
# Time and peak RSS of merging the SmolLM2 rank-2 q/v adapter (fixtures/lora/smollm2-r2) into
# the SmolLM2-135M Q4_1 base: `llmtool lora merge` vs llama.cpp's `llama-export-lora` (same
# adapter as GGUF LoRA, fixtures/lora/smollm2-r2/adapter.gguf), best of N runs each, measured
# in the same run with /usr/bin/time -v.
# Note: llama-export-lora writes every merged tensor of a quantized base as F16 (its output is
# larger); llmtool re-quantizes touched tensors to Q4_1 and copies the rest.
# Usage: scripts/bench-lora.sh [RUNS]   (env: LLMTOOL, LLAMA_BIN, OUT_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
llmtool=${LLMTOOL:-target/release/llmtool}
[[ -x $llmtool ]] || llmtool=target/debug/llmtool
llama_bin=${LLAMA_BIN:-/work/llama-build/bin}
out=${OUT_DIR:-/tmp/bench-lora}
mkdir -p "$out"
base=$(bash scripts/fetch-models.sh)
adapter=fixtures/lora/smollm2-r2

measure() { # label, command...
    local label=$1; shift
    local best_t="" best_m=""
    for _ in $(seq "$runs"); do
        /usr/bin/time -v "$@" >/dev/null 2>"$out/time.txt"
        local t m
        t=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out/time.txt")
        m=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time.txt")
        if [[ -z $best_t ]] || awk "BEGIN{exit !($t < $best_t)}"; then best_t=$t; fi
        if [[ -z $best_m ]] || (( m < best_m )); then best_m=$m; fi
    done
    printf '%-20s wall %6.2f s   peak RSS %7.1f MiB   (best of %d)\n' "$label" "$best_t" "$(awk "BEGIN{print $best_m/1024}")" "$runs"
}

echo "$llmtool, $base"
measure "llmtool lora merge" "$llmtool" lora merge --base "$base" --adapter "$adapter" "$out/llmtool.gguf" --force -q
measure "llama-export-lora" env LD_LIBRARY_PATH="$llama_bin" "$llama_bin/llama-export-lora" \
    -m "$base" --lora "$adapter/adapter.gguf" -o "$out/export-lora.gguf"
ls -l "$out"/*.gguf | awk '{printf "%-40s %6.1f MB\n", $9, $5/1e6}'
rm -f "$out"/*.gguf "$out/time.txt"
