#!/usr/bin/env bash
# GPU check: every CUDA test (NVRTC compile of each kernel, CPU↔CUDA parity of each kernel chain
# and of the whole physics pipeline, frames in flight, the frame scheduler over several CUDA
# engines against a serial run, the streak network and `full` mode on the device against the
# CPU) and the 720p/1080p physics benchmark with the streak networks' times, then `full` at 1080p,
# from PREBUILT x86-64 release binaries — the GPU machines have no Rust toolchain and no
# GStreamer.
#
#   scripts/gpu-check.sh prepare   # on the development machine: builds the binaries (no
#                                  # GStreamer: --no-default-features --features cli,cuda),
#                                  # strips them, packs them into target/gpu-check/bin.tar.xz
#   scripts/gpu-check.sh [run] [LOGDIR]
#                                  # on the GPU machine (carry target/gpu-check): runs them all
#                                  # under one global timeout (GPU_CHECK_TIMEOUT, 540 s), then
#                                  # compute-sanitizer memcheck and racecheck over the parity
#                                  # tests (small sizes) where the machine has it; everything
#                                  # is also written into LOGDIR (default $OUT when set, else
#                                  # target/gpu-check/logs): stamp.txt, tests.log, bench.txt,
#                                  # bench.json, bench_torch.jsonl (the PyTorch floor),
#                                  # sanitizer.log. Exit status non-zero if any
#                                  # test failed or the sanitizer reported an error.
#   scripts/gpu-check.sh tests     # the tests alone (they may share the machine with other work)
#   scripts/gpu-check.sh bench     # the benchmark alone (give it the machine to itself)
#   scripts/gpu-check.sh unpack    # unpack the binaries (target/gpu-check/bin/) and print where
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
           --lib --test cuda_parity --test cuda_nvrtc --test scheduler 2>/dev/null)
  rm -rf "$out" && mkdir -p "$out/bin"
  cp target/release/derain "$out/bin/derain"
  for name in cuda_parity cuda_nvrtc scheduler derain; do
    exe=$(printf '%s\n' "$json" | grep '"executable":"[^"]*/'"$name"'-[0-9a-f]*"' \
            | grep '"test":true' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
    [ -n "$exe" ] || { echo "no test binary for $name" >&2; exit 1; }
    target_name=$name; [ "$name" = derain ] && target_name=lib_tests
    cp "$exe" "$out/bin/$target_name"
  done
  # Stripped and xz-packed: ≈13 MB instead of ≈145 MB, so it fits a lease's 64 MiB carry
  # (with room for training images).
  strip --strip-all "$out"/bin/*
  tar cf - -C "$out/bin" . | xz -9 -T0 > "$out/bin.tar.xz"
  rm -rf "$out/bin"
  cp "$0" "$out/gpu-check.sh"
  # The commit the binaries were built from, and whether the tree had uncommitted changes.
  { echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "uncommitted changes: $(git status --porcelain 2>/dev/null | grep -vc '^??')"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"; } > "$out/stamp.txt"
  cat "$out/stamp.txt"
  ls -la "$out"
  echo "carry: $out   command: bash scripts/gpu-check.sh run"
}

setup() {
  # The packed binaries may be run from the carried folder itself (target/gpu-check/gpu-check.sh).
  local pack="$out/bin.tar.xz"
  [ -f "$pack" ] || pack="$here/bin.tar.xz"
  [ -f "$pack" ] || { echo "no prebuilt binaries: run 'scripts/gpu-check.sh prepare' first" >&2; exit 2; }
  dir="$(dirname "$pack")/bin"
  if [ ! -x "$dir/cuda_parity" ]; then
    mkdir -p "$dir" && xz -dc "$pack" | tar xf - -C "$dir" || { echo "cannot unpack $pack" >&2; exit 2; }
  fi
  export DERAIN_REQUIRE_GPU=1 DERAIN_REQUIRE_NVRTC=1 RUST_BACKTRACE=1
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
}

gpu_idle() {
  # Timings are only worth keeping on a GPU nothing else uses: wait up to 30 s for it.
  command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: GPU use not checked"; return 0; }
  local i apps
  for i in $(seq 1 30); do
    apps=$(nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader 2>/dev/null)
    [ -z "$apps" ] && { echo "GPU idle: no other compute process"; return 0; }
    sleep 1
  done
  echo "WARNING: other processes use the GPU; the timings below are not clean:"; echo "$apps"
}

bench() {
  # The CPU engine on the same machine, all its cores, is the side-by-side baseline.
  local f=0
  gpu_idle
  echo "=== derain bench --backend cuda (720p, 1080p; then the frame scheduler, 2 engines, 4 in flight)"
  timeout 200 "$dir/derain" bench --backend cuda --reps 15 --engines 2 || f=1
  [ -n "${logs:-}" ] && { timeout 90 "$dir/derain" bench --backend cuda --sizes 1920x1080 --reps 5 --json \
                            > "$logs/bench.json" 2>/dev/null || f=1; }
  echo "=== derain bench --backend cpu (1080p; baseline, all cores)"
  timeout 120 "$dir/derain" bench --backend cpu --sizes 1920x1080 --reps 9 || f=1
  echo "=== derain bench --backend cuda --mode full (1080p; the frame and the networks on the GPU; 1 and 2 engines)"
  timeout 240 "$dir/derain" bench --backend cuda --mode full --sizes 1920x1080 --reps 5 --engines 2 || f=1
  echo "=== derain bench --backend cpu --mode full --model quality (1080p; baseline, all cores)"
  timeout 120 "$dir/derain" bench --backend cpu --mode full --model quality --sizes 1920x1080 --reps 3 || f=1
  # The floor for the streak network on the device: the same network in PyTorch (fp16, bf16,
  # fp32) in a CUDA graph at batch 1, 4, 16, 1920x1088 (the repository's training/ beside us).
  local tdir
  for tdir in "$here/../training" "$here/../../training"; do [ -d "$tdir/derain_train" ] && break; done
  if [ -d "$tdir/derain_train" ] && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    echo "=== PyTorch floor: python3 -m derain_train.bench_torch (streak networks, CUDA graph)"
    (cd "$tdir" && timeout 150 python3 -m derain_train.bench_torch --reps 20) \
      | tee "${logs:-/tmp}/bench_torch.jsonl" || f=1
  else
    echo "PyTorch floor not run: no training/derain_train beside the script or no CUDA PyTorch"
  fi
  return $f
}

tests() {
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  local failed=0 log
  log=$(mktemp)
  for t in cuda_nvrtc cuda_parity scheduler; do
    echo "=== $t"
    timeout 300 "$dir/$t" --nocapture 2>&1 | tee -a "$log" | grep -v '^$' || failed=1
  done
  echo "=== lib_tests engine::"
  timeout 120 "$dir/lib_tests" engine:: 2>&1 | tee -a "$log" | grep -E '^test |test result' || failed=1
  grep -q 'test result: FAILED\|panicked' "$log" && failed=1
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1) } }
       END { printf "gpu-check tests: %d passed, %d failed\n", p, f }' "$log"
  rm -f "$log"
  return $failed
}

sanitizer() {
  # memcheck and racecheck over the parity tests at their small sizes (DERAIN_PARITY_QUICK=1):
  # the sanitizer slows kernels down many times. Firecracker machines have it; on gVisor it
  # refuses the device, which is reported, not counted as a failure of ours.
  local cs f=0 tool st
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null | head -1)
  [ -n "$cs" ] || { echo "compute-sanitizer not found (PATH, /usr/local/cuda/bin): not run"; return 0; }
  for tool in memcheck racecheck; do
    echo "=== compute-sanitizer --tool $tool cuda_parity (quick sizes)"
    DERAIN_PARITY_QUICK=1 timeout 150 "$cs" --tool "$tool" --error-exitcode 3 \
      "$dir/cuda_parity" --test-threads 1 2>&1 | tail -n 25
    st=${PIPESTATUS[0]}
    case $st in
      0) echo "$tool: clean" ;;
      3) echo "$tool: ERRORS reported"; f=1 ;;
      124) echo "$tool: timed out (not counted)" ;;
      *) echo "$tool: the sanitizer could not run here, or a test failed under it (status $st; not counted)" ;;
    esac
  done
  return $f
}

run_all() {
  local t b z
  logs=${1:-${OUT:-$out/logs}}
  mkdir -p "$logs"
  { cat "$here/stamp.txt" 2>/dev/null || cat "$out/stamp.txt" 2>/dev/null || echo "no stamp.txt"
    echo "run $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"; } > "$logs/stamp.txt"
  cat "$logs/stamp.txt"
  tests 2>&1 | tee "$logs/tests.log"; t=${PIPESTATUS[0]}
  bench 2>&1 | tee "$logs/bench.txt"; b=${PIPESTATUS[0]}
  sanitizer 2>&1 | tee "$logs/sanitizer.log"; z=${PIPESTATUS[0]}
  echo "gpu-check: tests $t, bench $b, sanitizer $z (0 = fine); logs in $logs"
  return $((t | b | z))
}

case "${1:-run}" in
  prepare) prepare ;;
  run) # One global timeout around everything (the script runs itself under it).
       timeout "${GPU_CHECK_TIMEOUT:-540}" bash "$here/$(basename "$0")" run-inner "${2:-}"
       s=$?; [ $s = 124 ] && echo "gpu-check: the global timeout (${GPU_CHECK_TIMEOUT:-540} s) ended it"
       exit $s ;;
  run-inner) setup; run_all "${2:-}" ;;
  tests) setup; tests ;;
  bench) setup; bench ;;
  unpack) setup; echo "$dir" ;;
  *) echo "usage: $0 [prepare|run|tests|bench|unpack]" >&2; exit 2 ;;
esac
