#!/usr/bin/env bash
# GPU check: the GPU block-codec tests (byte-for-byte against the CPU reference, real-model
# tensors included) and the codec bandwidth benchmark, in one short run (< 5 min).
#
#   scripts/gpu-check.sh                        build here (cargo, --release) and run
#   scripts/gpu-check.sh --prepare DIR          build and copy into DIR what a machine without
#                                               Rust needs: gpu-tests, gpu_bench (stripped),
#                                               model.gguf (the test tensors of the real model)
#                                               and lib/ (the Vulkan loader and glvnd, used
#                                               only where the machine has no loader)
#   GPU_CHECK_BIN_DIR=DIR scripts/gpu-check.sh  run the executables prepared in DIR
#   DIR/gpu-check.sh                            the same (--prepare copies this script there)
#
# Environment: GPU_PEAK_GBPS (peak bandwidth for the % column; the benchmark defaults to 3000,
# an H100, on real GPUs), GPU_BENCH_ELEMENTS (default 256 Mi floats on GPUs, 4 Mi on CPU
# adapters), LLMTOOL_REQUIRE_GPU (default 1 here: no adapter is a failure, not a skip).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# The tensors the GPU tests read (kernels/tests/gpu.rs MODEL_TENSORS).
tensors=(blk.0.attn_k.weight blk.3.attn_q.weight blk.29.ffn_down.weight blk.0.attn_norm.weight)

# `ldconfig -p` (often outside a minimal PATH); empty output when there is none.
ldc() {
  local l
  for l in ldconfig /sbin/ldconfig /usr/sbin/ldconfig; do
    if command -v "$l" >/dev/null 2>&1; then "$l" -p 2>/dev/null || true; return 0; fi
  done
}

prepare() {
  local dir="$1"
  mkdir -p "$dir/lib"
  dir="$(cd "$dir" && pwd)"
  cd "$root"
  local exe
  exe="$(cargo test --release --locked -p llmtool-kernels --test gpu --no-run --message-format=json \
    | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)"
  [[ -x "$exe" ]] || { echo "gpu-check: could not build the gpu test executable" >&2; exit 1; }
  cargo build --release --locked -p llmtool-kernels --example gpu_bench >&2
  strip -o "$dir/gpu-tests" "$exe"
  strip -o "$dir/gpu_bench" target/release/examples/gpu_bench
  cp "$0" "$dir/gpu-check.sh"
  local lib
  lib="$(ldc | awk '/libvulkan.so.1 .*x86-64/ { print $NF; exit }')"
  if [[ -n "$lib" ]]; then cp -L "$lib" "$dir/lib/libvulkan.so.1"; fi
  # NVIDIA's Vulkan driver (libGLX_nvidia.so.0) links against glvnd; GPU images without a
  # desktop stack lack it ("Could not get 'vkCreateInstance'"), so carry it too.
  local glvnd
  for glvnd in libGLdispatch.so.0 libGLX.so.0 libEGL.so.1 libOpenGL.so.0; do
    lib="$(ldc | awk -v n="$glvnd" '$1 == n && /x86-64/ { print $NF; exit }')"
    if [[ -n "$lib" ]]; then cp -L "$lib" "$dir/lib/$glvnd"; fi
  done
  # A GGUF holding only the test tensors (the whole model is 98 MB).
  python3 - "$(scripts/fetch-models.sh)" "$dir/model.gguf" "${tensors[@]}" <<'PY'
import struct, sys
src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3:]
b = open(src, "rb").read()
at = 0
def take(n):
    global at
    s = b[at:at + n]; at += n; return s
u32 = lambda: struct.unpack("<I", take(4))[0]
u64 = lambda: struct.unpack("<Q", take(8))[0]
string = lambda: take(u64()).decode()
FIXED = {0: 1, 1: 1, 7: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 10: 8, 11: 8, 12: 8}
def skip(t):
    if t == 8: string()
    elif t == 9:
        et, n = u32(), u64()
        for _ in range(n): skip(et)
    else: take(FIXED[t])
