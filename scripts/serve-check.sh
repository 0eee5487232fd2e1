#!/usr/bin/env bash
# `derain serve` with 4 local RTSP cameras for a while (default 120 s) while one camera is
# killed and restarted; every served stream (and the mosaic) is recorded from start to end
# and checked with gst-discoverer. What issue 20 asks to show; the CI test (tests/serve.rs)
# is a shorter version of it.
#
#   scripts/serve-check.sh [OUT_DIR] [SECONDS] [WxH@FPS]
# Writes OUT_DIR/{cam0..3,mosaic}.mkv, stats.json (final), stats-*.json (snapshots), *.log and
# frames/*.png (one frame of each recording every 5 s).
set -euo pipefail
out=${1:-target/serve-check}
secs=${2:-120}
spec=${3:-640x360@15}
bin=${DERAIN:-target/release/derain}
[ -x "$bin" ] || cargo build --release
rm -rf "$out"; mkdir -p "$out/frames"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

url_of() { # file, count, index: waits for `count` printed URLs, prints the index-th
  for _ in $(seq 150); do
    [ "$(grep -c '^serving .* -> rtsp://' "$1" 2>/dev/null || true)" -ge "$2" ] && break; sleep 0.2
  done
  awk -F' -> ' '/^serving /{print $2}' "$1" | sed -n "$3p"
}

"$bin" serve --passthrough --port 0 --stats-interval 0 --camera a=demo:$spec --camera b=demo:$spec \
  --camera c=demo:$spec >"$out/cams.log" 2>&1 & pids+=($!)
"$bin" serve --passthrough --port 0 --stats-interval 0 --camera d=demo:$spec >"$out/flaky.log" 2>&1 &
flaky=$!
cams=(); for i in 1 2 3; do cams+=("$(url_of "$out/cams.log" 3 $i)"); done
cams+=("$(url_of "$out/flaky.log" 1 1)")
flaky_port=$(echo "${cams[3]}" | sed -E 's#rtsp://[^:]+:([0-9]+)/.*#\1#')
echo "cameras: ${cams[*]}"

args=(); for i in 0 1 2 3; do args+=(--camera "cam$i=${cams[$i]}"); done
"$bin" serve "${args[@]}" --backend cpu --port 0 --stats-file "$out/stats.json" --stats-interval 10 \
  --mosaic --mosaic-size 1280x720 --duration $((secs + 20)) >"$out/serve.log" 2>&1 & server=$!; pids+=($server)
served=(); for i in 1 2 3 4 5; do served+=("$(url_of "$out/serve.log" 5 $i)"); done
echo "served: ${served[*]}"
names=(cam0 cam1 cam2 cam3 mosaic)
recs=()
for i in 0 1 2 3 4; do
  timeout -s INT "$secs" gst-launch-1.0 -q -e rtspsrc location="${served[$i]}" latency=200 \
    ! rtph264depay ! h264parse ! matroskamux ! filesink location="$out/${names[$i]}.mkv" \
    >"$out/rec-${names[$i]}.log" 2>&1 & recs+=($!)
done
t0=$(date +%s)
sleep $((secs / 3)); cp "$out/stats.json" "$out/stats-before.json"
echo "$(date +%T) killing cam3 (pid $flaky)"; kill -9 "$flaky"
sleep $((secs / 6)); cp "$out/stats.json" "$out/stats-away.json"
echo "$(date +%T) restarting cam3 on port $flaky_port"
"$bin" serve --passthrough --port "$flaky_port" --stats-interval 0 --camera d=demo:$spec \
  >"$out/flaky2.log" 2>&1 & pids+=($!)
for r in "${recs[@]}"; do wait "$r" || true; done
cp "$out/stats.json" "$out/stats-end.json"
kill -TERM "$server"; wait "$server" && echo "serve: exit 0 after SIGTERM" || echo "serve: exit $?"
echo "elapsed $(( $(date +%s) - t0 )) s"
for n in "${names[@]}"; do
  echo "== $n.mkv"; gst-discoverer-1.0 "$out/$n.mkv" | grep -E "Duration|Width|Height|video #"
  gst-launch-1.0 -q filesrc location="$out/$n.mkv" ! matroskademux ! h264parse ! avdec_h264 \
    ! videoconvert ! videorate ! video/x-raw,framerate=1/5 ! pngenc ! multifilesink \
    location="$out/frames/$n-%03d.png" >/dev/null 2>&1 || true
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for tag in ["before", "away", "end"]:
    s = json.load(open(f"{out}/stats-{tag}.json"))
    print(tag, " | ".join(f"{x['name']} {x['state']} out={x['frames_out']} in={x['input_fps']}fps "
                          f"drops={x['drops']} back={x['reconnects']}" for x in s["streams"]))
PY
