// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `derain` element: a `GstVideoFilter` that hands each mapped frame to
//! `derain_lib::Pipeline::process` without copying, or with `in-flight` > 1 to the library's
//! frame scheduler, several frames at once (flight.rs; the buffer pools that needs: pools.rs).

mod flight;
mod pools;
mod props;

use std::sync::{LazyLock, Mutex, Once};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use derain_lib::nets::ModelChoice;
use derain_lib::pipeline::config::{
    DEFAULT_ATMOSPHERE_SMOOTHING, DEFAULT_BACKEND, DEFAULT_MODE, DEFAULT_STRENGTH,
};
use derain_lib::{Config, FrameMut, FrameRef, PixelFormat};

use super::formats::{parse_devices, pixel_format, yuv_spec};
use super::{Backend, Mode};
use flight::{InFlight, Runner};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "derain",
        gst::DebugColorFlags::empty(),
        Some("Heavy-rain removal element"),
    )
});

/// Sends the library's `log` records to the `derain-lib` debug category. Runs once per
/// process; when the host application already installed a `log` logger, that one keeps them.
pub(super) fn forward_library_logs() {
    static LOGGER: LazyLock<gst::DebugCategoryLogger> = LazyLock::new(|| {
        gst::DebugCategoryLogger::new(gst::DebugCategory::new(
            "derain-lib",
            gst::DebugColorFlags::empty(),
            Some("derain library (records of the `log` crate)"),
        ))
    });
    static ONCE: Once = Once::new();
    ONCE.call_once(|| match log::set_logger(&*LOGGER) {
        Ok(()) => log::set_max_level(log::LevelFilter::Trace),
        Err(_) => gst::info!(
            CAT,
            "a `log` logger is already installed; derain-lib records go there, not to GStreamer"
        ),
    });
}

/// Default of `device`: the first GPU.
const DEFAULT_DEVICE: &str = "0";
const DEFAULT_PASSTHROUGH: bool = false;
/// Default of `stats-interval`: one `derain-stats` message a second.
const DEFAULT_STATS_INTERVAL_MS: u32 = 1000;
/// Upper end of `atmosphere-smoothing` (the library's validated range is [0, 0.999]).
const MAX_ATMOSPHERE_SMOOTHING: f32 = 0.999;

/// Property values, written by the setters from any thread.
#[derive(Debug, Clone)]
struct Settings {
    mode: Mode,
    backend: Backend,
    device: String,
    strength: f32,
    atmosphere_smoothing: f32,
    passthrough: bool,
    model: Option<ModelChoice>,
    temporal: super::Temporal,
    stats_interval_ms: u32,
    in_flight: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: DEFAULT_MODE.into(),
            backend: DEFAULT_BACKEND.into(),
            device: DEFAULT_DEVICE.into(),
            strength: DEFAULT_STRENGTH,
            atmosphere_smoothing: DEFAULT_ATMOSPHERE_SMOOTHING,
            passthrough: DEFAULT_PASSTHROUGH,
            model: None,
            temporal: super::Temporal::Off,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
            in_flight: 1,
        }
    }
}

/// What exists between `start` and `stop`; used by the streaming thread.
struct State {
    runner: Runner,
    /// The mode the runner was started with (`mode` takes effect at the next start).
    mode: Mode,
    /// Frames kept in flight (`in-flight` at start; 1: one at a time), for the allocation
    /// queries.
    in_flight: u32,
    /// Values last handed to the pipeline (the settings may have moved on since).
    strength: f32,
    atmosphere_smoothing: f32,
    temporal: super::Temporal,
    /// Negotiated frame size, to notice a resolution change.
    size: Option<(u32, u32)>,
    /// The negotiated YUV layout, matrix and range (`None`: packed RGB).
    yuv: Option<derain_lib::frame::yuv::YuvSpec>,
    /// The negotiated video (frames in flight are mapped with it).
    info: Option<gst_video::VideoInfo>,
    /// RGBx frames of the YUV path.
    scratch: super::formats::YuvScratch,
}

/// The read-only statistics properties, plus the latency answer (kept apart from `State` so
/// queries and property reads never wait for a frame in progress).
#[derive(Debug, Default)]
struct Stats {
    frames: u64,
    total: Duration,
    last: Duration,
    backend: Option<&'static str>,
    added_latency: gst::ClockTime,
    /// Frames held back (in flight) while the caps give no frame rate: the added latency is
    /// then measured from the buffers (their duration, else the step between timestamps).
    held_frames_unknown_rate: u32,
    last_pts: Option<gst::ClockTime>,
    /// Counters behind the `derain-stats` bus message.
    counters: super::stats::Counters,
}

