//! Where `derain video` reads frames: a GStreamer decode pipeline (files, streams) or a folder
//! of JPEG/PNG frames.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use derain::PixelFormat;
use gst::prelude::*;
use gst_video::prelude::*;

use super::stop::Stop;

/// One decoded frame, packed 8-bit with 4 bytes per pixel.
pub struct Frame {
    pub data: FrameData,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub format: PixelFormat,
    pub pts: Option<gst::ClockTime>,
    pub duration: Option<gst::ClockTime>,
    pub fps: gst::Fraction,
}

pub enum FrameData {
    Gst(Box<gst_video::VideoFrame<gst_video::video_frame::Readable>>),
    Raw(Vec<u8>),
}

impl Frame {
    pub fn data(&self) -> &[u8] {
        match &self.data {
            FrameData::Gst(f) => f.plane_data(0).expect("plane 0 of a packed frame"),
            FrameData::Raw(v) => v,
        }
    }
}

pub trait FrameSource {
    /// The next frame, or `None` at the end of the input or when a stop was asked for.
    fn next_frame(&mut self) -> Result<Option<Frame>>;
    /// Number of frames, when the input says (asked after the first frame).
    fn total_frames(&self) -> Option<u64>;
    /// After the end: a warning when the input stopped before the length its header
    /// announces (a truncated file).
    fn ended_early(&self) -> Option<String> {
        None
    }
    /// Stops producing (before the end is fine).
    fn stop(&mut self) {}
    /// True when the input has an audio track (which `derain video` does not copy).
    fn has_audio(&self) -> bool {
        false
    }
    /// Frames decoded so far, those a live source dropped before [`next_frame`] included,
    /// when the source counts them.
    ///
    /// [`next_frame`]: FrameSource::next_frame
    fn frames_arrived(&self) -> Option<u64> {
        None
    }
}

/// True for inputs that are streams with no end of their own (a camera).
pub fn is_live(uri: &str) -> bool {
    ["rtsp", "rtsps", "rtspt", "udp", "srt", "rtmp", "v4l2"]
        .iter()
        .any(|s| uri.starts_with(&format!("{s}://")))
}

/// Extra time a live stream has for its first frame.
const FIRST_FRAME_GRACE: Duration = Duration::from_secs(10);

/// How a [`DecodeSource`] reads.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions {
    /// A live source that sends nothing for this long has dropped.
    pub stall: Duration,
    /// Decoded frames held for the reader; a live source drops the oldest beyond this.
    pub queue: u32,
    /// The jitter buffer of an RTSP source in ms (rtspsrc's own default, 2 s, when `None`).
    pub rtsp_latency_ms: Option<u32>,
    /// A file plays at its own frame rate, as a camera would (`derain serve`), instead of
    /// as fast as it decodes (`derain video`). Live sources are paced by their sender.
    pub paced: bool,
}

impl DecodeOptions {
    /// `derain video`: a few frames of slack, rtspsrc's defaults.
    pub fn recording(stall: Duration) -> Self {
        Self {
            stall,
            queue: 4,
            rtsp_latency_ms: None,
            paced: false,
        }
    }
}

/// `uridecodebin ! videoconvert ! appsink` for files and streams.
pub struct DecodeSource {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    fps: Option<gst::Fraction>,
    input: String,
    live: bool,
    stop: Stop,
    /// A live source that sends nothing for this long has dropped.
    stall: Duration,
    /// End of the last frame read (pts + duration), for the truncation check.
    reached: Option<gst::ClockTime>,
    audio: Arc<AtomicBool>,
    /// Frames that reached the appsink (those a live source dropped included).
    arrived: Arc<AtomicU64>,
}

