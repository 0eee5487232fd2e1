#!/usr/bin/env bash
# Soak test: four long runs side by side, RSS sampled every 10 s, frame rates and drops.
#   scripts/soak.sh [SECONDS=1800] [OUT=target/soak]
# - element, physics: videotestsrc (live, 640x360 @ 15 fps) ! derain mode=physics ! fpsdisplaysink
# - element, full:    videotestsrc (live, 320x240 @ 5 fps)  ! derain mode=full    ! fpsdisplaysink
# - derain video, physics and full: a live MPEG-TS stream over UDP on 127.0.0.1 (a camera
#   stand-in, 640x360 @ 15 fps and 320x240 @ 5 fps) → --duration SECONDS → MKV
# Writes OUT/rss.csv (t, process, RSS KiB), OUT/*.log and OUT/summary.txt: first and last RSS
# after a 2-minute warm-up, and the frames rendered/dropped. Needs a release build
# (cargo build --release --workspace) and gst-launch-1.0 (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1800}
out=${2:-target/soak}
mkdir -p "$out"
rm -f "$out"/*.log "$out"/rss.csv "$out"/*.mkv
export GST_PLUGIN_PATH=$PWD/target/release RUST_LOG=warn
bin=target/release/derain
[ -x "$bin" ] && [ -e target/release/libgstderain.so ] || {
  echo "soak: build first: cargo build --release --workspace" >&2; exit 1; }

pids=()
names=()
start() { # name, command...
  local name=$1; shift
  "$@" >"$out/$name.log" 2>&1 &
  pids+=($!); names+=("$name")
}
element() { # name, mode, width, height, fps
  start "$1" timeout --signal=INT "$((secs + 5))" gst-launch-1.0 -e -v \
    videotestsrc is-live=true pattern=ball num-buffers=$((secs * $5)) \
    ! "video/x-raw,format=RGBA,width=$3,height=$4,framerate=$5/1" \
    ! derain mode="$2" backend=cpu \
    ! fpsdisplaysink text-overlay=false video-sink=fakesink sync=true fps-update-interval=10000
}
camera() { # name, port, width, height, fps (the sender, ended after the run)
  start "$1" gst-launch-1.0 -q videotestsrc is-live=true pattern=ball \
    ! "video/x-raw,width=$3,height=$4,framerate=$5/1" \
    ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=$5 \
    ! mpegtsmux ! udpsink host=127.0.0.1 port="$2" sync=true
}
element element-physics physics 640 360 15
element element-full full 320 240 5
camera camera-physics 5611 640 360 15
camera camera-full 5612 320 240 5
sleep 2
start video-physics "$bin" video udp://127.0.0.1:5611 -o "$out/physics.mkv" --duration "$secs" --backend cpu
start video-full "$bin" video udp://127.0.0.1:5612 -o "$out/full.mkv" --duration "$secs" --backend cpu --mode full

echo "t_s,process,rss_kib" >"$out/rss.csv"
t0=$(date +%s)
while :; do
  now=$(( $(date +%s) - t0 ))
  alive=0
  for i in "${!pids[@]}"; do
    [[ ${names[$i]} == camera-* ]] && continue
    pid=${pids[$i]}
    # The elements run under `timeout`: measure its child, gst-launch-1.0.
    child=$(pgrep -P "$pid" | head -1 || true)
    [ -n "$child" ] && pid=$child
    if rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$rss" ]; then
      echo "$now,${names[$i]},$rss" >>"$out/rss.csv"
      alive=1
    fi
  done
  [ $alive = 1 ] || break
  sleep 10
done
for i in "${!pids[@]}"; do
  [[ ${names[$i]} == camera-* ]] && kill "${pids[$i]}" 2>/dev/null || true
done
wait || true

{
  echo "soak of ${secs} s, $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  for n in element-physics element-full video-physics video-full; do
    awk -F, -v n="$n" '$2 == n && $1 >= 120 { if (!f) f = $3; l = $3; if ($3 > m) m = $3 }
      END { if (f) printf "%-16s RSS after warm-up %d KiB, last %d KiB (%+.2f %%), peak %d KiB\n", n, f, l, 100 * (l - f) / f, m }' "$out/rss.csv"
  done
  for n in element-physics element-full; do
    echo "$n: $(grep -o 'rendered: [0-9]*, dropped: [0-9]*, current: [0-9.]*, average: [0-9.]*' "$out/$n.log" | tail -1)"
  done
  for n in video-physics video-full; do
    echo "$n: $(grep -E 'frames in|error|stopped' "$out/$n.log" | tail -1)"
  done
} | tee "$out/summary.txt"