#[derive(Default)]
pub struct Derain {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<Stats>,
    /// In flight: the earliest running time downstream still wants (from QoS events).
    earliest: Mutex<Option<gst::ClockTime>>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Derain {
    /// Forgets the pipeline's temporal state (flush, new stream, new resolution).
    fn reset_pipeline(&self, why: &str) {
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            gst::debug!(CAT, imp = self, "resetting temporal state: {why}");
            state.runner.reset();
        }
    }

    /// Hands changed property values to the runner; returns the running mode for the
    /// statistics (a changed `mode` waits for the next start).
    fn apply_settings(&self, state: &mut State) -> Result<Mode, String> {
        let (strength, smoothing, temporal) = {
            let s = self.settings.lock().unwrap();
            (s.strength, s.atmosphere_smoothing, s.temporal)
        };
        let mode = state.mode;
        if state.strength != strength {
            state
                .runner
                .set_strength(strength)
                .map_err(|e| format!("strength: {e}"))?;
            state.strength = strength;
        }
        if state.atmosphere_smoothing != smoothing {
            state
                .runner
                .set_atmosphere_smoothing(smoothing)
                .map_err(|e| format!("atmosphere-smoothing: {e}"))?;
            state.atmosphere_smoothing = smoothing;
        }
        if state.temporal != temporal {
            state.runner.set_temporal(temporal.into());
            state.temporal = temporal;
        }
        Ok(mode)
    }

