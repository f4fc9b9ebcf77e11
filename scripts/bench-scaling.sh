#!/usr/bin/env bash
# Thread scaling of the core (not a test): `llmtool perplexity --ctx 512 --chunks CHUNKS` on
# SmolLM2 at 1 and 2 threads (what this machine has), with the time split into matmul,
# attention and the rest (LLMTOOL_TIMING=1), then a model of 4…64 threads:
#
#   t(p) = Σ_op t1_op · (s_op + (1 − s_op) · w_op(p) / p),   tok/s(p) = tokens / t(p)
#
# - s_op, the serial fraction of each part, is fitted to the measured 1 → 2 thread speed-up
#   (Amdahl: t2/t1 = s + (1 − s)/2, so s = 2·t2/t1 − 1, clamped to [0, 1]) after taking out
#   the hardware's own 1 → 2 core scaling h2 (`examples/peak` at 1 and 2 threads: the clock
#   drops when both cores run): t2 is scaled by h2/2, so s is the software's part.
# - w_op(p) ≥ 1 is the work split: the parallel tasks of a part run in ⌈tasks/p⌉ rounds, so
#   w = ⌈tasks/p⌉ · p / tasks. Matmul tasks are 16 weight rows (quantized; float weights: 16–64
#   rows, about 8 tasks per thread), weighted by each matrix's share of the multiply-adds;
#   attention tasks are n_head × ⌈512/48⌉ per layer (kernels::attention). The rest (norms,
#   RoPE, SwiGLU, scoring) is row-parallel in tasks of 8 rows: w from 512/8 tasks.
# - Memory: every weight is read once per 512-token window, so tok/s ≤ DRAM bandwidth ×
#   512 / weight bytes; the bandwidth is `examples/peak`'s 2-thread read rate (a server has
#   more), printed as a cap.
#
# usage: scripts/bench-scaling.sh [WORK_DIR]     env: TYPES (default "Q4_1 Q8_0 F16"), CHUNKS (10),
#        REPS (2), TEXT. Model files as scripts/bench-perplexity.sh makes them (Q8_0/F16 by llmtool).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$root/.cache/bench}"
mkdir -p "$work"
TYPES="${TYPES:-Q4_1 Q8_0 F16}"
CHUNKS="${CHUNKS:-10}"
REPS="${REPS:-2}"
TEXT="$("$root/scripts/wiki-text.sh")"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p llmtool-kernels --example peak
bin="$root/target/release/llmtool"
q41="$("$root/scripts/fetch-models.sh")"
peak1=$("$root/target/release/examples/peak" 1)
peak2=$("$root/target/release/examples/peak" 2)
dram=$(awk '/^peak dram_read/ {print $3}' <<<"$peak2")
h2_fma=$(echo "$(awk '/^peak f32_fma/ {print $3}' <<<"$peak2") / $(awk '/^peak f32_fma/ {print $3}' <<<"$peak1")" | bc -l)
h2_int8=$(echo "$(awk '/^peak int8_dot/ {print $3}' <<<"$peak2") / $(awk '/^peak int8_dot/ {print $3}' <<<"$peak1")" | bc -l)
printf 'DRAM read (2 threads): %s GB/s; hardware 1 -> 2 cores: f32 FMA x%.2f, int8 dot x%.2f\n' "$dram" "$h2_fma" "$h2_int8" >&2

for ty in $TYPES; do
  m="$q41"
  if [[ "$ty" != Q4_1 ]]; then
    m="$work/SmolLM2-135M-Instruct.$ty.gguf"
    [[ -f "$m" ]] || "$bin" quantize "$q41" "$m" --type "$ty" --quiet --force
  fi
  # best of REPS per thread count: "threads tok/s matmul attention rest"
  rows=""
  for th in 1 2; do
    best=""
    for _ in $(seq "$REPS"); do
      line=$(LLMTOOL_TIMING=1 "$bin" perplexity "$m" --text "$TEXT" --ctx 512 --chunks "$CHUNKS" --threads "$th" \
        --kv-f16 --json --quiet 2>&1 >"$work/scaling.json" | grep -o 'timing: .*' | tail -n 1)
      tps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens_per_second"])' "$work/scaling.json")
      if [[ -z "$best" ]] || (( $(echo "$tps > ${best%% *}" | bc -l) )); then
        best="$tps $(sed -E 's/timing: matmul ([0-9.]+) s, attention ([0-9.]+) s, rest ([0-9.]+) s.*/\1 \2 \3/' <<<"$line")"
      fi
    done
    rows+="$th $best"$'\n'
  done
  case "$ty" in F16 | BF16 | F32) h2="$h2_fma" ;; *) h2="$h2_int8" ;; esac
  python3 - "$ty" "$m" "$dram" "$CHUNKS" "$h2" <<PY
