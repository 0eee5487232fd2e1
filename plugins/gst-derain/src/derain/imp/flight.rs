// SPDX-License-Identifier: MIT OR Apache-2.0
//! `in-flight` > 1: frames go through the library's frame scheduler, several at once (on CUDA,
//! one engine per listed device and two per device, so uploads, kernels and downloads of
//! neighbouring frames overlap). A frame leaves `in-flight − 1` frames after it came in, in
//! order; the added latency is reported in the latency query. Packed RGB frames are read and
//! written in their mapped buffers (the output buffer is taken from the pool when the frame
//! comes in); 4:2:0 YUV goes through RGBx copies, converted in the streaming thread.
//!
//! [`InFlight`] is what the element keeps: the scheduler and the finished buffers waiting to
//! be pushed.

use std::collections::VecDeque;

use derain_lib::frame::yuv::YuvSpec;
use derain_lib::physics::RunInfo;
use derain_lib::{FrameBuf, PixelFormat, Scheduler};
use gst_video::VideoFrame;
use gst_video::prelude::*;
use gst_video::video_frame::{Readable, Writable};

use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::{InputBuffer, PrepareOutputBufferSuccess};
use gst_base::subclass::prelude::*;
use std::time::Duration;

use super::super::formats::{pixel_format, rgbx_to_yuv, yuv_to_rgbx};
use super::{CAT, Derain, Mode, State};

/// The scheduler over the element's frame storage.
pub(super) type Flight = Scheduler<InStore, OutStore>;

/// An input frame in flight: the mapped buffer (packed RGB) or its RGBx conversion (YUV).
pub(super) enum InStore {
    Frame(Box<VideoFrame<Readable>>),
    Rgbx(Vec<u8>),
}

impl AsRef<[u8]> for InStore {
    fn as_ref(&self) -> &[u8] {
        match self {
            // Mapped when the frame was taken in (checked there), so this cannot fail.
            InStore::Frame(f) => f.plane_data(0).unwrap_or(&[]),
            InStore::Rgbx(v) => v,
        }
    }
}

/// An output frame in flight: the mapped output buffer (packed RGB), or RGBx scratch and the
/// YUV buffer it is converted into at the end.
pub(super) enum OutStore {
    Frame(VideoFrame<Writable>),
    Rgbx {
        rgb: Vec<u8>,
        frame: VideoFrame<Writable>,
    },
}

impl AsRef<[u8]> for OutStore {
    fn as_ref(&self) -> &[u8] {
        match self {
            OutStore::Frame(f) => f.plane_data(0).unwrap_or(&[]),
            OutStore::Rgbx { rgb, .. } => rgb,
        }
    }
}

impl AsMut<[u8]> for OutStore {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            OutStore::Frame(f) => f.plane_data_mut(0).unwrap_or(&mut []),
            OutStore::Rgbx { rgb, .. } => rgb,
        }
    }
}

/// The element's frames in flight.
pub(super) struct InFlight {
    pub(super) sched: Flight,
    /// Finished frames, in order, waiting for `generate_output`.
    pub(super) ready: VecDeque<gst::Buffer>,
}

/// What came out of a call: the frames finished, with their A and timings (for statistics).
pub(super) type Runs = Vec<RunInfo>;

impl InFlight {
    pub(super) fn new(sched: Flight) -> Self {
        Self {
            sched,
            ready: VecDeque::new(),
        }
    }

    /// Takes `inbuf` in, to be derained into `outbuf` (same caps; metadata already copied).
    /// The frame the window pushed out, if any, joins `ready`.
    pub(super) fn submit(
        &mut self,
        inbuf: gst::Buffer,
        outbuf: gst::Buffer,
        info: &gst_video::VideoInfo,
        yuv: Option<YuvSpec>,
    ) -> Result<Runs, String> {
        let input = input(inbuf, info, yuv)?;
        let output = output(outbuf, info, yuv)?;
        let done = self.sched.push(input, output).map_err(|e| e.to_string())?;
        let mut runs = Vec::new();
        if let Some(f) = done {
            runs.push(f.run);
            self.ready.push_back(finish(f.output, yuv)?);
        }
        Ok(runs)
    }