    fn warn_if_running(&self, name: &str) {
        if self.obj().current_state() > gst::State::Ready {
            gst::warning!(
                CAT,
                imp = self,
                "`{name}` changed while running: it takes effect at the next READY→PAUSED"
            );
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Derain {
    const NAME: &'static str = "GstDerain";
    type Type = super::Derain;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for Derain {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(props::specs);
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "mode" => {
                let mode = value.get::<Mode>().expect("type checked upstream");
                gst::info!(CAT, imp = self, "mode: {:?} → {mode:?}", settings.mode);
                settings.mode = mode;
                drop(settings);
                self.warn_if_running("mode");
            }
            "backend" => {
                let backend = value.get::<Backend>().expect("type checked upstream");
                gst::info!(
                    CAT,
                    imp = self,
                    "backend: {:?} → {backend:?}",
                    settings.backend
                );
                settings.backend = backend;
                drop(settings);
                self.warn_if_running("backend");
            }
            "device" => {
                let device = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default();
                if let Err(e) = parse_devices(&device) {
                    // Kept as given: start() refuses it with an error message.
                    gst::warning!(CAT, imp = self, "device `{device}`: {e}");
                }
                gst::info!(
                    CAT,
                    imp = self,
                    "device: {:?} → {device:?}",
                    settings.device
                );
                settings.device = device;
                drop(settings);
                self.warn_if_running("device");
            }
            "strength" => {
                let strength = value.get::<f32>().expect("type checked upstream");
                gst::info!(
                    CAT,
                    imp = self,
                    "strength: {} → {strength}",
                    settings.strength
                );
                settings.strength = strength;
            }
            "atmosphere-smoothing" => {
                let s = value.get::<f32>().expect("type checked upstream");
                gst::info!(
                    CAT,
                    imp = self,
                    "atmosphere-smoothing: {} → {s}",
                    settings.atmosphere_smoothing
                );
                settings.atmosphere_smoothing = s;
            }
            "temporal" => {
                let t = value
                    .get::<super::Temporal>()
                    .expect("type checked upstream");
                gst::info!(CAT, imp = self, "temporal: {:?} → {t:?}", settings.temporal);
                settings.temporal = t;
            }
            "passthrough" => {
                let p = value.get::<bool>().expect("type checked upstream");
                gst::info!(
                    CAT,
                    imp = self,
                    "passthrough: {} → {p}",
                    settings.passthrough
                );
                settings.passthrough = p;
                drop(settings);
                self.obj().set_passthrough(p);
            }
            "model" => {
                let model = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<ModelChoice>().expect("non-empty strings parse"));
                gst::info!(CAT, imp = self, "model: {:?} → {model:?}", settings.model);
                settings.model = model;
                drop(settings);
                self.warn_if_running("model");
            }
            "stats-interval" => {
                settings.stats_interval_ms = value.get().expect("type checked upstream");
            }
            "in-flight" => {
                settings.in_flight = value.get().expect("type checked upstream");
                drop(settings);
                self.warn_if_running("in-flight");
            }
            other => unimplemented!("property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "mode" => self.settings.lock().unwrap().mode.to_value(),
            "backend" => self.settings.lock().unwrap().backend.to_value(),
            "device" => self.settings.lock().unwrap().device.to_value(),
            "strength" => self.settings.lock().unwrap().strength.to_value(),
            "atmosphere-smoothing" => self
                .settings
                .lock()
                .unwrap()
                .atmosphere_smoothing
                .to_value(),
            "passthrough" => self.settings.lock().unwrap().passthrough.to_value(),
            "temporal" => self.settings.lock().unwrap().temporal.to_value(),
            "model" => self
                .settings
                .lock()
                .unwrap()
                .model
                .as_ref()
                .map(|m| m.to_string())
                .to_value(),
            "stats-interval" => self.settings.lock().unwrap().stats_interval_ms.to_value(),
            "in-flight" => self.settings.lock().unwrap().in_flight.to_value(),
            "frames-processed" => self.stats.lock().unwrap().frames.to_value(),
            "mean-ms-per-frame" => {
                let stats = self.stats.lock().unwrap();
                let mean = if stats.frames == 0 {
                    0.0
                } else {
                    ms(stats.total) / stats.frames as f64
                };
                mean.to_value()
            }
            "last-ms-per-frame" => ms(self.stats.lock().unwrap().last).to_value(),
            "backend-in-use" => self.stats.lock().unwrap().backend.unwrap_or("").to_value(),
            other => unimplemented!("property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // VideoFilter already enables QoS; say so explicitly, since live use relies on it.
        self.obj().set_qos(true);
    }
}

impl GstObjectImpl for Derain {}

impl ElementImpl for Derain {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Derain",
                "Filter/Effect/Video",
                "Removes heavy rain (streaks and veil) from video in real time",
                "derain developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = super::formats::caps();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Derain {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    // Same caps in and out is the normal case here: we still have to process.
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn before_transform(&self, inbuf: &gst::BufferRef) {
        // Every buffer passes here, before QoS may drop it: inputs − processed − passed
        // through = dropped.
        let passthrough = self.obj().is_passthrough();
        let mut stats = self.stats.lock().unwrap();
        stats.counters.inputs += 1;
        if passthrough {
            stats.counters.passed += 1;
        }
        drop(stats);
        self.measure_frame_period(inbuf);
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let devices = parse_devices(&settings.device).map_err(|e| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ("Invalid device list `{}`: {}", settings.device, e)
            )
        })?;
        let config = Config {
            mode: settings.mode.into(),
            backend: settings.backend.into(),
            devices,
            strength: settings.strength,
            atmosphere_smoothing: settings.atmosphere_smoothing,
            model: settings.model.clone(),
            temporal: settings.temporal.into(),
            ..Config::default()
        };
        let in_flight = settings.in_flight.clamp(1, 16) as usize;
        let engines = derain_lib::pipeline::engines_for(&config, in_flight);
        let runner = if in_flight > 1 {
            derain_lib::Scheduler::new(config, engines, in_flight)
                .map(|s| Runner::Flight(InFlight::new(s)))
        } else {
            derain_lib::Pipeline::new(config).map(Runner::Serial)
        };
        let runner = runner.map_err(|err| {
            gst::error!(CAT, imp = self, "cannot start: {err}");
            gst::error_msg!(gst::LibraryError::Init, ("Could not start derain: {}", err))
        })?;
        let backend = runner.backend_name();
        gst::info!(
            CAT,
            imp = self,
            "started: mode {:?}, backend {backend} (asked {:?}), {in_flight} frame(s) in \
             flight on {} engine(s), latency {} frame(s)",
            settings.mode,
            settings.backend,
            if in_flight > 1 { engines } else { 1 },
            runner.latency_frames()
        );
        *self.stats.lock().unwrap() = Stats {
            backend: Some(backend),
            ..Stats::default()
        };
        *self.state.lock().unwrap() = Some(State {
            runner,
            mode: settings.mode,
            in_flight: in_flight as u32,
            strength: settings.strength,
            atmosphere_smoothing: settings.atmosphere_smoothing,
            temporal: settings.temporal,
            size: None,
            yuv: None,
            info: None,
            scratch: Default::default(),
        });
        self.obj().set_passthrough(settings.passthrough);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if self.state.lock().unwrap().take().is_some() {
            let stats = self.stats.lock().unwrap();
            gst::info!(
                CAT,
                imp = self,
                "stopped after {} frames, mean {:.2} ms/frame",
                stats.frames,
                if stats.frames == 0 {
                    0.0
                } else {
                    ms(stats.total) / stats.frames as f64
                }
            );
        }
        Ok(())
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Qos(q) = event.view() {
            self.note_qos(q);
        }
        self.parent_src_event(event)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // With in-flight = 1 every frame leaves in its own transform call and the drains do
        // nothing; in flight, what is out leaves before EOS, new caps or a new stream.
        match event.view() {
            gst::EventView::FlushStop(_) => {
                *self.earliest.lock().unwrap() = None;
                self.reset_pipeline("flush")
            }
            gst::EventView::StreamStart(_) => {
                self.drain_flight("new stream");
                self.reset_pipeline("new stream");
            }
            gst::EventView::Eos(_) => self.drain_flight("EOS"),
            gst::EventView::Caps(_) => self.drain_flight("caps"),
            // Every other event in the data flow (segment, gap, ...) follows the frames that
            // came before it: it must not overtake those still in flight. Tags are the
            // exception: a parser or decoder sends them every few frames (bitrate), they
            // time nothing, and draining on each would empty the frames in flight.
            _ if event.is_serialized()
                && !matches!(
                    event.type_(),
                    gst::EventType::FlushStop | gst::EventType::Tag
                ) =>
            {
                self.drain_flight(event.type_().name().as_str())
            }
            _ => (),
        }
        self.parent_sink_event(event)
    }

    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (flight, info) = match self.state.lock().unwrap().as_ref() {
            Some(s) => (matches!(s.runner, Runner::Flight(_)), s.info.clone()),
            None => (false, None),
        };
        if let Some(info) = info
            && !self.obj().is_passthrough()
            && gst_video::VideoFrameRef::from_buffer_ref_readable(inbuf.as_ref(), &info).is_err()
        {
            // A buffer that does not hold the frame its caps describe (too short, a broken
            // video meta): the base class warned in general terms and pushed an output
            // buffer nobody had written. It is dropped, named, and the stream goes on.
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                (
                    "Dropped a {}-byte buffer that does not hold a {}x{} {} frame ({} bytes)",
                    inbuf.size(),
                    info.width(),
                    info.height(),
                    info.format().to_str(),
                    info.size()
                )
            );
            self.before_transform(&inbuf);
            return Ok(gst::FlowSuccess::Ok);
        }
        if !flight {
            return self.parent_submit_input_buffer(is_discont, inbuf);
        }
        self.submit_in_flight(inbuf)
    }

