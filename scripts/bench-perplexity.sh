#!/usr/bin/env bash
# Perplexity benchmark (not a test): tokens/s and peak RSS of
# `llmtool perplexity --ctx 512 --chunks 10 --threads 2` on SmolLM2-135M-Instruct Q4_1 and on
# Q8_0, Q4_0 and F16 copies made from it by `llmtool quantize` (like llama-quantize
# --allow-requantize), and Q4_K_M, IQ4_XS and IQ3_S copies made by llama.cpp's llama-quantize
# (LLAMA_QUANTIZE, default /opt/llamacpp/build/bin/llama-quantize) from the F16 copy with the
# importance matrix fixtures/imatrix/smollm2-q4_1-wiki4.gguf (any other llama-quantize type
# name in TYPES is made the same way). SmolLM2's n_embd 576 is not a multiple of 256: there
# llama-quantize falls back to IQ4_NL (i-quants) / Q5_0 (Q4_K) for the k = 576 matrices, so
# those files are i-quants / Q4_K and Q6_K in ffn_down only.
# The same files run through llama.cpp in the same run (-c 512 --chunks 10 -t 2 -b BATCH, our --batch BATCH) and
# the ratio is printed against each of two builds of current llama.cpp (0c1e570, vendored in
# llama-cpp-python 0.3.36): LLAMA_PERPLEXITY (the native build, GGML_NATIVE=ON) and
# LLAMA_PERPLEXITY_AVX2 (GGML_NATIVE=OFF, AVX2+FMA+F16C, what portable packages ship); with
# BUILD_LLAMA=1 both are built first by scripts/build-llamacpp.sh.
# A roofline line per type gives the core's achieved arithmetic rate — matmul and attention
# operations per token (2 per multiply-add: every 2-D weight once, the tied output included,
# plus QK and softmax·V over the average causal context) × tokens/s — and its fraction of this
# CPU's measured peak for the instructions used, on 2 threads: `cargo run --example peak`
# (kernels/examples/peak.rs: independent f32 FMA chains on the widest vectors, and vpdpbusd /
# maddubs for int8, at the clock the cores actually run — a nominal-clock formula undercounts
# turbo and gave fractions above 100 %). PEAK_FLOP / PEAK_INT8 (GFLOP/s, GOP/s) override it.
# Goal (issue 19): >= 2x the AVX2 build and >= 1.3x the native build on every type.
#
# usage: scripts/bench-perplexity.sh [WORK_DIR]      env: REPS (default 3), CHUNKS (10),
#        TYPES ("Q4_1 Q8_0 Q4_0 F16 Q5_0 Q5_1 Q4_K_M Q6_K IQ4_XS IQ3_S"), TEXT (wiki.test.raw),
#        BATCH (512: one window per pass for both tools; 2048: four, llama.cpp's default -b),
#        LLAMA_PERPLEXITY, LLAMA_PERPLEXITY_AVX2, BUILD_LLAMA, LLAMA_QUANTIZE, PEAK_FLOP, PEAK_INT8
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$root/.cache/bench}"
mkdir -p "$work"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
REPS="${REPS:-3}"
BATCH="${BATCH:-512}"
CHUNKS="${CHUNKS:-10}"
TYPES="${TYPES:-Q4_1 Q8_0 Q4_0 F16 Q5_0 Q5_1 Q4_K_M Q6_K IQ4_XS IQ3_S}"
LLAMA_QUANTIZE="${LLAMA_QUANTIZE:-/opt/llamacpp/build/bin/llama-quantize}"
imatrix="$root/fixtures/imatrix/smollm2-q4_1-wiki4.gguf"
TEXT="$("$root/scripts/wiki-text.sh")"

if [[ "${BUILD_LLAMA:-0}" == 1 ]]; then
  LLAMA_PERPLEXITY="$("$root/scripts/build-llamacpp.sh" native)/llama-perplexity"
  LLAMA_PERPLEXITY_AVX2="$("$root/scripts/build-llamacpp.sh" avx2)/llama-perplexity"
