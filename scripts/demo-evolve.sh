#!/usr/bin/env bash
# Evolutionary merge demo on the real model: W = SmolLM2-135M-Instruct (Q4_1, as F16), A = W + δ,
# B = W − δ (δ = 0.5 × rms noise per matrix: A alone has a perplexity in the tens of
# thousands). `merge --evolve` searches linear weights from (0.8, 0.2) by CMA-ES with −ln PPL
# as fitness; the best recipe must come back near equal weights with W's perplexity. Then the
# best model and W are scored at ctx 512 on $CHUNKS windows. Budget: $EVALS evaluations.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin llmtool --example evolve
bin="$root/target/release/llmtool"
model="$("$root/scripts/fetch-models.sh")"
text="$("$root/scripts/wiki-text.sh")"
evals="${EVALS:-48}"
chunks="${CHUNKS:-4}"
work="${WORK:-$(mktemp -d /tmp/demo-evolve.XXXXXX)}"
trap 'rm -f "$work"/a.gguf "$work"/b.gguf "$work"/w.gguf' EXIT
"$root/target/release/examples/evolve" "$model" "$work" 0.5
cat > "$work/evolve.yml" <<YML
merge_method: linear
models: [a.gguf, b.gguf]
fitness:
  perplexity: [{file: "$text"}]
eval: {ctx: 256, chunks: 2}
search: {max_evals: $evals, population: 6, sigma: 0.25, seed: 1, x0: [0.8, 0.2]}
YML
rm -rf "$work/out"
"$bin" merge --evolve "$work/evolve.yml" "$work/out"
echo "== best.yml"
cat "$work/out/best.yml"
for m in "$work/w.gguf" "$work/out/best.gguf" "$work/a.gguf"; do
  echo "== perplexity of $(basename "$m") (ctx 512, $chunks windows)"
  "$bin" perplexity "$m" --text "$text" --ctx 512 --chunks "$chunks" --quiet | tail -n 1
done
echo "outputs in $work/out (history.csv, fitness.svg, best.yml, best.gguf)"
