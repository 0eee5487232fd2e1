#!/usr/bin/env bash
# Runs every example in pipelines/ that needs no camera, on input generated here, with fakesink
# in place of the display. Exits non-zero if any of them fails.
#   scripts/run-pipelines.sh            (builds the plugin in release first; SKIP_BUILD=1 skips)
# Needs: gstreamer1.0-tools, gstreamer1.0-plugins-{base,good,bad,ugly} (x264enc is in -ugly),
# gstreamer1.0-plugins-base-apps (gst-discoverer-1.0).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    # Every target of the workspace, so the dependencies get the features `cargo test
    # --workspace` gave them (dev-dependencies included) and that build is reused: building
    # the plugin alone (`-p`) or without the test targets rebuilt tract and gstreamer.
    cargo build --release --workspace --all-targets
fi
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
gst-inspect-1.0 derain >/dev/null || { echo "derain element not found in $GST_PLUGIN_PATH" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A 2-second 320x240 H.264 MP4 to stand in for a dashcam recording.
gst-launch-1.0 -q videotestsrc num-buffers=50 pattern=ball ! \
    video/x-raw,width=320,height=240,framerate=25/1 ! videoconvert ! video/x-raw,format=I420 ! \
    x264enc speed-preset=ultrafast ! h264parse ! mp4mux ! filesink location="$tmp/in.mp4"

failed=()
run() { # run NAME VAR=VALUE...
    local name=$1
    shift
    echo "== pipelines/$name ($*)"
    local t0=$SECONDS
    if env "$@" timeout 300 sh "pipelines/$name" >"$tmp/log" 2>&1; then
        echo "   ok ($((SECONDS - t0)) s)"
    else
        echo "   FAILED; its output:"
        sed 's/^/   | /' "$tmp/log"
        failed+=("$name")
    fi
}

# A synchronised sink that sends QoS, like a display does (fakesink does not by default).
run testsrc-live-display.sh NUM_BUFFERS=50 SINK="fakesink sync=true qos=true"
run dashcam-file-to-file.sh IN="$tmp/in.mp4" OUT="$tmp/out.mp4"
# The bus statistics: 3 s of live frames, a message every 500 ms, read back as lines.
run stats-monitor.sh NUM_BUFFERS=75 INTERVAL=500
if ! grep -q "^fps=.* processed=[0-9]* dropped=[0-9]* rain-level=" "$tmp/log"; then
    echo "   FAILED: no derain-stats lines; its output:"
    sed 's/^/   | /' "$tmp/log"
    failed+=("stats-monitor.sh (messages)")
else
    echo "   $(grep -c '^fps=' "$tmp/log") messages, last: $(grep '^fps=' "$tmp/log" | tail -1)"
fi
# The discoverer's output is captured before it is searched: `discoverer | grep -q` under
# pipefail fails now and then (grep quits at the first match, the discoverer's next write gets
# SIGPIPE; 2 runs in 100 here, and one CI run).
disc=$(gst-discoverer-1.0 "$tmp/out.mp4" 2>&1) || true
if ! grep -q "H.264" <<<"$disc"; then
    echo "   FAILED: $tmp/out.mp4 is not an H.264 file gst-discoverer-1.0 can read; it printed:"
    sed 's/^/   | /' <<<"$disc"
    failed+=("dashcam-file-to-file.sh (output)")
fi
run monitoring-wall-side-by-side.sh URI="file://$tmp/in.mp4" SINK=fakesink
# The RTSP examples need a camera; check at least that they parse and reach the network (a
# refused connection is the expected failure, a parse error or missing element is not).
for name in rtsp-camera-display.sh rtsp-camera-record.sh; do
    echo "== pipelines/$name (parse check only: no camera)"
    RTSP_URL=rtsp://127.0.0.1:9/none OUT="$tmp/rtsp.mkv" SINK=fakesink \
        timeout 60 sh "pipelines/$name" >"$tmp/log" 2>&1 || true
    if grep -qiE "erroneous pipeline|no element|could not link" "$tmp/log"; then
        echo "   FAILED; its output:"
        sed 's/^/   | /' "$tmp/log"
        failed+=("$name")
    else
        echo "   parses ($(grep -m1 -o 'Could not open resource[^.]*' "$tmp/log" || echo 'no error'))"
    fi
done

if ((${#failed[@]})); then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
echo "all pipelines ran"
