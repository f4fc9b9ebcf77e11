#!/usr/bin/env bash
# Throughput of the evolutionary merge search, in-process vs the Ray driver (python/llmtool_ray)
# with 1 and 2 workers on a local Ray, on the same run (same EVOLVE.yml, seed and budget: the
# three must end with byte-identical best.yml / best.gguf, checked here): evaluations per hour,
# the worker's start-up cost (process start to ready: loading and dequantizing the inputs,
# tokenizing the texts) and the per-candidate cost (mean of history.csv's seconds), so a search
# on other models and machine counts can be predicted (README "Evolutionary merge").
#
# W = SmolLM2-135M-Instruct (Q4_1, as F16), A = W + δ, B = W − δ (examples/evolve), fitness
# −ln PPL on wiki.test.raw at ctx $CTX × $CHUNKS, $EVALS evaluations of population $POP.
# Env: BIN (default: a release build of llmtool), EXAMPLE (the built examples/evolve binary),
# PYTHON (a python with ray; default python3), WORK (scratch dir).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "${BIN:-}" ]]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin llmtool --example evolve
  BIN="$root/target/release/llmtool"
  EXAMPLE="${EXAMPLE:-$root/target/release/examples/evolve}"
fi
EXAMPLE="${EXAMPLE:-$(dirname "$BIN")/examples/evolve}"
PYTHON="${PYTHON:-python3}"
evals="${EVALS:-12}" ctx="${CTX:-256}" chunks="${CHUNKS:-2}" pop="${POP:-6}"
cores="$(nproc)"
model="$("$root/scripts/fetch-models.sh")"
text="$("$root/scripts/wiki-text.sh")"
work="${WORK:-$(mktemp -d /tmp/bench-evolve.XXXXXX)}"
mkdir -p "$work"
[[ -f "$work/a.gguf" && -f "$work/b.gguf" ]] || "$EXAMPLE" "$model" "$work" 0.5 >/dev/null
cat > "$work/evolve.yml" <<YML
merge_method: linear
models: [a.gguf, b.gguf]
fitness:
  perplexity: [{file: "$text"}]
eval: {ctx: $ctx, chunks: $chunks}
search: {max_evals: $evals, population: $pop, sigma: 0.25, seed: 1, x0: [0.8, 0.2]}
YML
export PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}" RAY_USAGE_STATS_ENABLED=0

now() { date +%s.%N; }
# mean of history.csv's last column (seconds per candidate)
per_candidate() { awk -F, 'NR > 1 { s += $NF; n++ } END { printf "%.3f", s / n }' "$1/history.csv"; }
row() { # LABEL WALL DIR
  printf '%-34s %8.1f s %9.0f evals/h   %6.3f s/candidate\n' "$1" "$2" "$(echo "$evals * 3600 / $2" | bc -l)" "$(per_candidate "$3")"
}

echo "bench-evolve: $evals evaluations (population $pop), ctx $ctx x $chunks, $cores cores, $BIN"
rm -rf "$work/in"
t0=$(now); "$BIN" merge --evolve -q "$work/evolve.yml" "$work/in"; t1=$(now)
row "in-process (all cores)" "$(echo "$t1 - $t0" | bc -l)" "$work/in"

for w in 1 2; do
  cpus=$(( cores / w )); (( cpus >= 1 )) || cpus=1
  rm -rf "$work/ray$w"
  t0=$(now)
  "$PYTHON" -m llmtool_ray "$work/evolve.yml" "$work/ray$w" --workers "$w" --num-cpus "$cpus" \
    --local-cpus "$cores" --llmtool "$BIN" --json -q > "$work/ray$w.json"
  t1=$(now)
  # Driver time without Ray's own start (ray.init), which a cluster pays once, not per search.
  wall=$("$PYTHON" -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['seconds'])" "$work/ray$w.json")
  row "ray, $w worker(s) x $cpus thread(s)" "$wall" "$work/ray$w"
  "$PYTHON" - "$work/ray$w.json" "$(echo "$t1 - $t0" | bc -l)" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ws = s["workers"]
print("  ray.init %.2f s, whole command %.1f s; worker start-up (process start to ready) %s s, of which loading %s s"
      % (s["ray_init_seconds"], float(sys.argv[2]),
         "/".join("%.2f" % w["start_seconds"] for w in ws), "/".join("%.2f" % w["load_seconds"] for w in ws)))
PY
  for f in best.yml best.gguf; do
    cmp -s "$work/in/$f" "$work/ray$w/$f" || { echo "bench-evolve: $f of ray $w worker(s) differs from in-process" >&2; exit 1; }
  done
done
echo "best.yml and best.gguf identical in all three runs; outputs in $work"