impl DecodeSource {
    pub fn new(input: &str, stop: Stop, options: DecodeOptions) -> Result<Self> {
        let uri = if input.contains("://") {
            input.to_string()
        } else {
            let path = Path::new(input);
            let abs = std::fs::canonicalize(path)
                .with_context(|| format!("{input}: no such file, folder or URI"))?;
            gst::glib::filename_to_uri(&abs, None)
                .with_context(|| format!("{input}: cannot be turned into a URI"))?
                .to_string()
        };
        let live = is_live(&uri);
        let pipeline = gst::Pipeline::new();
        let decode = gst::ElementFactory::make("uridecodebin")
            .property("uri", &uri)
            .build()
            .context("uridecodebin (gstreamer1.0-plugins-base)")?;
        let convert = gst::ElementFactory::make("videoconvert").build()?;
        let appsink = gst_app::AppSink::builder()
            .caps(
                &gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::Rgbx)
                    .build(),
            )
            .sync(options.paced && !live)
            .max_buffers(options.queue.max(1))
            // A live stream does not wait for us: keep the newest frames.
            .drop(live)
            .build();
        pipeline.add_many([&decode, &convert, appsink.upcast_ref::<gst::Element>()])?;
        convert.link(&appsink)?;
        let arrived = Arc::new(AtomicU64::new(0));
        let count = arrived.clone();
        appsink
            .static_pad("sink")
            .expect("appsink has a sink pad")
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                count.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        if let Some(ms) = options.rtsp_latency_ms {
            decode.connect("source-setup", false, move |args| {
                if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
                    && src.find_property("latency").is_some()
                    && src.factory().is_some_and(|f| f.name() == "rtspsrc")
                {
                    src.set_property("latency", ms);
                }
                None
            });
        }
        let convert_weak = convert.downgrade();
        let audio = Arc::new(AtomicBool::new(false));
        let audio_seen = audio.clone();
        decode.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(kind) = caps.structure(0).map(|s| s.name().to_string()) else {
                return;
            };
            if kind.starts_with("audio/") {
                audio_seen.store(true, Ordering::Relaxed);
            }
            let sink = convert
                .static_pad("sink")
                .expect("videoconvert has a sink pad");
            if kind.starts_with("video/") && !sink.is_linked() {
                let _ = pad.link(&sink);
            }
        });
        let source = Self {
            pipeline,
            appsink,
            fps: None,
            input: input.to_string(),
            live,
            stop,
            stall: options.stall,
            reached: None,
            audio,
            arrived,
        };
        if source.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(source
                .bus_error()
                .unwrap_or_else(|| anyhow!("{input}: cannot play")));
        }
        Ok(source)
    }

    /// True for a stream with no end of its own (a camera).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The first error on the bus; warnings on the way are logged.
    fn bus_error(&self) -> Option<anyhow::Error> {
        let bus = self.pipeline.bus()?;
        while let Some(msg) =
            bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning])
        {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    return Some(anyhow!(
                        "{}: {} ({})",
                        self.input,
                        err.error(),
                        err.debug().map(|d| d.to_string()).unwrap_or_default()
                    ));
                }
                gst::MessageView::Warning(w) => {
                    log::warn!("{}: {}", self.input, w.error());
                }
                _ => {}
            }
        }
        None
    }
}