fi
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p llmtool-kernels --example peak
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

# ops_per_token MODEL: multiply-add operations ×2 per evaluated token at ctx 512 (see above).
ops_per_token() {
  python3 - "$1" <<'PY'
import sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
arch = r.fields["general.architecture"].contents()
f = lambda k: r.fields[f"{arch}.{k}"].contents()
names = {t.name for t in r.tensors}
macs = 0
for t in r.tensors:
    if len(t.shape) == 2 and t.name != "token_embd.weight":
        macs += int(t.shape[0]) * int(t.shape[1])
    if t.name == "token_embd.weight" and "output.weight" not in names:
        macs += int(t.shape[0]) * int(t.shape[1])  # tied output
heads, d = f("attention.head_count"), f("embedding_length")
head_dim = f("attention.key_length") if f"{arch}.attention.key_length" in r.fields else d // heads
macs += f("block_count") * 2 * heads * head_dim * (512 + 1) / 2  # QK and softmax·V, mean context
print(2 * macs)
PY
}
peak_out="$("$root/target/release/examples/peak" 2)"
echo "$peak_out" >&2
PEAK_FLOP="${PEAK_FLOP:-$(awk '/^peak f32_fma/ {print $3}' <<<"$peak_out")}"
PEAK_INT8="${PEAK_INT8:-$(awk '/^peak int8_dot/ {print $3}' <<<"$peak_out")}"

peer() {  # peer LABEL BINARY TYPE MODEL OURS
  local label="$1" exe="$2" ty="$3" m="$4" ours="$5" theirs
  theirs=$(run_best "llama-perplexity $label $ty" parse_llama env LD_LIBRARY_PATH="$(dirname "$exe")" "$exe" \
    -m "$m" -f "$TEXT" -c 512 --chunks "$CHUNKS" -t 2 -b "$BATCH" --no-repack)
  printf '%-34s %8.2f x llama.cpp %s\n' "ratio $ty" "$(echo "$ours / $theirs" | bc -l)" "$label" >&2
}

echo "perplexity --ctx 512 --chunks $CHUNKS, batch $BATCH, 2 threads, best of $REPS" >&2
# --no-repack: on CPUs with AMX, llama.cpp's repacked weight buffers need a kernel permission
# that sandboxes lack (SIGILL); on AVX2-only CPUs it only changes Q4_0's kernel layout.
for ty in $TYPES; do
  m="$(model_of "$ty")"
  ours=$(run_best "llmtool $ty" parse_llmtool "$bin" perplexity "$m" --text "$TEXT" --ctx 512 --chunks "$CHUNKS" \
    --threads 2 --kv-f16 --batch "$BATCH" --json --quiet)
  if [[ -n "${LLAMA_PERPLEXITY:-}" ]]; then peer native "$LLAMA_PERPLEXITY" "$ty" "$m" "$ours"; fi
  if [[ -n "${LLAMA_PERPLEXITY_AVX2:-}" ]]; then peer avx2 "$LLAMA_PERPLEXITY_AVX2" "$ty" "$m" "$ours"; fi
  # F16/BF16/F32 run on f32 FMAs; every quantized type on int8 dot products.
  case "$ty" in F16 | BF16 | F32) peak="$PEAK_FLOP"; unit="GFLOP/s (f32 FMA)" ;;
    *) peak="$PEAK_INT8"; unit="GOP/s (int8 dot)" ;; esac
  achieved=$(echo "$(ops_per_token "$m") * $ours / 1000000000" | bc -l)
  printf '%-34s %8.1f %s = %4.1f %% of %.0f peak\n' "roofline $ty" "$achieved" "$unit" \
    "$(echo "100 * $achieved / $peak" | bc -l)" "$peak" >&2
done
