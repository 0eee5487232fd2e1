// SPDX-License-Identifier: MIT OR Apache-2.0
/**
 * element-derain:
 *
 * Removes heavy rain (streaks and the fog-like veil it leaves) from 8-bit video in real
 * time. Same format in and out: packed RGBA, BGRA, RGBx, BGRx (alpha preserved), or 4:2:0
 * YUV as decoders and cameras give it, I420 and NV12 (converted with the stream's matrix
 * and range, BT.601/BT.709, limited or full), so `decodebin ! derain ! x264enc` needs no
 * `videoconvert`. Anything else (4:4:4, 10-bit) needs `videoconvert` in front.
 *
 * ## Example pipeline
 * ```bash
 * gst-launch-1.0 filesrc location=rain.mp4 ! decodebin ! \
 *     derain mode=physics backend=cpu ! videoconvert ! autovideosink
 * ```
 *
 * `temporal=on` (or `auto`) uses the frames before each one where the scene is static: for
 * fixed cameras, streaks vanish far better than frame by frame. It only looks backwards, so
 * it adds no latency.
 *
 * `strength`, `atmosphere-smoothing`, `temporal` and `passthrough` may change while PLAYING; `mode`,
 * `backend`, `device` and `model` are read when the element goes READY→PAUSED. Under a live
 * source late frames are dropped (the `qos` property, on by default). A flush or a new stream
 * forgets the temporal state (the smoothed atmospheric light and the frame history).
 *
 * Every `stats-interval` ms (1000 by default, 0 = never) the element posts an element
 * message `derain-stats` on the bus: `fps`, `processed`, `dropped`, `passed-through`,
 * `ms-per-frame`, `atmosphere-r/g/b`, `mean-transmission`, `rain-level` (0 = clear, 1 = heavy),
 * `mode` and `backend`. `gst-launch-1.0 -m` prints them; `pipelines/stats.py` reads them.
 *
 * Since: 0.1.0
 */
use gst::glib;
use gst::prelude::*;

mod formats;
mod imp;
mod stats;

glib::wrapper! {
    pub struct Derain(ObjectSubclass<imp::Derain>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Method, as the `mode` property spells it (mirrors `derain_lib::Mode`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstDerainMode")]
pub enum Mode {
    #[enum_value(
        name = "Physics: training-free residue-guided decomposition and veil/streak priors",
        nick = "physics"
    )]
    Physics = 0,
    #[enum_value(
        name = "Full: stage-1 networks and depth-guided refinement (needs the ONNX models)",
        nick = "full"
    )]
    Full = 1,
}

impl From<Mode> for derain_lib::Mode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Physics => derain_lib::Mode::Physics,
            Mode::Full => derain_lib::Mode::Full,
        }
    }
}

impl From<derain_lib::Mode> for Mode {
    fn from(m: derain_lib::Mode) -> Self {
        match m {
            derain_lib::Mode::Physics => Mode::Physics,
            derain_lib::Mode::Full => Mode::Full,
        }
    }
}

/// Engine, as the `backend` property spells it (mirrors `derain_lib::Backend`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstDerainBackend")]
pub enum Backend {
    #[enum_value(
        name = "Auto: CUDA when a driver and device are present, otherwise the CPU",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "CPU: the reference engine (multi-threaded)", nick = "cpu")]
    Cpu = 1,
    #[enum_value(
        name = "CUDA: the GPU engine; an error when it cannot be had",
        nick = "cuda"
    )]
    Cuda = 2,
}

impl From<Backend> for derain_lib::Backend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Auto => derain_lib::Backend::Auto,
            Backend::Cpu => derain_lib::Backend::Cpu,
            Backend::Cuda => derain_lib::Backend::Cuda,
        }
    }
}

impl From<derain_lib::Backend> for Backend {
    fn from(b: derain_lib::Backend) -> Self {
        match b {
            derain_lib::Backend::Auto => Backend::Auto,
            derain_lib::Backend::Cpu => Backend::Cpu,
            derain_lib::Backend::Cuda => Backend::Cuda,
        }
    }
}

/// Temporal stage, as the `temporal` property spells it (mirrors `derain_lib::TemporalMode`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstDerainTemporal")]
pub enum Temporal {
    #[enum_value(name = "Off: every frame on its own", nick = "off")]
    Off = 0,
    #[enum_value(
        name = "On: static parts of the picture come from the recent frames (fixed cameras)",
        nick = "on"
    )]
    On = 1,
    #[enum_value(
        name = "Auto: on, following a camera that pans or shakes; frames it cannot follow pass through single-frame",
        nick = "auto"
    )]
    Auto = 2,
}

impl From<Temporal> for derain_lib::TemporalMode {
    fn from(t: Temporal) -> Self {
        match t {
            Temporal::Off => derain_lib::TemporalMode::Off,
            Temporal::On => derain_lib::TemporalMode::On,
            Temporal::Auto => derain_lib::TemporalMode::Auto,
        }
    }
}

/// Registers the element (and its enum types, for the documentation) with `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Mode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Backend::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Temporal::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    imp::forward_library_logs();
    gst::Element::register(
        Some(plugin),
        "derain",
        gst::Rank::NONE,
        Derain::static_type(),
    )
}