    /// Every frame still in flight joins `ready` (EOS, caps change, new stream, passthrough).
    pub(super) fn drain(&mut self, yuv: Option<YuvSpec>) -> Result<Runs, String> {
        let mut runs = Vec::new();
        while let Some(f) = self.sched.pop() {
            let f = f.map_err(|e| e.to_string())?;
            runs.push(f.run);
            self.ready.push_back(finish(f.output, yuv)?);
        }
        Ok(runs)
    }

    /// Drops every frame in flight or waiting and forgets the stream's state (flush).
    pub(super) fn flush(&mut self) {
        self.sched.flush();
        self.ready.clear();
    }
}

/// The library's layout of a packed RGB frame: its format and row stride.
fn packed(info: &gst_video::VideoInfo, stride: i32) -> Result<(PixelFormat, usize), String> {
    let format = pixel_format(info.format())
        .ok_or_else(|| format!("unsupported format {:?}", info.format()))?;
    let stride = usize::try_from(stride).map_err(|e| e.to_string())?;
    Ok((format, stride))
}

fn input(
    inbuf: gst::Buffer,
    info: &gst_video::VideoInfo,
    yuv: Option<YuvSpec>,
) -> Result<FrameBuf<InStore>, String> {
    let (w, h) = (info.width(), info.height());
    let frame = VideoFrame::from_buffer_readable(inbuf, info)
        .map_err(|_| "cannot map the input buffer as the negotiated video".to_string())?;
    match yuv {
        Some(spec) => {
            let mut rgb = Vec::new();
            yuv_to_rgbx(&spec, &frame.as_video_frame_ref(), &mut rgb)?;
            FrameBuf::new(InStore::Rgbx(rgb), w, h, 4 * w as usize, PixelFormat::Rgbx)
                .map_err(|e| e.to_string())
        }
        None => {
            let (format, stride) = packed(info, frame.plane_stride()[0])?;
            frame.plane_data(0).map_err(|e| e.to_string())?;
            FrameBuf::new(InStore::Frame(Box::new(frame)), w, h, stride, format)
                .map_err(|e| e.to_string())
        }
    }
}

fn output(
    outbuf: gst::Buffer,
    info: &gst_video::VideoInfo,
    yuv: Option<YuvSpec>,
) -> Result<FrameBuf<OutStore>, String> {
    let (w, h) = (info.width(), info.height());
    let mut frame = VideoFrame::from_buffer_writable(outbuf, info)
        .map_err(|_| "cannot map the output buffer as the negotiated video".to_string())?;
    match yuv {
        Some(_) => {
            let rgb = vec![0u8; 4 * w as usize * h as usize];
            FrameBuf::new(
                OutStore::Rgbx { rgb, frame },
                w,
                h,
                4 * w as usize,
                PixelFormat::Rgbx,
            )
            .map_err(|e| e.to_string())
        }
        None => {
            let (format, stride) = packed(info, frame.plane_stride()[0])?;
            frame.plane_data_mut(0).map_err(|e| e.to_string())?;
            FrameBuf::new(OutStore::Frame(frame), w, h, stride, format).map_err(|e| e.to_string())
        }
    }
}

/// The finished frame's buffer, converted back to YUV where it came as YUV.
fn finish(out: FrameBuf<OutStore>, yuv: Option<YuvSpec>) -> Result<gst::Buffer, String> {
    match (out.into_data(), yuv) {
        (OutStore::Frame(f), _) => Ok(f.into_buffer()),
        (OutStore::Rgbx { rgb, mut frame }, Some(spec)) => {
            rgbx_to_yuv(&spec, &rgb, &mut frame.as_mut_video_frame_ref())?;
            Ok(frame.into_buffer())
        }
        (OutStore::Rgbx { .. }, None) => Err("RGBx output without a YUV layout".into()),
    }
}

/// What derains the element's frames: a pipeline one frame per call (`in-flight` = 1), or the
/// scheduler.
pub(super) enum Runner {
    Serial(derain_lib::Pipeline),
    Flight(InFlight),
}

