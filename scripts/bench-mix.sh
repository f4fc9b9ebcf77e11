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
# TYPES (llama.cpp mixes, default "Q2_K Q3_K_M Q4_K_M Q5_K_M"), BPWS (extra --target-bpw rows),
# LLAMA_PERPLEXITY (optional: llama.cpp's llama-perplexity, which then also scores our files
# against the same base file: the last column).
#
# The "F16" reference holds SmolLM2's Q4_1 weights (the only published GGUF we fetch)
# dequantized, so Q4_1 re-quantizes most of its tensors almost exactly. The allocator finds
# that (and Q5_1, whose grid holds Q4_1's at half the step, can too); the "no Q4_1" and
# "no Q4_1/Q5_1" rows (--candidates without them) show the result without that effect.
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
LP=${LLAMA_PERPLEXITY:-}
NO_Q41=IQ1_S,IQ1_M,IQ2_XXS,IQ2_XS,IQ2_S,Q2_K,IQ3_XXS,IQ3_S,Q3_K,IQ4_XS,IQ4_NL,Q4_0,Q4_K,Q5_0,Q5_1,Q5_K,Q6_K,Q8_0,F16
NO_Q4151=${NO_Q41/Q5_1,/}
IM=fixtures/imatrix/smollm2-q4_1-wiki4.gguf
M=$(scripts/fetch-models.sh)
mkdir -p "$D"

n=$(wc -l <"$W")
head -n $((n / 2)) "$W" >"$D/calib.txt"
tail -n +$((n / 2 + 1)) "$W" >"$D/heldout.txt"

"$B" quantize "$M" "$D/f16.gguf" --type F16 -q --force
[ -f "$D/f16.logits" ] || "$B" perplexity "$D/f16.gguf" --text "$D/heldout.txt" --ctx 512 --chunks "$CHUNKS" \
  --save-logits "$D/f16.logits" -q >/dev/null

# file size, bpw of the tensor data, mean KLD ± unc, PPL ± unc (cached in FILE.kld.json)
row() { # label file [llama.cpp check]
  local size bpw lkld="" j="$2.kld.json"
  size=$(stat -c %s "$2")
  bpw=$("$B" inspect --json "$2" | python3 -c "import json,sys; print('%.3f' % json.load(sys.stdin)['bits_per_weight'])")
  [ "$j" -nt "$2" ] || "$B" perplexity "$2" --kl-base "$D/f16.logits" --json -q >"$j"
  if [ -n "$LP" ] && [ -n "${3:-}" ]; then
    [ "$2.llama.txt" -nt "$2" ] || "$LP" -m "$2" --kl-divergence-base "$D/f16.logits" --kl-divergence -t 2 >"$2.llama.txt" 2>&1
    lkld=$(grep -E "^Mean +KLD:" "$2.llama.txt" | awk '{print $3}')
  fi
  python3 -c '
import json, sys
r = json.load(open(sys.argv[4]))
label, size, bpw, lkld = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[5]
print("| %s | %.2f | %s | %.5f ± %.5f | %.3f ± %.3f | %.1f | %s |" % (label, size / 2**20, bpw, r["kld_mean"],
      r["kld_uncertainty"], r["ppl"], r["ppl_uncertainty"], 100 * r["same_top"], lkld))
' "$1" "$size" "$bpw" "$j" "$lkld"
}

mix() { # out target-flag value [more quantize args]
  local out=$1 sens=()
  shift
  if [ -f "$D/sens.json" ]; then sens=(--sensitivity "$D/sens.json"); else sens=(--save-sensitivity "$D/sens.json"); fi
  "$B" quantize "$D/f16.gguf" "$D/new.gguf" "$@" --calibration "$D/calib.txt" --imatrix "$IM" \
    --calib-chunks "$CALIB_CHUNKS" --calib-ctx "$CALIB_CTX" "${sens[@]}" --save-mix "${out%.gguf}.mix.txt" --force 2>&1 |
    grep -E "^mix for|sensitivity: .* in " >&2
  # keep the old file (and its cached scores) when the bytes did not change
  if cmp -s "$D/new.gguf" "$out"; then rm "$D/new.gguf"; else mv "$D/new.gguf" "$out"; fi
}

llama() { # type out [--imatrix F]
  [ -f "$2" ] || "$B" quantize "$D/f16.gguf" "$2" --type "$1" "${@:3}" -q
}

echo "| model | MiB | bpw | mean KLD vs F16 | PPL | same top-1 % | KLD by llama-perplexity |"
echo "|---|---|---|---|---|---|---|"
row "F16 (SmolLM2's Q4_1 weights)" "$D/f16.gguf"
for t in $TYPES; do
  llama "$t" "$D/llama-$t.gguf"
  llama "$t" "$D/llama-$t-im.gguf" --imatrix "$IM"
  size=$(stat -c %s "$D/llama-$t-im.gguf")
  mix "$D/ours-$t.gguf" --target-size "$size"
  mix "$D/ours-noq41-$t.gguf" --target-size "$size" --candidates "$NO_Q41"
  mix "$D/ours-noq4151-$t.gguf" --target-size "$size" --candidates "$NO_Q4151"
  row "llama.cpp $t" "$D/llama-$t.gguf"
  row "llama.cpp $t + imatrix" "$D/llama-$t-im.gguf"
  row "llmtool mix, size of $t + imatrix" "$D/ours-$t.gguf" check
  row "llmtool mix (no Q4_1), size of $t + imatrix" "$D/ours-noq41-$t.gguf"
  row "llmtool mix (no Q4_1/Q5_1), size of $t + imatrix" "$D/ours-noq4151-$t.gguf"
done
for b in $BPWS; do
  mix "$D/ours-$b.gguf" --target-bpw "$b"
  row "llmtool mix --target-bpw $b" "$D/ours-$b.gguf"
done
