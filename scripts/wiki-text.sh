#!/usr/bin/env bash
# Prints the path of the perplexity text the scripts use, and says on stderr which one it is:
# $TEXT when set; else WikiText-2's test text from the shared data folder beside the clone
# (../shared/data/wiki.test.raw); else the same file shipped in the repository
# (data/wikitext-2-raw/wiki.test.raw, CC BY-SA 3.0, see LICENSE.md there).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -n "${TEXT:-}" ]]; then
  [[ -f "$TEXT" ]] || { echo "no text at TEXT=$TEXT" >&2; exit 1; }
  echo "text: $TEXT (\$TEXT)" >&2
  echo "$TEXT"
elif [[ -f "$root/../shared/data/wiki.test.raw" ]]; then
  p="$(cd "$root/../shared/data" && pwd)/wiki.test.raw"
  echo "text: WikiText-2 raw test, $p (shared data folder)" >&2
  echo "$p"
else
  p="$root/data/wikitext-2-raw/wiki.test.raw"
  echo "text: WikiText-2 raw test, $p (shipped with llmtool, CC BY-SA 3.0)" >&2
  echo "$p"
fi
