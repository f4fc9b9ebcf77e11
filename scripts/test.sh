#!/usr/bin/env bash
# The test command (README): installs the independent judges the tests call (PyPI `gguf`
# = llama.cpp's gguf-py, `safetensors`, `tokenizers`, `numpy`, `ml_dtypes` for bf16,
# `transformers` for configs and tokenizers; no torch: what needs torch is committed by the
# fixture generators), fetches the real model, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r scripts/judges-requirements.txt
scripts/fetch-models.sh >/dev/null
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The test profile is optimized (Cargo.toml): the real model is too slow in a debug build.
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line over all test binaries (cargo prints one per binary, doc-tests last).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
