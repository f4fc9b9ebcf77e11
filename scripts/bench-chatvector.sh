#!/usr/bin/env bash
# ChatVector benchmark (not a test): MB/s (of input read: base + chat + target) and peak RSS
# of `llmtool chatvector --base B --chat C --target T OUT.gguf` on SmolLM2-sized F16 inputs,
# against `cp` of the same three files measured in the same run (best of $REPS).
#   B = SmolLM2 as F16, C = SmolLM2 through Q8_0 back to F16 (different values),
#   T = a copy of B (its own file, so no page is shared with B).
# A second line applies the vector to every tensor (--no-default-skips), a third applies a
# saved vector (`chatvector extract` first; input = vector + target).
#
# usage: [LLMTOOL=path/to/llmtool] [REPS=3] scripts/bench-chatvector.sh [WORK_DIR]
# (without LLMTOOL the release binary is built, as the other benchmarks do)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench-lib.sh
source "$root/scripts/bench-lib.sh"
if [[ -n "${LLMTOOL:-}" ]]; then
  work="${1:-$root/.cache/bench}"; mkdir -p "$work"; bin="$LLMTOOL"
else
  bench_setup "${1:-}"
fi

model="$("$root/scripts/fetch-models.sh")"
b="$work/cv-base-f16.gguf" c="$work/cv-chat-f16.gguf" t="$work/cv-target-f16.gguf"
[[ -f "$b" ]] || "$bin" quantize --quiet "$model" "$b" --type F16 2>/dev/null
if [[ ! -f "$c" ]]; then
  "$bin" quantize --quiet "$b" "$work/cv-q8.gguf" --type Q8_0 2>/dev/null
  "$bin" convert --quiet "$work/cv-q8.gguf" "$c" --outtype f16
  rm -f "$work/cv-q8.gguf"
fi
[[ -f "$t" ]] || cp "$b" "$t"
out="$work/cv-out.gguf" vec="$work/cv-vector.safetensors"
bytes=$(( $(stat -c %s "$b") + $(stat -c %s "$c") + $(stat -c %s "$t") ))
echo "== SmolLM2 F16: base + chat + target = $bytes bytes"
measure "cp base, chat, target" "$bytes" bash -c "cat '$b' '$c' '$t' > '$work/cp.tmp'"
cpt=$(cat "$work/last.wall")
CLEAN="$out" measure "chatvector (default skips)" "$bytes" "$bin" chatvector --quiet --base "$b" --chat "$c" --target "$t" "$out"
echo "    llmtool / cp time = $(ratio "$(cat "$work/last.wall")" "$cpt")"
CLEAN="$out" measure "chatvector --no-default-skips" "$bytes" "$bin" chatvector --quiet --no-default-skips --base "$b" --chat "$c" --target "$t" "$out"
CLEAN="$vec" measure "chatvector extract (f32 vector)" "$(( $(stat -c %s "$b") + $(stat -c %s "$c") ))" "$bin" chatvector extract --quiet --base "$b" --chat "$c" "$vec"
vbytes=$(( $(stat -c %s "$vec") + $(stat -c %s "$t") ))
CLEAN="$out" measure "chatvector --vector (saved f32)" "$vbytes" "$bin" chatvector --quiet --vector "$vec" --target "$t" "$out"
rm -f "$out" "$vec" "$work/cp.tmp"
