# Shared helpers of the benchmarks (sourced by bench-convert.sh and bench-quantize.sh).
# Callers set `root` (the workspace root) and call `bench_setup` first.

# bench_setup [WORK_DIR]: sets `work` (the scratch directory, default .cache/bench, created)
# and `bin` (llmtool, built in release mode).
bench_setup() {
  work="${1:-$root/.cache/bench}"
  mkdir -p "$work"
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
  bin="$root/target/release/llmtool"
}

command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

# measure LABEL BYTES CMD... : best of $REPS runs (the machine is shared and noisy); prints
# seconds, MB/s and the peak RSS of that run. `$work/cp.tmp` and `$CLEAN` (if set) are
# removed before each run. The best time is left in `$work/last.wall`, that run's peak RSS
# (KiB) in `$work/last.rss`.
REPS="${REPS:-3}"
measure() {
  local label="$1" bytes="$2"; shift 2
  local log="$work/time.log" best="" best_rss=""
  for _ in $(seq "$REPS"); do
    rm -rf "$work/cp.tmp" ${CLEAN:+"$CLEAN"}
    sync
    /usr/bin/time -v "$@" 2>"$log" >/dev/null || { cat "$log" >&2; exit 1; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
    if [[ -z "$best" ]] || (( $(echo "$wall < $best" | bc -l) )); then best="$wall"; best_rss="$rss"; fi
  done
  [[ "$best" == "0" || "$best" == "0.00" ]] && best=0.005
  printf '%-46s %7.2f s %8.1f MB/s   peak RSS %7.1f MB\n' "$label" "$best" "$(echo "$bytes / 1000000 / $best" | bc -l)" "$(echo "$best_rss / 1024" | bc -l)"
  echo "$best" > "$work/last.wall"
  echo "$best_rss" > "$work/last.rss"
}

# ratio A B: A / B with two decimals.
ratio() { echo "scale=2; $1 / $2" | bc -l; }
