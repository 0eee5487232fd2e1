#!/usr/bin/env bash
# Throughput of the derain element in GStreamer: at 720p and 1080p,
#   videotestsrc ! RGBA ! derain mode=physics backend=cpu ! fakesink
# against the same pipeline without derain (the buffer-movement floor), in frames per second.
# Time is gst-launch's own "Execution ended after" (PLAYING to EOS; start-up not counted).
#   scripts/gst-throughput.sh                 (FRAMES=60 BASE_FRAMES=600 by default)
#   MODE=physics BACKEND=cpu FRAMES=120 IN_FLIGHT=3 scripts/gst-throughput.sh
# Builds the plugin in release first (SKIP_BUILD=1 skips). Needs gstreamer1.0-tools and
# gstreamer1.0-plugins-base.
set -euo pipefail
cd "$(dirname "$0")/.."

FRAMES=${FRAMES:-60}
BASE_FRAMES=${BASE_FRAMES:-600}
MODE=${MODE:-physics}
BACKEND=${BACKEND:-cpu}
PATTERN=${PATTERN:-smpte}
IN_FLIGHT=${IN_FLIGHT:-1}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p gst-plugin-derain
fi
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

# fps FRAMES PIPELINE-TAIL... : runs videotestsrc num-buffers=FRAMES ! TAIL, prints frames/s.
fps() {
    local n=$1
    shift
    local out
    out=$(gst-launch-1.0 videotestsrc num-buffers="$n" pattern="$PATTERN" ! "$@" 2>&1) || {
        echo "$out" >&2
        return 1
    }
    # "Execution ended after 0:00:12.345678901"
    local t
    t=$(sed -n 's/.*Execution ended after \([0-9:.]*\).*/\1/p' <<<"$out" | tail -1)
    awk -v n="$n" -v t="$t" 'BEGIN {
        split(t, p, ":"); s = p[1] * 3600 + p[2] * 60 + p[3];
        printf "%.1f", n / s }'
}

echo "derain element throughput: mode=$MODE backend=$BACKEND in-flight=$IN_FLIGHT, videotestsrc pattern=$PATTERN, RGBA"
echo "host: $(nproc) CPUs, $(gst-launch-1.0 --version | sed -n 2p)"
printf '%-6s %14s %14s %10s\n' size "without fps" "with fps" "ms/frame"
for size in 1280x720 1920x1080; do
    w=${size%x*}
    h=${size#*x}
    caps="video/x-raw,format=RGBA,width=$w,height=$h,framerate=30/1"
    base=$(fps "$BASE_FRAMES" "$caps" ! fakesink)
    with=$(fps "$FRAMES" "$caps" ! derain mode="$MODE" backend="$BACKEND" in-flight="$IN_FLIGHT" ! fakesink)
    printf '%-6s %14s %14s %10.1f\n' "${h}p" "$base" "$with" "$(awk -v f="$with" 'BEGIN { print 1000 / f }')"
done
