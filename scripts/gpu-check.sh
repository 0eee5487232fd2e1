#!/usr/bin/env bash
# GPU check: every CUDA test (NVRTC compile of each kernel, CPU↔CUDA parity of each kernel chain
# and of the whole physics pipeline, frames in flight) and the 720p/1080p physics benchmark,
# from PREBUILT x86-64 release binaries — the GPU machines have no Rust toolchain and no
# GStreamer.
#
#   scripts/gpu-check.sh prepare   # on the development machine: builds the binaries (no
#                                  # GStreamer: --no-default-features --features cli,cuda),
#                                  # strips them, copies them to target/gpu-check/
#   scripts/gpu-check.sh [run]     # on the GPU machine (carry target/gpu-check): runs them all;
#                                  # the benchmark table is printed LAST. Exit status non-zero
#                                  # if any test failed. Takes ~1–3 minutes.
#
# Tests that would skip without a GPU fail here instead (DERAIN_REQUIRE_GPU=1,
# DERAIN_REQUIRE_NVRTC=1). NVRTC comes from the machine's CUDA toolkit (/usr/local/cuda/lib64
# is added to LD_LIBRARY_PATH when present) or from $DERAIN_NVRTC_DIR.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
out=target/gpu-check
features=(--no-default-features --features cli,cuda)

prepare() {
  set -e
  echo "building the derain CLI and the CUDA test binaries (${features[*]})"
  cargo build --release "${features[@]}" --bin derain
  json=$(cargo test --release "${features[@]}" --no-run --message-format=json \
           --lib --test cuda_parity --test cuda_nvrtc 2>/dev/null)
  rm -rf "$out" && mkdir -p "$out"
  cp target/release/derain "$out/derain"
  for name in cuda_parity cuda_nvrtc derain; do
    exe=$(printf '%s\n' "$json" | grep '"executable":"[^"]*/'"$name"'-[0-9a-f]*"' \
            | grep '"test":true' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
    [ -n "$exe" ] || { echo "no test binary for $name" >&2; exit 1; }
    target_name=$name; [ "$name" = derain ] && target_name=lib_tests
    cp "$exe" "$out/$target_name"
  done
  strip --strip-debug "$out"/* 2>/dev/null || true
  cp "$0" "$out/gpu-check.sh"
  ls -la "$out"
  du -sh "$out"
  echo "carry: $out   command: bash scripts/gpu-check.sh run"
}

run() {
  # The binaries may be run from the carried folder itself.
  local dir="$out"
  [ -x "$dir/cuda_parity" ] || dir="$here"   # run as target/gpu-check/gpu-check.sh
  [ -x "$dir/cuda_parity" ] || { echo "no prebuilt binaries: run 'scripts/gpu-check.sh prepare' first" >&2; exit 2; }
  export DERAIN_REQUIRE_GPU=1 DERAIN_REQUIRE_NVRTC=1 RUST_BACKTRACE=1
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  local failed=0 log
  log=$(mktemp)
  for t in cuda_nvrtc cuda_parity; do
    echo "=== $t"
    timeout 300 "$dir/$t" --nocapture 2>&1 | tee -a "$log" | grep -v '^$' || failed=1
  done
  echo "=== lib_tests engine::"
  timeout 120 "$dir/lib_tests" engine:: 2>&1 | tee -a "$log" | grep -E '^test |test result' || failed=1
  grep -q 'test result: FAILED\|panicked' "$log" && failed=1
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1) } }
       END { printf "gpu-check tests: %d passed, %d failed\n", p, f }' "$log"
  rm -f "$log"
  echo "=== derain bench --backend cuda (720p, 1080p)"
  timeout 300 "$dir/derain" bench --backend cuda --reps 15 || failed=1
  exit $failed
}

case "${1:-run}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 [prepare|run]" >&2; exit 2 ;;
esac
