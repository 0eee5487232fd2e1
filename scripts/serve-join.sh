#!/usr/bin/env bash
# Late joiners of a watched `derain serve` stream: a 5 fps demo camera (key frame every 30
# frames, 6 s) watched by one client; four more clients each record 3 s in turn, and each
# recording is decoded to PNGs. Look at frame 000 of each: a clean picture means the joiner got
# a key frame at once (the encoder is asked for one on PLAY); grey blocks mean it waited.
#   scripts/serve-join.sh [DERAIN_BINARY] [PORT]   → /tmp/kf-PORT/f{1..4}/*.png
set -uo pipefail
B=${1:-target/release/derain}; P=${2:-18702}; d=/tmp/kf-$P; rm -rf "$d"; mkdir -p "$d"
$B serve --passthrough --camera c=demo:320x240@5 --port $P --stats-interval 0 --duration 40 >/dev/null 2>&1 & S=$!
sleep 2
timeout -s INT 30 gst-launch-1.0 -q -e rtspsrc location=rtsp://127.0.0.1:$P/c latency=100 ! fakesink >/dev/null 2>&1 & A=$!
for i in 1 2 3 4; do
  sleep 3.3
  timeout -s INT 3 gst-launch-1.0 -q -e rtspsrc location=rtsp://127.0.0.1:$P/c latency=100 ! rtph264depay ! h264parse ! matroskamux ! filesink location=$d/b$i.mkv >/dev/null 2>&1
  printf "%s " "$(gst-discoverer-1.0 $d/b$i.mkv 2>/dev/null | grep -m1 Duration | awk '{print $2}')"
done; echo
kill $S $A 2>/dev/null; wait 2>/dev/null
for i in 1 2 3 4; do rm -rf $d/f$i; mkdir $d/f$i; gst-launch-1.0 -q filesrc location=$d/b$i.mkv ! matroskademux ! h264parse ! avdec_h264 ! videoconvert ! pngenc ! multifilesink location=$d/f$i/%03d.png >/dev/null 2>&1; printf "%s " $(ls $d/f$i | wc -l); done; echo