import math, os, sys
from gguf import GGUFReader
ty, path, dram, chunks, h2 = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
meas = {}
for line in """$rows""".strip().splitlines():
    th, tps, mm, at, rest = line.split()
    meas[int(th)] = (float(tps), {"matmul": float(mm), "attention": float(at), "rest": float(rest)})
r = GGUFReader(path)
arch = r.fields["general.architecture"].contents()
f = lambda k: r.fields[f"{arch}.{k}"].contents()
n_head, n_layer = f("attention.head_count"), f("block_count")
names = {t.name for t in r.tensors}
float_w = ty in ("F16", "BF16", "F32")
mats = []  # (rows, multiply-adds per token)
for t in r.tensors:
    if len(t.shape) != 2:
        continue
    k, rows = int(t.shape[0]), int(t.shape[1])
    if t.name == "token_embd.weight" and "output.weight" in names:
        continue
    mats.append((rows, rows * k))
weight_bytes = sum(int(t.n_bytes) for t in r.tensors)
def tasks_of(rows, p):
    if not float_w:
        return math.ceil(rows / 16)
    per = min(max(((math.ceil(rows / (8 * p)) + 3) // 4) * 4, 16), 64)
    return math.ceil(rows / per)
def split(tasks, p):
    return math.ceil(tasks / p) * p / tasks
def w_matmul(p):
    tot = sum(m for _, m in mats)
    return sum(m / tot * split(tasks_of(rows, p), p) for rows, m in mats)
att_tasks = n_head * math.ceil(512 / 48)
w = {"matmul": w_matmul, "attention": lambda p: split(att_tasks, p), "rest": lambda p: split(512 // 8, p)}
t1, t2 = meas[1][1], meas[2][1]
tokens = chunks * 512
serial = {op: min(max(2 * (t2[op] * h2 / 2) / t1[op] - 1, 0.0), 1.0) for op in t1}
cap = dram * 1e9 * 512 / weight_bytes
print(f"{ty}: measured 1 thread {meas[1][0]:.1f} tok/s, 2 threads {meas[2][0]:.1f} tok/s "
      f"(x{meas[2][0] / meas[1][0]:.2f}); per part 1 -> 2 threads: "
      + ", ".join(f"{op} {t1[op]:.2f} -> {t2[op]:.2f} s" for op in t1))
print(f"{ty}: serial fractions after the hardware's own x{h2:.2f}: " + ", ".join(f"{op} {serial[op]:.3f}" for op in t1)
      + "; the model below is at the 1-core clock (a many-core part's all-core clock is lower)")
print(f"{ty}: weights {weight_bytes / 2**20:.0f} MiB read once per window: DRAM cap {cap:,.0f} tok/s at {dram:.1f} GB/s")
print(f"| threads | modeled tok/s | speed-up | efficiency | matmul split | attention split |")
print(f"|---:|---:|---:|---:|---:|---:|")
for p in (1, 2, 4, 8, 16, 32, 64):
    t = sum(t1[op] * (serial[op] + (1 - serial[op]) * w[op](p) / p) for op in t1)
    tps = min(tokens / t, cap)
    base = tokens / sum(t1.values())
    print(f"| {p} | {tps:.0f} | {tps / base:.2f}x | {100 * tps / base / p:.0f} % | {w['matmul'](p):.2f} | {w['attention'](p):.2f} |")
PY
done
