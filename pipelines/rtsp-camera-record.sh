#!/bin/sh
# RTSP camera -> derain -> H.264 in Matroska: a recording rig. MKV stays playable if the recording
# is cut short; -e turns Ctrl-C into EOS so the file is finalised cleanly.
# Needs a camera:  RTSP_URL=rtsp://camera/stream OUT=derained.mkv sh pipelines/rtsp-camera-record.sh
exec gst-launch-1.0 -e rtspsrc location="${RTSP_URL:?set RTSP_URL=rtsp://...}" latency=200 ! decodebin ! videoconvert ! derain ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=veryfast ! h264parse ! matroskamux ! filesink location="${OUT:-derained.mkv}"
