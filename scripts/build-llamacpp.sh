#!/usr/bin/env bash
# Builds llama.cpp's perplexity / quantize / imatrix tools — the peer the benchmarks compare
# with — from the copy vendored in the PyPI sdist of llama-cpp-python 0.3.36 (llama.cpp
# 0c1e570), in one of two configurations:
#   native  GGML_NATIVE=ON: every instruction this CPU has (AVX-512 VNNI here)
#   avx2    GGML_NATIVE=OFF, AVX2 + FMA + F16C: the portable x86-64 build most packages ship
# Prints the directory holding the binaries (and their shared libraries: set LD_LIBRARY_PATH
# to it when running them).
#
# usage: scripts/build-llamacpp.sh native|avx2 [BUILD_DIR]
# env:   LLAMA_CPP_SRC  a llama.cpp source tree (default: the sdist, fetched once with pip into
#                       .cache/llamacpp; needs network and `pip install scikit-build-core`)
#        JOBS           parallel compile jobs (default: nproc)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
config="${1:?usage: build-llamacpp.sh native|avx2 [BUILD_DIR]}"
case "$config" in
  native) flags=(-DGGML_NATIVE=ON) ;;
  avx2) flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON) ;;
  *) echo "unknown configuration '$config' (native or avx2)" >&2; exit 2 ;;
esac
cache="$root/.cache/llamacpp"
build="${2:-$cache/build-$config}"
src="${LLAMA_CPP_SRC:-}"
if [[ -z "$src" ]]; then
  src="$cache/llama_cpp_python-0.3.36/vendor/llama.cpp"
  if [[ ! -f "$src/CMakeLists.txt" ]]; then
    mkdir -p "$cache"
    python3 -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
      llama-cpp-python==0.3.36 -d "$cache" >&2
    tar -xzf "$cache/llama_cpp_python-0.3.36.tar.gz" -C "$cache"
  fi
fi
[[ -f "$src/CMakeLists.txt" ]] || { echo "no llama.cpp sources in $src" >&2; exit 1; }
mkdir -p "$(dirname "$build")"
command -v cmake >/dev/null || { echo "needs cmake" >&2; exit 1; }
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_SERVER=OFF "${flags[@]}" >"$build.configure.log" 2>&1 \
  || { tail -n 30 "$build.configure.log" >&2; exit 1; }
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target llama-perplexity llama-quantize llama-imatrix \
  >"$build.build.log" 2>&1 || { tail -n 30 "$build.build.log" >&2; exit 1; }
echo "$build/bin"
