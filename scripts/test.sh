#!/usr/bin/env bash
# The test command (README): installs the independent judges the tests call (PyPI `gguf`
# = llama.cpp's gguf-py, `safetensors`, `tokenizers`, `numpy`, `transformers` for config
# loading), fetches the real model, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r scripts/judges-requirements.txt
scripts/fetch-models.sh >/dev/null
# The test profile is optimized (Cargo.toml): the real model is too slow in a debug build.
cargo test --workspace --locked "$@"