impl Runner {
    pub(super) fn backend_name(&self) -> &'static str {
        match self {
            Runner::Serial(p) => p.backend_name(),
            Runner::Flight(f) => f.sched.backend_name(),
        }
    }

    /// Frames held back before output.
    pub(super) fn latency_frames(&self) -> u32 {
        match self {
            Runner::Serial(p) => p.latency_frames(),
            Runner::Flight(f) => f.sched.in_flight() as u32 - 1,
        }
    }

    /// Forgets the stream's state (in flight: only once drained, or it drops the frames).
    pub(super) fn reset(&mut self) {
        match self {
            Runner::Serial(p) => p.reset(),
            Runner::Flight(f) => f.flush(),
        }
    }

    pub(super) fn set_strength(&mut self, v: f32) -> derain_lib::Result<()> {
        match self {
            Runner::Serial(p) => p.set_strength(v),
            Runner::Flight(f) => f.sched.set_strength(v),
        }
    }

    pub(super) fn set_atmosphere_smoothing(&mut self, v: f32) -> derain_lib::Result<()> {
        match self {
            Runner::Serial(p) => p.set_atmosphere_smoothing(v),
            Runner::Flight(f) => f.sched.set_atmosphere_smoothing(v),
        }
    }

    pub(super) fn set_temporal(&mut self, mode: derain_lib::TemporalMode) {
        match self {
            Runner::Serial(p) => p.set_temporal(mode),
            Runner::Flight(f) => f.sched.set_temporal(mode),
        }
    }
}

