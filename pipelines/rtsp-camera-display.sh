#!/bin/sh
# RTSP camera -> derain -> display: the live-monitoring use. rtspsrc's 200 ms jitter buffer is the
# pipeline latency derain works within; when a frame cannot be done in time, QoS drops it
# (derain qos=true, the default) so the picture stays live instead of falling behind.
# Needs a camera:  RTSP_URL=rtsp://user:pass@camera/stream sh pipelines/rtsp-camera-display.sh
exec gst-launch-1.0 rtspsrc location="${RTSP_URL:?set RTSP_URL=rtsp://...}" latency=200 ! decodebin ! videoconvert ! derain ! videoconvert ! ${SINK:-autovideosink}
