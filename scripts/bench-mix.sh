#!/usr/bin/env bash
# Reproduces the README's "quantize --target-size" table on SmolLM2-135M-Instruct:
# bits per weight vs mean KLD (and PPL) against the F16 model on held-out text, for
# llama.cpp's mixes without and with an imatrix and for llmtool's measured mix at the same
# file sizes.
#
# Held-out split: wiki.test.raw is cut at its middle line; the sensitivities are measured on
# the first half (--calibration), KLD/PPL on the second half. The imatrix is the fixture
# (llama-imatrix on the first 4×512 tokens of the same file, i.e. inside the first half).
# "llama.cpp's mix" files are made by `llmtool quantize --type T [--imatrix]`, which is
# byte-identical to llama-quantize (tests/quantize_llama_hashes.rs).
#
# Env: LLMTOOL (binary, default target/release/llmtool), WIKI (text), OUT (work dir),
# CHUNKS (held-out 512-token windows, default 20), CALIB_CHUNKS (default 4), CALIB_CTX (128),
# TYPES (llama.cpp mixes, default "Q2_K Q3_K_M Q4_K_M Q5_K_M"), BPWS (extra --target-bpw rows).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${LLMTOOL:-target/release/llmtool}
W=${WIKI:-/work/shared/data/wiki.test.raw}
D=${OUT:-/tmp/bench-mix}
CHUNKS=${CHUNKS:-20}
CALIB_CHUNKS=${CALIB_CHUNKS:-4}
CALIB_CTX=${CALIB_CTX:-128}
TYPES=${TYPES:-Q2_K Q3_K_M Q4_K_M Q5_K_M}
BPWS=${BPWS:-4.0 4.5}
IM=fixtures/imatrix/smollm2-q4_1-wiki4.gguf
M=$(scripts/fetch-models.sh)
mkdir -p "$D"

n=$(wc -l <"$W")
head -n $((n / 2)) "$W" >"$D/calib.txt"
tail -n +$((n / 2 + 1)) "$W" >"$D/heldout.txt"

"$B" quantize "$M" "$D/f16.gguf" --type F16 -q --force
[ -f "$D/f16.logits" ] || "$B" perplexity "$D/f16.gguf" --text "$D/heldout.txt" --ctx 512 --chunks "$CHUNKS" \
  --save-logits "$D/f16.logits" -q >/dev/null

# file size, bpw of the tensor data, mean KLD ± unc, PPL ± unc
row() { # label file
  local size bpw
  size=$(stat -c %s "$2")
  bpw=$("$B" inspect --json "$2" | python3 -c "import json,sys; print('%.3f' % json.load(sys.stdin)['bits_per_weight'])")
  "$B" perplexity "$2" --kl-base "$D/f16.logits" --json -q | python3 -c '
import json, sys
r = json.load(sys.stdin)
label, size, bpw = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print("| %s | %.2f | %s | %.5f ± %.5f | %.3f ± %.3f | %.1f |" % (label, size / 2**20, bpw, r["kld_mean"],
      r["kld_uncertainty"], r["ppl"], r["ppl_uncertainty"], 100 * r["same_top"]))
' "$1" "$size" "$bpw"
}

mix() { # out target-flag value
  local sens=()
  if [ -f "$D/sens.json" ]; then sens=(--sensitivity "$D/sens.json"); else sens=(--save-sensitivity "$D/sens.json"); fi
  "$B" quantize "$D/f16.gguf" "$1" "$2" "$3" --calibration "$D/calib.txt" --imatrix "$IM" \
    --calib-chunks "$CALIB_CHUNKS" --calib-ctx "$CALIB_CTX" "${sens[@]}" --save-mix "${1%.gguf}.mix.txt" --force 2>&1 |
    grep -E "^mix for|sensitivity: .* in " >&2
}

echo "| model | MiB | bpw | mean KLD vs F16 | PPL | same top-1 % |"
echo "|---|---|---|---|---|---|"
row "F16" "$D/f16.gguf"
for t in $TYPES; do
  "$B" quantize "$D/f16.gguf" "$D/llama-$t.gguf" --type "$t" -q --force
  "$B" quantize "$D/f16.gguf" "$D/llama-$t-im.gguf" --type "$t" --imatrix "$IM" -q --force
  mix "$D/ours-$t.gguf" --target-size "$(stat -c %s "$D/llama-$t-im.gguf")"
  row "llama.cpp $t" "$D/llama-$t.gguf"
  row "llama.cpp $t + imatrix" "$D/llama-$t-im.gguf"
  row "llmtool mix, size of $t + imatrix" "$D/ours-$t.gguf"
done
for b in $BPWS; do
  mix "$D/ours-$b.gguf" --target-bpw "$b"
  row "llmtool mix --target-bpw $b" "$D/ours-$b.gguf"
done
