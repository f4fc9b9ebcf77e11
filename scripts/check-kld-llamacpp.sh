#!/usr/bin/env bash
# F16 logits of the core against llama.cpp's own (issue 19: "F16 logits equal llama.cpp's,
# KLD ≤ 1e-5 against its saved logits"). llama-perplexity --kl-divergence-base on SmolLM2 F16
# (CHUNKS windows of 512, its default F16 KV cache) saves its log-probabilities; then
#   - llmtool perplexity --kl-base FILE --kv-f16 reads them and scores its own F16 logits;
#   - the other llama.cpp build (LLAMA_PERPLEXITY_AVX2, if set) does the same with
#     --kl-divergence: llama.cpp's own build-to-build spread, for scale.
# Prints the mean and maximum KLD of each. Not a test (needs llama.cpp builds: BUILD_LLAMA=1
# makes them with scripts/build-llamacpp.sh).
#
# usage: scripts/check-kld-llamacpp.sh [WORK_DIR]   env: LLAMA_PERPLEXITY (native build),
#        LLAMA_PERPLEXITY_AVX2, BUILD_LLAMA, CHUNKS (default 4), TEXT, MAX_KLD (default 1e-5:
#        exit 1 when llmtool's mean KLD is above it)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$root/.cache/bench}"
mkdir -p "$work"
CHUNKS="${CHUNKS:-4}"
MAX_KLD="${MAX_KLD:-1e-5}"
TEXT="$("$root/scripts/wiki-text.sh")"
if [[ "${BUILD_LLAMA:-0}" == 1 ]]; then
  LLAMA_PERPLEXITY="$("$root/scripts/build-llamacpp.sh" native)/llama-perplexity"
  LLAMA_PERPLEXITY_AVX2="$("$root/scripts/build-llamacpp.sh" avx2)/llama-perplexity"
fi
[[ -x "${LLAMA_PERPLEXITY:-}" ]] || { echo "set LLAMA_PERPLEXITY (or BUILD_LLAMA=1)" >&2; exit 2; }
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/llmtool"
q41="$("$root/scripts/fetch-models.sh")"
m="$work/SmolLM2-135M-Instruct.F16.gguf"
[[ -f "$m" ]] || "$bin" quantize "$q41" "$m" --type F16 --quiet --force
base="$work/smollm2-f16.c512x$CHUNKS.kld"

llama() {  # llama BINARY ARGS...
  local exe="$1"; shift
  LD_LIBRARY_PATH="$(dirname "$exe")" "$exe" -m "$m" -f "$TEXT" -c 512 --chunks "$CHUNKS" -t 2 -b 512 --no-repack "$@"
}
llama "$LLAMA_PERPLEXITY" --kl-divergence-base "$base" >"$work/kld-base.log" 2>&1 \
  || { tail -n 20 "$work/kld-base.log" >&2; exit 1; }
echo "base: llama.cpp native build, F16, $CHUNKS x 512 ($base)"

"$bin" perplexity "$m" --text "$TEXT" --ctx 512 --chunks "$CHUNKS" --kv-f16 --kl-base "$base" --json --quiet \
  >"$work/kld-llmtool.json"
read -r mean max < <(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["kld_mean"], v["kld_max"])' \
  "$work/kld-llmtool.json")
echo "llmtool F16 vs llama.cpp F16: mean KLD $mean, max $max"

if [[ -x "${LLAMA_PERPLEXITY_AVX2:-}" ]]; then
  llama "$LLAMA_PERPLEXITY_AVX2" --kl-divergence-base "$base" --kl-divergence >"$work/kld-avx2.log" 2>&1 \
    || { tail -n 20 "$work/kld-avx2.log" >&2; exit 1; }
  echo "llama.cpp AVX2 build F16 vs its native build: mean KLD $(awk '/^Mean +KLD:/ {print $3}' "$work/kld-avx2.log"), max $(awk '/^Maximum +KLD:/ {print $3}' "$work/kld-avx2.log")"
fi
python3 -c 'import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))' "$mean" "$MAX_KLD" \
  || { echo "llmtool's mean KLD $mean is above $MAX_KLD" >&2; exit 1; }
