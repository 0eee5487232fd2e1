#!/bin/sh
# Side-by-side tile for a monitoring wall: the camera (or file) as it is on the left, derained on
# the right, composed at 1280x360. tee + queues give each branch its own thread; the compositor
# matches frames by timestamp. URI may be rtsp://... or file:///...
# Usage:  URI=rtsp://camera/stream sh pipelines/monitoring-wall-side-by-side.sh
exec gst-launch-1.0 compositor name=wall sink_1::xpos=640 ! videoconvert ! ${SINK:-autovideosink} uridecodebin uri="${URI:?set URI=rtsp://... or file:///...}" ! videoconvert ! videoscale ! video/x-raw,format=BGRx,width=640,height=360,pixel-aspect-ratio=1/1 ! tee name=t t. ! queue ! wall.sink_0 t. ! queue ! derain ! wall.sink_1
