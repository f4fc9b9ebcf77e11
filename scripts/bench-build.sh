#!/usr/bin/env bash
# `llmtool build` of an F16 → LoRA → Q8_0 recipe, chained steps on disk vs in memory (issue 17):
#  1. SmolLM2-135M (scripts/fetch-models.sh, Q4_1 → convert f16) with the committed rank-2
#     adapter fixtures/lora/smollm2-r2;
#  2. the synthetic Llama with 7B-sized layers (scripts/gen-synthetic-model.py, F16 HF dir,
#     SYNTH_LAYERS layers) with a rank-8 q/v PEFT adapter written here by numpy.
# No validation (the synthetic model has no tokenizer): the figures are the cost of the chain.
# Each build runs from a fresh cache (what a first build costs), in the same run:
#   before  = BEFORE (default: the main checkout's binary): every step a file in the cache;
#   after   = AFTER (this tree's binary) with caching per-step, final and off.
# Per run: wall time and peak RSS (/usr/bin/time -v), and the bytes the build and its children
# read from and wrote to storage (read_bytes / write_bytes of /proc/<shell>/io, which adds up
# reaped children). The inputs' pages are dropped from the page cache before each run
# (posix_fadvise DONTNEED, those files only) so that reads are counted.
# Usage: scripts/bench-build.sh   (env: BEFORE, AFTER, OUT_DIR, SYNTH_LAYERS, REPS)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
after=${AFTER:-$root/target/debug/llmtool}
before=${BEFORE:-/work/main/target/debug/llmtool}
out=${OUT_DIR:-/tmp/bench-build}
layers=${SYNTH_LAYERS:-4}
reps=${REPS:-1}
mkdir -p "$out"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

# evict PATH...: drop the files' clean pages from the page cache.
evict() {
    python3 - "$@" <<'EOF'
import os, sys
for top in sys.argv[1:]:
    paths = [top] if os.path.isfile(top) else [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
EOF
}

# run LABEL RECIPE BIN [ARGS...]: one build from an empty cache; prints a table row.
run() {
    local label=$1 recipe=$2 bin=$3; shift 3
    local best="" line=""
    for _ in $(seq "$reps"); do
        rm -rf "$out/cache" "$out/dist" "$out/report"
        sync
        evict "${inputs[@]}"
        /usr/bin/time -v bash -c '"$@" >/dev/null; s=$?; cat /proc/$$/io > "'"$out"'/io.txt"; exit $s' _ \
            "$bin" build "$recipe" -q "$@" 2>"$out/time.txt" || { cat "$out/time.txt" >&2; exit 1; }
        sync
        local wall rss rd wr size
        wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$out/time.txt")
        rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time.txt")
        rd=$(awk '/^read_bytes/ {print $2}' "$out/io.txt")
        wr=$(awk '/^write_bytes/ {print $2}' "$out/io.txt")
        size=$(stat -c %s "$out/dist/model.gguf")
        if [[ -z $best ]] || awk "BEGIN{exit !($wall < $best)}"; then
            best=$wall
            line=$(printf '%-28s %8.2f s  peak RSS %8.1f MiB  read %9.1f MB  written %9.1f MB  (output %.1f MB)' \
                "$label" "$wall" "$(awk "BEGIN{print $rss/1024}")" "$(awk "BEGIN{print $rd/1e6}")" \
                "$(awk "BEGIN{print $wr/1e6}")" "$(awk "BEGIN{print $size/1e6}")")
        fi
    done
    echo "$line"
}

# bench NAME MODEL ADAPTER: the recipe and the five builds.
bench() {
    local name=$1 model=$2 adapter=$3
    local recipe="$out/$name.yml"
    printf 'inputs: {m: %s}\nsteps:\n  - convert: {outtype: f16}\n  - lora: {adapter: %s}\n  - quantize: {type: Q8_0}\noutputs: {gguf: dist/model.gguf}\ncache: cache\nreport: report\n' \
        "$model" "$adapter" > "$recipe"
    inputs=("$model" "$adapter")
    echo "== $name: $model (+ $adapter) → F16 → LoRA → Q8_0"
    if [[ -x $before ]]; then
        run "before (main, per-step)" "$recipe" "$before"
    else
        echo "before: not measured (no binary at $before)"
    fi
    run "after, caching per-step" "$recipe" "$after" --caching per-step
    run "after, caching final" "$recipe" "$after" --caching final
    run "after, caching off" "$recipe" "$after" --caching off
}

echo "before: $before"
echo "after:  $after"
smollm2=$(bash scripts/fetch-models.sh)
bench smollm2 "$smollm2" "$root/fixtures/lora/smollm2-r2"

synth="$out/synth-$layers"
if [[ ! -f $synth/config.json ]]; then
    python3 scripts/gen-synthetic-model.py "$synth" --layers "$layers"
fi
# A rank-8 PEFT adapter on q_proj and v_proj of every layer (random, small).
if [[ ! -f $synth-lora/adapter_model.safetensors ]]; then
    python3 - "$synth-lora" "$layers" <<'EOF'
import json, os, struct, sys
import numpy as np
out, layers, h, r = sys.argv[1], int(sys.argv[2]), 4096, 8
os.makedirs(out, exist_ok=True)
json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
           "base_model_name_or_path": "synthetic", "bias": "none", "fan_in_fan_out": False},
          open(os.path.join(out, "adapter_config.json"), "w"))
rng = np.random.default_rng(0)
tensors = {}
for i in range(layers):
    for m in ("q_proj", "v_proj"):
        p = f"base_model.model.model.layers.{i}.self_attn.{m}."
        tensors[p + "lora_A.weight"] = (rng.standard_normal((r, h)) * 0.01).astype(np.float32)
        tensors[p + "lora_B.weight"] = (rng.standard_normal((h, r)) * 0.01).astype(np.float32)
header, off = {}, 0
for k, v in tensors.items():
    header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
    off += v.nbytes
hb = json.dumps(header).encode()
hb += b" " * (-len(hb) % 8)
with open(os.path.join(out, "adapter_model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hb)) + hb)
    for v in tensors.values():
        f.write(v.tobytes())
EOF
fi
bench "synthetic-$layers-layers" "$synth" "$synth-lora"
rm -rf "$out/cache" "$out/dist" "$out/report" "$out/time.txt" "$out/io.txt"
