#!/usr/bin/env bash
# The derain element on the GPU machine, which has no GStreamer: packs gst-launch-1.0, the
# plugin scanner, the core and base plugins the throughput test needs (fakesink,
# videotestsrc, capsfilter), the derain plugin (stripped) and every shared library they load
# except the C library itself, from this (Debian 12) machine, into one folder to carry.
#
#   scripts/gpu-gst-pack.sh pack            # here: builds the plugin, fills target/gpu-gst
#   bash target/gpu-gst/run.sh [OUT_DIR]    # there (carry target/gpu-gst): element throughput
#                                           # on CUDA at in-flight 1, 2, 3, 4 at 1080p and 720p
#                                           # beside `derain bench --backend cuda` (from the
#                                           # gpu-check pack when carried too), logged to OUT_DIR
#   BACKEND=cpu bash target/gpu-gst/run.sh  # the same on the CPU (how it is checked here)
#
# Issue 18: the element with CUDA must reach >= 90 % of the engine's throughput.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/gpu-gst

pack() {
  cargo build --release -p gst-plugin-derain
  rm -rf "$out" && mkdir -p "$out/lib" "$out/plugins" "$out/bin"
  local multi=/usr/lib/x86_64-linux-gnu
  cp "$(command -v gst-launch-1.0)" "$out/bin/"
  cp "$multi/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner" "$out/bin/"
  cp "$multi/gstreamer-1.0/libgstcoreelements.so" "$multi/gstreamer-1.0/libgstvideotestsrc.so" \
     "$out/plugins/"
  strip --strip-all -o "$out/plugins/libgstderain.so" target/release/libgstderain.so
  # Every library the binaries and plugins load, but glibc's own (the GPU machine's is used).
  for f in "$out"/bin/* "$out"/plugins/*.so; do
    ldd "$f" | awk '/=> \// { print $3 }'
  done | sort -u | grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$out/lib/"; done
  cp scripts/gst-throughput.sh "$out/"
  cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Element throughput with the carried GStreamer (see scripts/gpu-gst-pack.sh).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log="${1:-${OUT:-$here/out}}"; mkdir -p "$log"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$here/bin:$PATH"
export GST_PLUGIN_SYSTEM_PATH="$here/plugins" GST_PLUGIN_PATH="$here/plugins"
export GST_PLUGIN_SCANNER="$here/bin/gst-plugin-scanner" GST_REGISTRY="$log/registry.bin"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done
backend=${BACKEND:-cuda}
command -v nvidia-smi >/dev/null && nvidia-smi --query-compute-apps=pid,name --format=csv,noheader \
  | tee "$log/gpu-processes.txt"
gst-launch-1.0 --version | tee "$log/gst-version.txt"
for k in 1 2 3 4; do
  echo "=== element, backend=$backend, in-flight=$k"
  SKIP_BUILD=1 FRAMES=${FRAMES:-600} BASE_FRAMES=600 MODE=physics BACKEND="$backend" IN_FLIGHT=$k \
    GST_PLUGIN_PATH="$here/plugins" timeout 150 bash "$here/gst-throughput.sh" 2>&1 | tee -a "$log/element.txt"
done
# The engine alone, side by side (the gpu-check pack's derain, when it was carried and unpacked).
for d in "$here/../gpu-check/bin" "$here/../bin"; do
  if [ -x "$d/derain" ]; then
    echo "=== derain bench --backend $backend --engines 2"
    timeout 200 "$d/derain" bench --backend "$backend" --reps 15 --engines 2 2>&1 | tee "$log/bench.txt"
    break
  fi
done
RUN
  chmod +x "$out/run.sh"
  du -sh "$out"; ls "$out/lib" | wc -l
}

case "${1:-pack}" in
  pack) pack ;;
  *) echo "usage: $0 pack" >&2; exit 2 ;;
esac
