#!/usr/bin/env bash
# Time and peak RSS of merging the SmolLM2 rank-2 q/v adapter (fixtures/lora/smollm2-r2) into
# the SmolLM2-135M Q4_1 base: `llmtool lora merge` vs llama.cpp's `llama-export-lora` (same
# adapter as GGUF LoRA, fixtures/lora/smollm2-r2/adapter.gguf), best of N runs each, measured
# in the same run with /usr/bin/time -v.
# Note: llama-export-lora writes every merged tensor of a quantized base as F16 (its output is
# larger); llmtool re-quantizes touched tensors to Q4_1 and copies the rest.
# Then `lora extract` at rank 16 on a SmolLM2 pair whose delta is dense in every module
# (base: the Q4_1 model; tuned: base + the rank-2 q/v adapter, re-quantized to Q8_0), from the
# GGUF files and from F32 HF dirs of both, vs mergekit 0.1.5's `mergekit-extract-lora` on the
# HF dirs (CPU) when a Python with mergekit and torch is found (MERGEKIT_PY, default
# /opt/genvenv/bin/python3; otherwise it says it was not measured).
# Usage: scripts/bench-lora.sh [RUNS]   (env: LLMTOOL, LLAMA_BIN, OUT_DIR, MERGEKIT_PY)
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
if [[ -x $llama_bin/llama-export-lora ]]; then
    measure "llama-export-lora" env LD_LIBRARY_PATH="$llama_bin" "$llama_bin/llama-export-lora" \
        -m "$base" --lora "$adapter/adapter.gguf" -o "$out/export-lora.gguf"
else
    echo "llama-export-lora: not measured (not built at $llama_bin)"
fi
ls -l "$out"/*.gguf | awk '{printf "%-40s %6.1f MB\n", $9, $5/1e6}'

# lora extract: rank 16, every module's delta dense
"$llmtool" quantize "$out/llmtool.gguf" "$out/tuned.gguf" --type Q8_0 --force -q
"$llmtool" convert "$base" "$out/base-hf" --outtype f32 --force -q
"$llmtool" convert "$out/tuned.gguf" "$out/tuned-hf" --outtype f32 --force -q
measure "llmtool lora extract (GGUF in)" "$llmtool" lora extract --base "$base" --tuned "$out/tuned.gguf" \
    --rank 16 "$out/extract-gguf" --force -q
measure "llmtool lora extract (HF in)" "$llmtool" lora extract --base "$out/base-hf" --tuned "$out/tuned-hf" \
    --rank 16 "$out/extract-hf" --force -q
mergekit_py=${MERGEKIT_PY:-/opt/genvenv/bin/python3}
if [[ -x $mergekit_py ]] && "$mergekit_py" -c 'import mergekit.scripts.extract_lora' 2>/dev/null; then
    # Offline, mergekit fails after writing the adapter (its model card asks the Hub about
    # the models): a run counts when the adapter is there.
    measure "mergekit-extract-lora" bash -c "rm -rf '$out/extract-mk'; '$mergekit_py' -m mergekit.scripts.extract_lora \
        --model '$out/tuned-hf' --base-model '$out/base-hf' --out-path '$out/extract-mk' --max-rank 16; \
        test -s '$out/extract-mk/adapter_model.safetensors'"
else
    echo "mergekit-extract-lora: not measured (no Python with mergekit and torch at $mergekit_py)"
fi
rm -rf "$out"/*.gguf "$out/time.txt" "$out"/base-hf "$out"/tuned-hf "$out"/extract-*
