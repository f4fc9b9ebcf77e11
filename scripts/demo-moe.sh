#!/usr/bin/env bash
# Mixture-of-Experts demo on the real model: a "clown-car" MoE assembled from SmolLM2-135M-
# Instruct (Q4_1, dequantized) and two LoRA-merged variants of it, as mergekit-moe would build
# it from the same YAML: router rows from the hidden states of each expert's prompts
# (gate_mode hidden, computed by llmtool's own core), 2 of 3 experts per token. The MoE and
# every source are then scored on the same text (perplexity, llama.cpp's method, ctx 512,
# $CHUNKS windows; KL divergence from the base).
#
# The variants are SmolLM2 with the rank-2 LoRA fixture (fixtures/lora/smollm2-r2) merged at
# scale +1 and -1: no public fine-tune of this model ships on PyPI, so the variants are small
# perturbations rather than real specialists, and the MoE is expected to land near the base,
# not to beat it. With real fine-tunes, put their files in the YAML instead.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin llmtool
bin="$root/target/release/llmtool"
model="$("$root/scripts/fetch-models.sh")"
text="$("$root/scripts/wiki-text.sh")"
chunks="${CHUNKS:-4}"
work="${WORK:-$root/.cache/demo-moe}"
mkdir -p "$work"
adapter="$root/fixtures/lora/smollm2-r2"
echo "== variants: SmolLM2 + LoRA (scale +1, -1), as F16 GGUF"
"$bin" convert --force --quiet --outtype f16 "$model" "$work/base.gguf"
"$bin" lora merge --force --quiet --base "$work/base.gguf" --adapter "$adapter" --scale 1 "$work/plus.gguf"
"$bin" lora merge --force --quiet --base "$work/base.gguf" --adapter "$adapter" --scale -1 "$work/minus.gguf"
cat > "$work/moe.yml" <<'YML'
# mergekit-moe syntax (mergekit 0.1.5): llmtool moe reads it as mergekit-moe does.
base_model: base.gguf
gate_mode: hidden
dtype: float16
experts_per_token: 2
experts:
  - source_model: base.gguf
    positive_prompts: ["The history of the city begins in the", "He was born in"]
  - source_model: plus.gguf
    positive_prompts: ["The album was released in", "The song reached number"]
  - source_model: minus.gguf
    positive_prompts: ["The species is found in", "The game was played at"]
    negative_prompts: ["The album was released in"]
YML
echo "== llmtool moe (3 experts, 2 per token) with every source scored on the same text"
"$bin" moe --force "$work/moe.yml" "$work/smollm2-moe.gguf" \
  --eval-text "$text" --eval-chunks "$chunks" --eval-ctx 512
echo "== the MoE's architecture"
"$bin" inspect "$work/smollm2-moe.gguf" | grep -E "general.architecture|expert|block_count" || true
echo "outputs in $work (moe.yml, smollm2-moe.gguf)"
