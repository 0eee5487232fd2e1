#!/bin/sh
# Dashcam recording -> derain -> H.264 MP4, as fast as the CPU allows (not live: no frame is
# dropped). I420 before x264enc keeps the file playable everywhere (4:2:0, not High 4:4:4).
# Usage:  IN=rainy-dashcam.mp4 OUT=derained.mp4 sh pipelines/dashcam-file-to-file.sh
exec gst-launch-1.0 filesrc location="${IN:?set IN=input video file}" ! decodebin ! videoconvert ! derain ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=faster ! h264parse ! mp4mux ! filesink location="${OUT:-derained.mp4}"