    fn generate_output(
        &self,
    ) -> Result<gst_base::subclass::base_transform::GenerateOutputSuccess, gst::FlowError> {
        use gst_base::subclass::base_transform::GenerateOutputSuccess;
        let mut guard = self.state.lock().unwrap();
        match guard.as_mut() {
            Some(State {
                runner: Runner::Flight(f),
                ..
            }) => Ok(f.ready.pop_front().map_or(
                GenerateOutputSuccess::NoOutput,
                GenerateOutputSuccess::Buffer,
            )),
            _ => {
                drop(guard);
                self.parent_generate_output()
            }
        }
    }

    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.fit_downstream_pools(query);
        self.parent_decide_allocation(query)
    }

    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(decide_query, query)?;
        self.ask_upstream_for_held(query);
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction != gst::PadDirection::Src || query.type_() != gst::QueryType::Latency {
            return BaseTransformImplExt::parent_query(self, direction, query);
        }
        if !BaseTransformImplExt::parent_query(self, direction, query) {
            return false;
        }
        let ours = self.stats.lock().unwrap().added_latency;
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let (live, min, max) = q.result();
            let (min, max) = (min + ours, max.map(|m| m + ours));
            gst::debug!(
                CAT,
                imp = self,
                "latency: adding {ours} → live {live}, min {min}, max {}",
                max.display()
            );
            q.set(live, min, max);
        }
        true
    }
}