impl Derain {
    /// In flight: `inbuf` goes to the scheduler with an output buffer from the pool (the
    /// input's metadata copied onto it); a passthrough buffer waits behind what is in flight.
    pub(super) fn submit_in_flight(
        &self,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.before_transform(&inbuf);
        let fail = |what: &str, err: &dyn std::fmt::Display| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("derain failed on a frame in flight: {}: {}", what, err)
            );
            gst::FlowError::Error
        };
        if self.obj().is_passthrough() {
            self.drain_flight("passthrough");
            let mut guard = self.state.lock().unwrap();
            if let Some(State {
                runner: Runner::Flight(f),
                ..
            }) = guard.as_mut()
            {
                f.ready.push_back(inbuf);
            }
            return Ok(gst::FlowSuccess::Ok);
        }
        if self.late_in_flight(&inbuf) {
            // Counted as dropped by the statistics (an input neither processed nor passed).
            return Ok(gst::FlowSuccess::Ok);
        }
        let outbuf = match self.prepare_output_buffer(InputBuffer::Readable(&inbuf))? {
            PrepareOutputBufferSuccess::Buffer(b) => b,
            PrepareOutputBufferSuccess::InputBuffer => {
                return Err(fail(
                    "output buffer",
                    &"the input buffer was offered as output",
                ));
            }
        };
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let mode = self
            .apply_settings(state)
            .map_err(|e| fail("settings", &e))?;
        let Some(info) = state.info.clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let yuv = state.yuv;
        let Runner::Flight(f) = &mut state.runner else {
            return Err(fail("submit", &"no frames in flight"));
        };
        let runs = f
            .submit(inbuf, outbuf, &info, yuv)
            .map_err(|e| fail("process", &e))?;
        drop(guard);
        for run in runs {
            self.record(None, Some(run), mode);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// A QoS event from downstream: frames whose running time ends before
    /// `timestamp + jitter` arrive too late to be shown.
    pub(super) fn note_qos(&self, q: &gst::event::Qos) {
        let (_, _, jitter, timestamp) = q.get();
        let Some(ts) = timestamp else { return };
        let earliest = if jitter >= 0 {
            ts + gst::ClockTime::from_nseconds(jitter as u64)
        } else {
            ts.saturating_sub(gst::ClockTime::from_nseconds(jitter.unsigned_abs()))
        };
        *self.earliest.lock().unwrap() = Some(earliest);
    }

    /// In flight, BaseTransform's own QoS check is bypassed: a frame that ends before the
    /// earliest time downstream still wants is dropped here, as it would be with one frame at
    /// a time (`qos=false` keeps every frame).
    fn late_in_flight(&self, inbuf: &gst::Buffer) -> bool {
        if !self.obj().property::<bool>("qos") {
            return false;
        }
        let Some(earliest) = *self.earliest.lock().unwrap() else {
            return false;
        };
        let segment = self.obj().segment();
        let Some(seg) = segment.downcast_ref::<gst::ClockTime>() else {
            return false;
        };
        let Some(rt) = inbuf.pts().and_then(|p| seg.to_running_time(p)) else {
            return false;
        };
        let end = rt + inbuf.duration().unwrap_or(gst::ClockTime::ZERO);
        let late = end <= earliest;
        if late {
            gst::debug!(
                CAT,
                imp = self,
                "frame at {rt} ends before {earliest}: dropped (QoS)"
            );
        }
        late
    }

    /// In flight: every frame still out is pushed downstream now (EOS, caps change, new
    /// stream), outside the state lock. A failure is posted as an element error.
    pub(super) fn drain_flight(&self, why: &str) {
        let (buffers, runs, mode) = {
            let mut guard = self.state.lock().unwrap();
            let Some(State {
                runner: Runner::Flight(f),
                yuv,
                mode,
                ..
            }) = guard.as_mut()
            else {
                return;
            };
            let runs = match f.drain(*yuv) {
                Ok(r) => r,
                Err(e) => {
                    drop(guard);
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("derain failed on a frame in flight: {}", e)
                    );
                    return;
                }
            };
            (f.ready.drain(..).collect::<Vec<_>>(), runs, *mode)
        };
        gst::debug!(
            CAT,
            imp = self,
            "{why}: pushing {} frame(s) in flight",
            buffers.len()
        );
        for run in runs {
            self.record(None, Some(run), mode);
        }
        let pad = self
            .obj()
            .static_pad("src")
            .expect("the element has a src pad");
        for b in buffers {
            if let Err(e) = pad.push(b) {
                gst::debug!(
                    CAT,
                    imp = self,
                    "{why}: downstream refused a drained frame: {e:?}"
                );
                break;
            }
        }
    }

    /// With a variable frame rate (caps 0/1) and frames in flight, the added latency follows
    /// the longest frame period seen (the buffer's duration, else the step between
    /// timestamps, up to a second: a longer step is a stall or a gap), and the pipeline is
    /// told when it grows.
    pub(super) fn measure_frame_period(&self, inbuf: &gst::BufferRef) {
        let mut stats = self.stats.lock().unwrap();
        let held = stats.held_frames_unknown_rate;
        let pts = inbuf.pts();
        let step = pts.zip(stats.last_pts).and_then(|(p, l)| p.checked_sub(l));
        stats.last_pts = pts.or(stats.last_pts);
        if held == 0 {
            return;
        }
        let Some(period) = inbuf
            .duration()
            .or(step)
            .filter(|d| !d.is_zero() && *d <= gst::ClockTime::SECOND)
        else {
            return;
        };
        let latency = period * u64::from(held);
        if latency > stats.added_latency {
            stats.added_latency = latency;
            drop(stats);
            gst::debug!(
                CAT,
                imp = self,
                "no frame rate in the caps: latency {latency}"
            );
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    /// Counts a processed frame: `busy` is its wall time (the engine's stage times when
    /// `None`); posts the `derain-stats` message when one is due.
    pub(super) fn record(
        &self,
        busy: Option<Duration>,
        run: Option<derain_lib::physics::RunInfo>,
        mode: Mode,
    ) {
        let interval =
            Duration::from_millis(u64::from(self.settings.lock().unwrap().stats_interval_ms));
        let busy = busy.unwrap_or_else(|| {
            Duration::from_secs_f64(run.map_or(0.0, |r| r.timings.total_ms()) / 1e3)
        });
        let (report, backend) = {
            let mut stats = self.stats.lock().unwrap();
            stats.frames += 1;
            stats.total += busy;
            stats.last = busy;
            let report = stats.counters.frame(busy, interval, run);
            (report, stats.backend.unwrap_or(""))
        };
        if let Some(report) = report {
            let mode = match mode {
                Mode::Physics => "physics",
                Mode::Full => "full",
            };
            let s = super::super::stats::structure(&report, mode, backend);
            let _ = self
                .obj()
                .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
    }
}
