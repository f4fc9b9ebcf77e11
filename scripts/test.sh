#!/usr/bin/env bash
# The test command (README): installs the independent judges the tests call (PyPI `gguf`
# = llama.cpp's gguf-py, `safetensors`, `tokenizers`, `numpy`, `ml_dtypes` for bf16,
# `transformers` for configs and tokenizers, `ray` for the Ray driver test of merge --evolve;
# no torch: what needs torch is committed by the fixture generators), fetches the real model,
# and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r scripts/judges-requirements.txt
# The Ollama export tests render the Modelfile's TEMPLATE with Go's own text/template
# (tests/ollama/render.go): Debian's golang-go when no `go` is on the PATH (about 30 s).
if ! command -v go >/dev/null; then
  sudo=""
  if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null; then sudo="sudo"; fi
  if command -v apt-get >/dev/null; then
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq golang-go >/dev/null
  fi
  command -v go >/dev/null || { echo "test.sh: the Ollama export tests need Go (install golang-go)" >&2; exit 1; }
fi
scripts/fetch-models.sh >/dev/null
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The test profile is optimized (Cargo.toml): the real model is too slow in a debug build.
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line over all test binaries (cargo prints one per binary, doc-tests last).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
# Fuzz smoke (SECURITY.md): every cargo-fuzz target 30 s from its committed seeds.
bash scripts/fuzz-smoke.sh || status=$?
exit "$status"
