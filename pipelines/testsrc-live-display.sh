#!/bin/sh
# Live test source -> derain -> display: the quickest check that the element is installed
# (GST_PLUGIN_PATH) and keeps up; with a live source, frames derain cannot finish in time are
# dropped by QoS and counted in the sink's QoS messages (gst-launch-1.0 -v shows them).
# Usage:  sh pipelines/testsrc-live-display.sh        (NUM_BUFFERS=100 to stop by itself)
exec gst-launch-1.0 videotestsrc is-live=true num-buffers="${NUM_BUFFERS:--1}" ! video/x-raw,width=640,height=360,framerate=25/1 ! videoconvert ! derain ! videoconvert ! ${SINK:-autovideosink}
