#!/usr/bin/env bash
# Fuzz smoke (issue 18): every cargo-fuzz target in fuzz/ runs SECONDS (default 30) from its
# committed seeds (fuzz/seeds/<target>), with the bounds of fuzz/RESULTS.md: 2 GiB RSS,
# 10 s per input (the targets' own allocators abort on one allocation over their stated
# bound). Any crash, timeout or out-of-memory fails the script and leaves the input under
# fuzz/artifacts/<target>/.
#
# Stable toolchain only: `cargo fuzz build -s none` (no sanitizer; the -Z flags of the
# sanitizers need nightly). Targets run in parallel, at most one per core.
# FUZZ_SECONDS (per target), FUZZ_JOBS (parallel runs), FUZZ_TARGETS (names; default all)
# and FUZZ_LOGS (keep each libFuzzer log there) adjust it: the long runs of fuzz/RESULTS.md
# were `FUZZ_FULL_BUILD=1 FUZZ_SECONDS=600 FUZZ_JOBS=1 FUZZ_LOGS=... scripts/fuzz-smoke.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-30}"
if ! command -v cargo-fuzz >/dev/null && ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
start=$(date +%s)
# The smoke builds for speed (opt-level 1, 16 codegen units: a cold build of every target is
# several times faster than cargo fuzz's default opt-level 3 with 1 codegen unit, which the
# long runs keep: FUZZ_FULL_BUILD=1).
if [[ -z "${FUZZ_FULL_BUILD:-}" ]]; then
  export CARGO_PROFILE_RELEASE_OPT_LEVEL=1
  cargo fuzz build -s none --release --codegen-units 16
else
  cargo fuzz build -s none --release
fi
echo "fuzz-smoke: built the targets in $(( $(date +%s) - start )) s"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
jobs="${FUZZ_JOBS:-$(nproc)}"
if [[ -n "${FUZZ_LOGS:-}" ]]; then
  logs="$FUZZ_LOGS"
  mkdir -p "$logs"
else
  logs="$(mktemp -d)"
  trap 'rm -rf "$logs"' EXIT
fi
run_one() {
  local t="$1" corpus="$logs/corpus-$1"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  local t0
  t0=$(date +%s)
  # The first directory receives new inputs; the committed seeds stay as they are.
  if fuzz/target/x86_64-unknown-linux-gnu/release/"$t" "$corpus" "fuzz/seeds/$t" \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" >"$logs/$t.log" 2>&1; then
    echo "fuzz-smoke: $t ok: $(grep -E '^stat::number_of_executed_units' "$logs/$t.log" | awk '{print $2}') runs in $(( $(date +%s) - t0 )) s, $(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$logs/$t.log" | tail -1), peak RSS $(grep -E '^stat::peak_rss_mb' "$logs/$t.log" | awk '{print $2}') MB"
  else
    echo "fuzz-smoke: $t FAILED" >&2
    tail -40 "$logs/$t.log" >&2
    return 1
  fi
}
status=0
pids=()
for t in $targets; do
  run_one "$t" &
  pids+=($!)
  if (( ${#pids[@]} >= jobs )); then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "fuzz-smoke: $(echo $targets | wc -w) targets, $(( $(date +%s) - start )) s in all"
exit "$status"
