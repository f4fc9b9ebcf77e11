#!/usr/bin/env bash
# Conversion benchmark (not a test): MB/s and peak RSS of `llmtool convert` for GGUF→HF
# and HF→GGUF, on SmolLM2 (real model) and on a synthetic Llama with 7B-sized layers
# (4 × [4096×11008] f16 blocks, generated on the fly), each against `cp` of the same bytes
# measured in the same run. Targets: time ≤ 1.5× cp; peak RSS < 2 × largest tensor + 100 MB.
#
# usage: scripts/bench-convert.sh [WORK_DIR]    (needs ~8 GB free in WORK_DIR)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench-lib.sh
source "$root/scripts/bench-lib.sh"
bench_setup "${1:-}"
model="$("$root/scripts/fetch-models.sh")"
synth="$work/synthetic-7b-layers"
[[ -f "$synth/model.safetensors" ]] || python3 "$root/scripts/gen-synthetic-model.py" "$synth" --layers 4

# llmtool fsyncs its output (temp + fsync + rename), so besides plain `cp` (which returns
# with the data still in the page cache) the fair baselines are `cp` + fsync of the copy and
# a user-space copy with fsync (dd).
bench_pair() {  # NAME INPUT OUTPUT BYTES CONVERT_ARGS...
  local name="$1" in="$2" out="$3" bytes="$4"; shift 4
  measure "$name: cp" "$bytes" cp -r "$in" "$work/cp.tmp"; local cpt; cpt=$(cat "$work/last.wall")
  measure "$name: cp + fsync" "$bytes" sh -c 'cp -r "$1" "$2" && find "$2" -type f -exec sync {} +' _ "$in" "$work/cp.tmp"
  local cpst; cpst=$(cat "$work/last.wall")
  # cp copies in the kernel (copy_file_range); a converter must pass the bytes through user
  # space. dd with fsync is that floor: read into a buffer, write, fsync (largest file).
  local big; big=$(find "$in" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
  measure "$name: dd + fsync" "$(stat -c %s "$big")" dd if="$big" of="$work/cp.tmp" bs=16M conv=fsync status=none
  CLEAN="$out" measure "$name: llmtool convert" "$bytes" "$bin" convert --quiet "$@" "$in" "$out"
  local lt; lt=$(cat "$work/last.wall")
  echo "    ratio llmtool / cp = $(ratio "$lt" "$cpt"); llmtool / (cp + fsync) = $(ratio "$lt" "$cpst")"
  rm -rf "$work/cp.tmp"
}

echo "== SmolLM2-135M-Instruct (Q4_1 GGUF, $(stat -c %s "$model") bytes)"
bench_pair "SmolLM2 GGUF→GGUF" "$model" "$work/smol-copy.gguf" "$(stat -c %s "$model")"
# Dequantizes Q4_1 → f16: the output (270 MB) is 2.7× the input; MB/s counts input bytes.
bench_pair "SmolLM2 GGUF→HF f16" "$model" "$work/smol-hf" "$(stat -c %s "$model")" --outtype f16
hfbytes=$(du -sb "$work/smol-hf" | cut -f1)
bench_pair "SmolLM2 HF f16→GGUF" "$work/smol-hf" "$work/smol-back.gguf" "$hfbytes"

sbytes=$(stat -c %s "$synth/model.safetensors")
echo "== synthetic Llama, 4 layers of 4096×11008 f16 ($sbytes bytes; largest tensor 90.2 MB → RSS target < 280 MB)"
bench_pair "synthetic HF→GGUF" "$synth" "$work/synth.gguf" "$sbytes"
bench_pair "synthetic GGUF→HF" "$work/synth.gguf" "$work/synth-hf" "$(stat -c %s "$work/synth.gguf")"
rm -rf "$work/synth-hf" "$work/smol-hf" "$work"/*.gguf