assert take(4) == b"GGUF"
u32(); n_t, n_kv = u64(), u64()
align = 32
for _ in range(n_kv):
    k = string(); t = u32(); start = at; skip(t)
    if k == "general.alignment": align = struct.unpack("<I", b[start:start + 4])[0]
infos = []
for _ in range(n_t):
    name = string(); dims = [u64() for _ in range(u32())]; ty = u32(); infos.append((name, dims, ty, u64()))
base = (at + align - 1) // align * align
offs = sorted({o for *_, o in infos}) + [len(b) - base]
pick = [i for i in infos if i[0] in names]
assert len(pick) == len(names), f"found {[p[0] for p in pick]} of {names}"
head, data = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(pick), 0)), bytearray()
for name, dims, ty, off in pick:
    chunk = b[base + off: base + offs[offs.index(off) + 1]]
    nb = name.encode()
    head += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
    head += struct.pack("<IQ", ty, len(data))
    data += chunk + b"\0" * (-len(chunk) % 32)
head += b"\0" * (-len(head) % 32)
open(dst, "wb").write(head + data)
PY
  echo "gpu-check: prepared $dir:" >&2
  ls -l "$dir" "$dir/lib" >&2
}

if [[ "${1:-}" == "--prepare" ]]; then
  [[ $# -eq 2 ]] || { echo "usage: $0 --prepare DIR" >&2; exit 2; }
  prepare "$2"
  exit 0
fi

bin="${GPU_CHECK_BIN_DIR:-}"
if [[ -z "$bin" && -x "$here/gpu-tests" && -x "$here/gpu_bench" ]]; then
  bin="$here"
fi
if [[ -z "$bin" ]]; then
  bin="$root/target/gpu-check"
  prepare "$bin"
fi
bin="$(cd "$bin" && pwd)"

echo "== machine"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv,noheader || true
else
  echo "nvidia-smi: not present"
fi
# The Vulkan loader: the system's, else the one carried in $bin/lib.
if ! ldc | grep -q 'libvulkan.so.1 '; then
  echo "no system libvulkan.so.1: using $bin/lib"
  export LD_LIBRARY_PATH="$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# NVIDIA's Vulkan driver lives in libGLX_nvidia.so.0; containers often mount the library
# without its ICD manifest: write one if none is installed.
icd_dirs=(/usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d)
manifests="$(ls "${icd_dirs[@]}" 2>/dev/null | grep '\.json' | tr '\n' ' ' || true)"
echo "Vulkan ICD manifests: ${manifests:-none}"
if [[ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" && "$manifests" != *nvidia* ]]; then
  glx="$(ldc | awk '/libGLX_nvidia.so.0 .*x86-64/ { print $NF; exit }')"
  if [[ -n "$glx" ]]; then
    icd="$(mktemp -d)/nvidia_icd.json"
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$glx" >"$icd"
    export VK_ICD_FILENAMES="$icd"
    echo "wrote $icd for $glx"
  elif command -v nvidia-smi >/dev/null; then
    echo "warning: NVIDIA GPU but no NVIDIA Vulkan ICD (libGLX_nvidia.so.0) found" >&2
  fi
fi
if [[ -z "${XDG_RUNTIME_DIR:-}" ]]; then
  export XDG_RUNTIME_DIR="$(mktemp -d)"
fi
export LLMTOOL_REQUIRE_GPU="${LLMTOOL_REQUIRE_GPU:-1}"
export LLMTOOL_MODEL_PATH="${LLMTOOL_MODEL_PATH:-$bin/model.gguf}"

status=0
echo "== GPU codec tests (bit-exact vs CPU reference)"
start=$SECONDS
"$bin/gpu-tests" || status=$?
echo "tests: exit $status in $((SECONDS - start)) s"
echo "== GPU codec bandwidth"
start=$SECONDS
"$bin/gpu_bench" ${GPU_BENCH_ELEMENTS:-} || status=$?
echo "bench: done in $((SECONDS - start)) s"
exit "$status"
