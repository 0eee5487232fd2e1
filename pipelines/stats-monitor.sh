#!/bin/sh
# Reads the element's `derain-stats` bus messages (posted every `stats-interval` ms) the way
# a monitoring system would: one line per message with fps, processed and dropped frames, the
# rain level and the mean veil transmission. gst-launch-1.0 -m prints every bus message; the
# derain ones are picked out and reduced to key=value lines.
# Usage:  sh pipelines/stats-monitor.sh      (NUM_BUFFERS=75 to stop by itself; INTERVAL ms)
gst-launch-1.0 -m videotestsrc is-live=true pattern=ball num-buffers="${NUM_BUFFERS:--1}" \
    ! video/x-raw,width=640,height=360,framerate=25/1 ! videoconvert \
    ! derain stats-interval="${INTERVAL:-1000}" ! videoconvert ! ${SINK:-fakesink sync=true} |
    sed -n 's/.*derain-stats, \(.*\);$/\1/p' |
    sed -e 's/(double)//g' -e 's/(guint64)//g' -e 's/(string)//g' |
    awk -F', ' '{
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "fps=%.1f processed=%s dropped=%s rain-level=%.2f mean-transmission=%.2f mode=%s backend=%s\n",
            v["fps"], v["processed"], v["dropped"], v["rain-level"], v["mean-transmission"], v["mode"], v["backend"]
        fflush()
    }'
