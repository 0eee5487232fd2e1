// SPDX-License-Identifier: MIT OR Apache-2.0
//! The element's properties: names, ranges, defaults and what each does.

use gst::glib;
use gst::prelude::*;

use super::*;

/// Every property of the element, in the order `gst-inspect-1.0` lists them.
pub(super) fn specs() -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecEnum::builder_with_default::<Mode>("mode", DEFAULT_MODE.into())
            .nick("Mode")
            .blurb(
                "Method: physics (training-free priors) or full (the streak, veil and \
                 refinement networks of `model`, on the CPU or, with backend=cuda, the GPU). \
                 Read at READY→PAUSED",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default::<Backend>("backend", DEFAULT_BACKEND.into())
            .nick("Backend")
            .blurb(
                "Engine: auto (CUDA if a driver and device are present, else CPU), cpu or \
             cuda (an error if unavailable). Read at READY→PAUSED",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("device")
            .nick("GPU device(s)")
            .blurb(
                "GPU index, or a comma-separated list to spread the work (\"0\", \
                 \"0,1\"); empty = device 0; ignored by the CPU engine. Read at \
                 READY→PAUSED",
            )
            .default_value(Some(DEFAULT_DEVICE))
            .mutable_ready()
            .build(),
        glib::ParamSpecFloat::builder("strength")
            .nick("Strength")
            .blurb(
                "Blend of the derained frame with the input: 0 = input, 1 = fully \
                 derained. Changeable while PLAYING",
            )
            .minimum(0.0)
            .maximum(1.0)
            .default_value(DEFAULT_STRENGTH)
            .mutable_playing()
            .build(),
        glib::ParamSpecFloat::builder("atmosphere-smoothing")
            .nick("Atmosphere smoothing")
            .blurb(
                "Temporal smoothing of the atmospheric light A: weight of the previous \
                 estimate in its moving average (0 = per frame). Reset on flush, new \
                 stream and scene cuts. Changeable while PLAYING",
            )
            .minimum(0.0)
            .maximum(MAX_ATMOSPHERE_SMOOTHING)
            .default_value(DEFAULT_ATMOSPHERE_SMOOTHING)
            .mutable_playing()
            .build(),
        glib::ParamSpecEnum::builder_with_default::<super::super::Temporal>(
            "temporal",
            super::super::Temporal::Off,
        )
        .nick("Temporal")
        .blurb(
            "Use the frames before: off, on (fixed cameras: static parts of the \
             picture come from the recent frames, moving parts from the frame itself) \
             or auto (on, following a camera that pans or shakes). Adds no \
             latency; reset on flush, new stream, caps change and scene cuts. \
             Changeable while PLAYING",
        )
        .mutable_playing()
        .build(),
        glib::ParamSpecBoolean::builder("passthrough")
            .nick("Passthrough")
            .blurb(
                "Forward frames untouched (bit-exact, no processing). Changeable while \
                 PLAYING",
            )
            .default_value(DEFAULT_PASSTHROUGH)
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("model")
            .nick("Networks")
            .blurb(
                "Networks for mode=full: fast (real time on the CPU), quality (real \
                 time on a GPU) or a directory holding streak.onnx, stage1.onnx and \
                 stage2.onnx; unset = quality on CUDA, fast on the CPU. A missing, \
                 corrupt or wrongly shaped model fails the READY→PAUSED change with an \
                 error naming the file",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("stats-interval")
            .nick("Statistics interval")
            .blurb(
                "Milliseconds between `derain-stats` element messages on the bus (fps, \
                 processed and dropped frames, A, mean T, rain level, mode, backend); \
                 0 = none",
            )
            .default_value(DEFAULT_STATS_INTERVAL_MS)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt64::builder("frames-processed")
            .nick("Frames processed")
            .blurb("Frames derained since the element last started (statistics)")
            .read_only()
            .build(),
        glib::ParamSpecUInt::builder("in-flight")
            .nick("Frames in flight")
            .blurb(
                "Frames derained at once (1..=16). Above 1, frames run concurrently on \
                 replicated engines (two per listed device) and leave in order, \
                 in-flight − 1 frames later (reported as latency); EOS, caps changes \
                 and new streams push out what is in flight, flushes drop it. Read at \
                 READY→PAUSED",
            )
            .minimum(1)
            .maximum(16)
            .default_value(1)
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("mean-ms-per-frame")
            .nick("Mean ms per frame")
            .blurb("Mean processing time per frame in milliseconds since start (statistics)")
            .minimum(0.0)
            .read_only()
            .build(),
        glib::ParamSpecDouble::builder("last-ms-per-frame")
            .nick("Last ms per frame")
            .blurb("Processing time of the last frame in milliseconds (statistics)")
            .minimum(0.0)
            .read_only()
            .build(),
        glib::ParamSpecString::builder("backend-in-use")
            .nick("Backend in use")
            .blurb(
                "Engine actually running (\"cpu\" or \"cuda\"; what backend=auto chose); \
                 empty until started (statistics)",
            )
            .read_only()
            .build(),
    ]
}