impl FrameSource for DecodeSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let waiting = Instant::now();
        let sample = loop {
            if self.stop.requested().is_some() {
                return Ok(None);
            }
            if let Some(sample) = self
                .appsink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                break sample;
            }
            if let Some(err) = self.bus_error() {
                return Err(err);
            }
            if self.appsink.is_eos() {
                return Ok(None);
            }
            // The first frame may take longer: RTSP set-up, waiting for a key frame, rtspsrc
            // falling back from UDP to TCP after its own 5 s.
            let limit = if self.fps.is_some() {
                self.stall
            } else {
                self.stall + FIRST_FRAME_GRACE
            };
            if self.live && waiting.elapsed() > limit {
                bail!(
                    "{}: no frame for {:.0} s (the stream stalled)",
                    self.input,
                    limit.as_secs_f64()
                );
            }
        };
        let caps = sample.caps().context("decoded sample without caps")?;
        let info = gst_video::VideoInfo::from_caps(caps).context("decoded caps")?;
        let buffer = sample
            .buffer_owned()
            .context("decoded sample without a buffer")?;
        let (pts, duration) = (buffer.pts(), buffer.duration());
        if let Some(p) = pts {
            self.reached = Some(p + duration.unwrap_or(gst::ClockTime::ZERO));
        }
        let frame = gst_video::VideoFrame::from_buffer_readable(buffer, &info)
            .map_err(|_| anyhow!("cannot map a decoded frame"))?;
        let fps = if info.fps().numer() > 0 {
            info.fps()
        } else {
            gst::Fraction::new(0, 1)
        };
        self.fps = Some(fps);
        Ok(Some(Frame {
            width: info.width(),
            height: info.height(),
            stride: frame.plane_stride()[0] as usize,
            format: PixelFormat::Rgbx,
            data: FrameData::Gst(Box::new(frame)),
            pts,
            duration,
            fps,
        }))
    }

    fn total_frames(&self) -> Option<u64> {
        let duration = self.pipeline.query_duration::<gst::ClockTime>()?;
        let fps = self.fps.filter(|f| f.numer() > 0)?;
        let frames = duration.nseconds() as u128 * fps.numer() as u128
            / (fps.denom() as u128 * 1_000_000_000);
        u64::try_from(frames).ok()
    }

    fn ended_early(&self) -> Option<String> {
        if self.live {
            return None;
        }
        let total = self.pipeline.query_duration::<gst::ClockTime>()?;
        let reached = self.reached.unwrap_or(gst::ClockTime::ZERO);
        // Half a second of slack: the header's duration may count the longest track.
        (reached + gst::ClockTime::from_mseconds(500) < total).then(|| {
            format!(
                "{}: the video ended at {:.2} s of the {:.2} s its header announces; the file \
                 looks truncated",
                self.input,
                reached.seconds_f64(),
                total.seconds_f64()
            )
        })
    }

    fn stop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    fn has_audio(&self) -> bool {
        self.audio.load(Ordering::Relaxed)
    }

    fn frames_arrived(&self) -> Option<u64> {
        Some(self.arrived.load(Ordering::Relaxed))
    }
}

impl Drop for DecodeSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A folder of JPEG/PNG frames, in file-name order, at a fixed rate.
pub struct FolderSource {
    files: Vec<PathBuf>,
    next: usize,
    fps: gst::Fraction,
    frame: gst::ClockTime,
    mode: derain::pipeline::Mode,
    stop: Stop,
}

impl FolderSource {
    pub fn new(dir: &Path, fps: f64, mode: derain::pipeline::Mode, stop: Stop) -> Result<Self> {
        if !(0.01..=1000.0).contains(&fps) {
            bail!("--fps {fps}: must be in [0.01, 1000]");
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "{}: no .jpg/.jpeg/.png frames in this folder",
                dir.display()
            );
        }
        let fps = gst::Fraction::approximate_f64(fps)
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .ok_or_else(|| anyhow!("--fps {fps} is not a usable rate"))?;
        let frame = gst::ClockTime::SECOND
            .mul_div_round(fps.denom() as u64, fps.numer() as u64)
            .context("frame duration")?;
        Ok(Self {
            files,
            next: 0,
            fps,
            frame,
            mode,
            stop,
        })
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.stop.requested().is_some() {
            return Ok(None);
        }
        let Some(path) = self.files.get(self.next) else {
            return Ok(None);
        };
        let index = self.next as u64;
        self.next += 1;
        // A truncated JPEG or PNG decodes to grey without an error: refuse it by name. The
        // bytes are read once and decoded from memory, after the size check on the header.
        let img = derain::io::read_checked(path, self.mode)?.to_rgba8();
        let (width, height) = img.dimensions();
        Ok(Some(Frame {
            data: FrameData::Raw(img.into_raw()),
            width,
            height,
            stride: width as usize * 4,
            format: PixelFormat::Rgbx,
            pts: Some(self.frame * index),
            duration: Some(self.frame),
            fps: self.fps,
        }))
    }

    fn total_frames(&self) -> Option<u64> {
        Some(self.files.len() as u64)
    }
}