impl VideoFilterImpl for Derain {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let yuv = yuv_spec(in_info);
        if (pixel_format(in_info.format()).is_none() && yuv.is_none())
            || in_info.format() != out_info.format()
        {
            return Err(gst::loggable_error!(
                CAT,
                "unsupported caps {incaps} → {outcaps}"
            ));
        }
        let size = (in_info.width(), in_info.height());
        let latency_frames = {
            let mut state = self.state.lock().unwrap();
            let Some(state) = state.as_mut() else {
                return Err(gst::loggable_error!(CAT, "caps set before start"));
            };
            if state.size.is_some_and(|s| s != size) {
                gst::info!(
                    CAT,
                    imp = self,
                    "resolution {:?} → {size:?}: resetting temporal state",
                    state.size
                );
                state.runner.reset();
            }
            state.size = Some(size);
            state.yuv = yuv;
            state.info = Some(in_info.clone());
            state.runner.latency_frames()
        };
        let fps = in_info.fps();
        let frame = if fps.numer() > 0 {
            gst::ClockTime::SECOND
                .mul_div_ceil(fps.denom() as u64, fps.numer() as u64)
                .unwrap_or(gst::ClockTime::ZERO)
        } else {
            gst::ClockTime::ZERO
        };
        let latency = frame * latency_frames as u64;
        let changed = {
            let mut stats = self.stats.lock().unwrap();
            stats.held_frames_unknown_rate = if frame.is_zero() { latency_frames } else { 0 };
            stats.last_pts = None;
            std::mem::replace(&mut stats.added_latency, latency) != latency
        };
        if changed {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        gst::debug!(
            CAT,
            imp = self,
            "configured {}x{} {:?}, added latency {latency}",
            size.0,
            size.1,
            in_info.format()
        );
        Ok(())
    }

    fn transform_frame(
        &self,
        inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
        outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (w, h) = (inframe.width(), inframe.height());
        let fail = |what: &str, err: &dyn std::fmt::Display| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("derain failed on a {}x{} frame: {}: {}", w, h, what, err)
            );
            gst::FlowError::Error
        };
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("Not started"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let mode = self
            .apply_settings(state)
            .map_err(|e| fail("settings", &e))?;
        let t = Instant::now();
        let State {
            runner, scratch, ..
        } = state;
        let Runner::Serial(pipeline) = runner else {
            return Err(fail("transform", &"called with frames in flight"));
        };
        if let Some(spec) = state.yuv {
            // 4:2:0 YUV: through packed RGBx and back (formats.rs).
            let row = 4 * w as usize;
            super::formats::process_yuv(&spec, scratch, inframe, outframe, |rgb_in, rgb_out| {
                let f = PixelFormat::Rgbx;
                let input = FrameRef::new(rgb_in, w, h, row, f).map_err(|e| e.to_string())?;
                let mut output = FrameMut::new(rgb_out, w, h, row, f).map_err(|e| e.to_string())?;
                pipeline
                    .process(&input, &mut output)
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| fail("process", &e))?;
        } else {
            let Some(format) = pixel_format(inframe.format()) else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Unsupported format {:?}", inframe.format())
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let stride = |s: i32| usize::try_from(s).map_err(|_| fail("stride", &s));
            let in_stride = stride(inframe.plane_stride()[0])?;
            let out_stride = stride(outframe.plane_stride()[0])?;
            let in_data = inframe.plane_data(0).map_err(|e| fail("input", &e))?;
            let input =
                FrameRef::new(in_data, w, h, in_stride, format).map_err(|e| fail("input", &e))?;
            let out_data = outframe.plane_data_mut(0).map_err(|e| fail("output", &e))?;
            let mut output = FrameMut::new(out_data, w, h, out_stride, format)
                .map_err(|e| fail("output", &e))?;
            pipeline
                .process(&input, &mut output)
                .map_err(|e| fail("process", &e))?;
        }
        let dt = t.elapsed();
        let run = pipeline.last_run();
        drop(guard);
        self.record(Some(dt), run, mode);
        gst::trace!(
            CAT,
            imp = self,
            "frame ({w}x{h}, pts {}) in {:.2} ms",
            inframe.buffer().pts().display(),
            ms(dt)
        );
        Ok(gst::FlowSuccess::Ok)
    }
}
