#!/usr/bin/env bash
# Perplexity benchmark (not a test): tokens/s and peak RSS of
# `llmtool perplexity --ctx 512 --chunks 10 --threads 2` on SmolLM2-135M-Instruct Q4_1 and on
# Q8_0, Q4_0 and F16 copies made from it by `llmtool quantize` (like llama-quantize
# --allow-requantize), and Q4_K_M, IQ4_XS and IQ3_S copies made by llama.cpp's llama-quantize
# (LLAMA_QUANTIZE, default /opt/llamacpp/build/bin/llama-quantize) from the F16 copy with the
# importance matrix fixtures/imatrix/smollm2-q4_1-wiki4.gguf (any other llama-quantize type
# name in TYPES is made the same way). SmolLM2's n_embd 576 is not a multiple of 256: there
# llama-quantize falls back to IQ4_NL (i-quants) / Q5_0 (Q4_K) for the k = 576 matrices, so
# those files are i-quants / Q4_K and Q6_K in ffn_down only. With
# LLAMA_PERPLEXITY=/path/to/llama-perplexity the same files run through llama.cpp in the same
# run (-c 512 --chunks 10 -t 2 -b 512) and the ratio is printed.
# Target: llmtool tok/s >= llama.cpp's (reference, -b 512: Q4_1 159, F16 301, Q8_0 251,
# Q4_0 323 tok/s on a 2-core AVX2 machine); >= 1.2x for Q4_K_M, IQ4_XS, IQ3_S.
#
# usage: scripts/bench-perplexity.sh [WORK_DIR]      env: REPS (default 3), CHUNKS (10),
#        TYPES ("Q4_1 Q8_0 Q4_0 F16 Q4_K_M IQ4_XS IQ3_S"), TEXT (wiki.test.raw),
#        LLAMA_PERPLEXITY, LLAMA_QUANTIZE
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$root/.cache/bench}"
mkdir -p "$work"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
REPS="${REPS:-3}"
CHUNKS="${CHUNKS:-10}"
TYPES="${TYPES:-Q4_1 Q8_0 Q4_0 F16 Q4_K_M IQ4_XS IQ3_S}"
LLAMA_QUANTIZE="${LLAMA_QUANTIZE:-/opt/llamacpp/build/bin/llama-quantize}"
imatrix="$root/fixtures/imatrix/smollm2-q4_1-wiki4.gguf"
TEXT="$("$root/scripts/wiki-text.sh")"

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/llmtool"
q41="$("$root/scripts/fetch-models.sh")"

model_of() {  # TYPE -> path
  if [[ "$1" == Q4_1 ]]; then echo "$q41"; return; fi
  local out="$work/SmolLM2-135M-Instruct.$1.gguf"
  if [[ ! -f "$out" ]]; then
    case "$1" in
      Q8_0 | Q4_0 | F16) "$bin" quantize "$q41" "$out" --type "$1" --quiet --force >&2 ;;
      *)
        [[ -x "$LLAMA_QUANTIZE" ]] || { echo "$1 is made by llama-quantize: set LLAMA_QUANTIZE" >&2; exit 1; }
        "$LLAMA_QUANTIZE" --imatrix "$imatrix" "$(model_of F16)" "$out.tmp" "$1" 2 >"$work/quantize.$1.log" 2>&1 \
          || { tail -n 20 "$work/quantize.$1.log" >&2; exit 1; }
        mv "$out.tmp" "$out" ;;
    esac
  fi
  echo "$out"
}

# run_best LABEL TOKS_FROM_LOG_CMD CMD... : best tok/s of $REPS runs and that run's peak RSS
run_best() {
  local label="$1" parse="$2"; shift 2
  local best="" best_rss="" log="$work/run.log" tlog="$work/time.log"
  for _ in $(seq "$REPS"); do
    /usr/bin/time -v "$@" >"$log" 2>"$tlog.all" || { tail -n 20 "$tlog.all" >&2; exit 1; }
    local tps rss
    tps=$("$parse" "$log" "$tlog.all")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tlog.all")
    if [[ -z "$best" ]] || (( $(echo "$tps > $best" | bc -l) )); then best="$tps"; best_rss="$rss"; fi
  done
  printf '%-34s %8.1f tok/s   peak RSS %7.1f MiB\n' "$label" "$best" "$(echo "$best_rss / 1024" | bc -l)" >&2
  echo "$best"
}

# llmtool --json prints tokens_per_second (evaluated tokens / wall time of the windows).
parse_llmtool() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens_per_second"])' "$1"; }
# llama.cpp: "prompt eval time = X ms / N tokens (..., Y tokens per second)" when its build prints
# libllama's perf summary; otherwise (builds that do not) the evaluated tokens (chunks x n_ctx)
# over the wall time between the log lines "calculating perplexity over N chunks, n_ctx=C" and
# "Final estimate" (log timestamps M.SS.mmm.uuu), which also covers the log-softmax scoring, as
# llmtool's figure does.
parse_llama() {
  if grep -q "prompt eval time" "$2" "$1"; then
    grep -h "prompt eval time" "$2" "$1" | tail -n 1 | sed -E 's/.*, *([0-9.]+) tokens per second.*/\1/'
    return
  fi
  cat "$2" "$1" | python3 -c '
import re, sys
log = sys.stdin.read()
def ts(pattern):
    # Not anchored: the progress output ("[1]…,[2]…,") shares lines with the log.
    m = re.search(r"(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) I " + pattern, log)
    if not m:
        sys.exit("llama-perplexity log: no line matching " + pattern)
    return int(m[1]) * 60 + int(m[2]) + int(m[3]) / 1e3 + int(m[4]) / 1e6, m
t0, m = ts(r"perplexity: calculating perplexity over (\d+) chunks, n_ctx=(\d+)")
t1, _ = ts(r"Final estimate")
print(int(m[5]) * int(m[6]) / (t1 - t0))'
}

echo "perplexity --ctx 512 --chunks $CHUNKS, 2 threads, best of $REPS" >&2
# --no-repack: on CPUs with AMX, llama.cpp's repacked weight buffers need a kernel permission
# that sandboxes lack (SIGILL); on AVX2-only CPUs it only changes Q4_0's kernel layout.
for ty in $TYPES; do
  m="$(model_of "$ty")"
  ours=$(run_best "llmtool $ty" parse_llmtool "$bin" perplexity "$m" --text "$TEXT" --ctx 512 --chunks "$CHUNKS" \
    --threads 2 --kv-f16 --json --quiet)
  if [[ -n "${LLAMA_PERPLEXITY:-}" ]]; then
    theirs=$(run_best "llama-perplexity $ty (-b 512)" parse_llama "$LLAMA_PERPLEXITY" -m "$m" -f "$TEXT" -c 512 \
      --chunks "$CHUNKS" -t 2 -b 512 --no-repack)
    printf '%-34s %8.2f x llama.cpp\n' "ratio $ty" "$(echo "$ours / $theirs" | bc -l)" >&2
  fi
done
