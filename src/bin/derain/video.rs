//! `derain video IN -o OUT [--mode M] [--side-by-side]`: a video file, a folder of frames or a
//! stream (rtsp://...) → derain → H.264 in MP4 or Matroska (by the extension of OUT).
//!
//! Two GStreamer pipelines with this program in between:
//! - decode: `uridecodebin ! videoconvert ! appsink` (RGBx), or for a folder the `image` crate
//!   reads the JPEG/PNG files in name order at `--fps`;
//! - each frame goes through [`derain::Pipeline::process`] here, in Rust, straight from the
//!   mapped buffer into the output buffer (and, with `--side-by-side`, next to a copy of the
//!   input);
//! - encode: `appsrc ! videoscale ! videoconvert ! I420 ! x264enc ! h264parse ! mp4mux|matroskamux
//!   ! filesink`. A resolution change mid-stream is scaled to the first frame's size.
//!
//! A live source (rtsp://) keeps only the newest frames when derain cannot keep up; stop it with
//! `--max-frames` (Ctrl-C leaves an unfinished MP4; MKV stays playable).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use derain::{FrameMut, FrameRef, PixelFormat};
use gst::prelude::*;
use gst_video::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use super::common::EngineArgs;

/// Arguments of `derain video`.
#[derive(Debug, Args)]
pub struct VideoArgs {
    /// Input: a video file, a folder of frames (JPEG/PNG, taken in name order) or a URI
    /// (rtsp://, file://, http://...).
    pub input: String,
    /// Output video, H.264: `.mp4` (MP4) or `.mkv` (Matroska).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Write input | derained next to each other (twice the width).
    #[arg(long)]
    pub side_by_side: bool,
    /// Frame rate of a folder of frames.
    #[arg(long, default_value_t = 25.0)]
    pub fps: f64,
    /// Stop after this many frames (a live stream has no end of its own).
    #[arg(long)]
    pub max_frames: Option<u64>,
    /// x264 quantizer in constant-quality mode: lower is better and bigger (0-50).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=50))]
    pub quantizer: u32,
    /// Use the frames before each one: `off`, `on` (fixed cameras: static parts come from
    /// the recent frames) or `auto` (on, but a moving camera passes through single-frame).
    #[arg(long, default_value = "off")]
    pub temporal: derain::TemporalMode,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Runs `derain video`.
pub fn run(a: VideoArgs) -> Result<()> {
    gst::init().context("initialising GStreamer")?;
    let muxer = muxer_for(&a.output)?;
    let mut config = a.engine.config();
    config.temporal = a.temporal;
    let mut derainer = derain::Pipeline::new(config)?;
    let mut source: Box<dyn FrameSource> = if Path::new(&a.input).is_dir() {
        Box::new(FolderSource::new(Path::new(&a.input), a.fps)?)
    } else {
        Box::new(DecodeSource::new(&a.input)?)
    };

    let bar = ProgressBar::new_spinner();
    let mut encoder: Option<Encoder> = None;
    let mut first_pts = None;
    let mut frames = 0u64;
    let mut derain_time = Duration::ZERO;
    let started = Instant::now();
    // A source that fails mid-stream ends the loop like an end of stream: what was encoded
    // is finished into a playable file, and the error is reported after that.
    let mut source_error = None;
    while a.max_frames.is_none_or(|m| frames < m) {
        let frame = match source.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                source_error = Some(e);
                break;
            }
        };
        let (w, h) = (frame.width, frame.height);
        let out_w = if a.side_by_side { 2 * w } else { w };
        if encoder.is_none() {
            let total = source.total_frames().map(|t| match a.max_frames {
                Some(m) => t.min(m),
                None => t,
            });
            style_bar(&bar, total);
            encoder = Some(Encoder::new(
                &a.output,
                muxer,
                (out_w, h),
                frame.fps,
                a.quantizer,
            )?);
        }
        let enc = encoder.as_mut().expect("created above");
        enc.set_input_size(out_w, h, frame.fps)?;

        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgbx, out_w, h)
            .build()
            .context("output frame layout")?;
        let mut out = gst::Buffer::with_size(info.size()).context("allocating a frame")?;
        {
            let out = out.get_mut().expect("new buffer is writable");
            let first = *first_pts.get_or_insert(frame.pts.unwrap_or(gst::ClockTime::ZERO));
            out.set_pts(frame.pts.map(|p| p.saturating_sub(first)));
            out.set_duration(frame.duration);
            let mut map = out.map_writable().context("mapping a frame")?;
            let stride = info.stride()[0] as usize;
            let input = FrameRef::new(frame.data(), w, h, frame.stride, frame.format)?;
            let data = map.as_mut_slice();
            let right = if a.side_by_side {
                let row = w as usize * 4;
                for y in 0..h as usize {
                    data[y * stride..][..row].copy_from_slice(input.row(y));
                }
                row
            } else {
                0
            };
            let mut output = FrameMut::new(&mut data[right..], w, h, stride, frame.format)?;
            let t = Instant::now();
            derainer.process(&input, &mut output)?;
            derain_time += t.elapsed();
        }
        enc.push(out)?;
        frames += 1;
        bar.inc(1);
    }
    source.stop();
    let Some(encoder) = encoder else {
        if let Some(e) = source_error {
            return Err(e.context(format!("{}: no frame was written", a.input)));
        }
        bail!("{}: no video frames", a.input);
    };
    bar.set_message("finishing the file");
    encoder.finish()?;
    bar.finish_and_clear();
    if let Some(e) = source_error {
        return Err(e.context(format!(
            "{}: the input failed after {frames} frames; those {frames} frames were written to {} \
             (a finished, playable file)",
            a.input,
            a.output.display()
        )));
    }

    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} -> {}: {frames} frames in {secs:.1} s ({:.1} fps overall; derain {:.1} ms/frame on {})",
        a.input,
        a.output.display(),
        frames as f64 / secs,
        derain_time.as_secs_f64() * 1e3 / frames.max(1) as f64,
        derainer.backend_name()
    );
    Ok(())
}

fn muxer_for(output: &Path) -> Result<&'static str> {
    match output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mp4") | Some("m4v") | Some("mov") => Ok("mp4mux"),
        Some("mkv") => Ok("matroskamux"),
        _ => bail!(
            "{}: the output must end in .mp4 or .mkv (H.264 in MP4 or Matroska)",
            output.display()
        ),
    }
}

fn style_bar(bar: &ProgressBar, total: Option<u64>) {
    let template = match total {
        Some(t) => {
            bar.set_length(t);
            "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} frames, {fps}, ETA {eta} {msg}"
        }
        None => "{spinner} [{elapsed_precise}] {pos} frames, {fps} {msg}",
    };
    let style = ProgressStyle::with_template(template)
        .expect("valid template")
        .with_key(
            "fps",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} fps", s.per_sec());
            },
        );
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
}

/// One decoded frame, packed 8-bit with 4 bytes per pixel.
struct Frame {
    data: FrameData,
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
    pts: Option<gst::ClockTime>,
    duration: Option<gst::ClockTime>,
    fps: gst::Fraction,
}

enum FrameData {
    Gst(Box<gst_video::VideoFrame<gst_video::video_frame::Readable>>),
    Raw(Vec<u8>),
}

impl Frame {
    fn data(&self) -> &[u8] {
        match &self.data {
            FrameData::Gst(f) => f.plane_data(0).expect("plane 0 of a packed frame"),
            FrameData::Raw(v) => v,
        }
    }
}

trait FrameSource {
    /// The next frame, or `None` at the end of the input.
    fn next_frame(&mut self) -> Result<Option<Frame>>;
    /// Number of frames, when the input says (asked after the first frame).
    fn total_frames(&self) -> Option<u64>;
    /// Stops producing (before the end is fine).
    fn stop(&mut self) {}
}

/// `uridecodebin ! videoconvert ! appsink` for files and streams.
struct DecodeSource {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    fps: Option<gst::Fraction>,
    input: String,
}

impl DecodeSource {
    fn new(input: &str) -> Result<Self> {
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
        let live = uri.starts_with("rtsp") || uri.starts_with("udp") || uri.starts_with("srt");
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
            .sync(false)
            .max_buffers(4)
            // A live stream does not wait for us: keep the newest frames.
            .drop(live)
            .build();
        pipeline.add_many([&decode, &convert, appsink.upcast_ref::<gst::Element>()])?;
        convert.link(&appsink)?;
        let convert_weak = convert.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let is_video = caps
                .structure(0)
                .is_some_and(|s| s.name().starts_with("video/"));
            let sink = convert
                .static_pad("sink")
                .expect("videoconvert has a sink pad");
            if is_video && !sink.is_linked() {
                let _ = pad.link(&sink);
            }
        });
        let source = Self {
            pipeline,
            appsink,
            fps: None,
            input: input.to_string(),
        };
        if source.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(source
                .bus_error()
                .unwrap_or_else(|| anyhow!("{input}: cannot play")));
        }
        Ok(source)
    }

    fn bus_error(&self) -> Option<anyhow::Error> {
        let bus = self.pipeline.bus()?;
        let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
        let gst::MessageView::Error(err) = msg.view() else {
            return None;
        };
        Some(anyhow!(
            "{}: {} ({})",
            self.input,
            err.error(),
            err.debug().map(|d| d.to_string()).unwrap_or_default()
        ))
    }
}

impl FrameSource for DecodeSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let sample = loop {
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
        };
        let caps = sample.caps().context("decoded sample without caps")?;
        let info = gst_video::VideoInfo::from_caps(caps).context("decoded caps")?;
        let buffer = sample
            .buffer_owned()
            .context("decoded sample without a buffer")?;
        let (pts, duration) = (buffer.pts(), buffer.duration());
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

    fn stop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for DecodeSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A folder of JPEG/PNG frames, in file-name order, at a fixed rate.
struct FolderSource {
    files: Vec<PathBuf>,
    next: usize,
    fps: gst::Fraction,
    frame: gst::ClockTime,
}

impl FolderSource {
    fn new(dir: &Path, fps: f64) -> Result<Self> {
        if !(fps > 0.0 && fps <= 1000.0) {
            bail!("--fps {fps}: must be in (0, 1000]");
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
            .ok_or_else(|| anyhow!("--fps {fps} is not a usable rate"))?;
        let frame = gst::ClockTime::SECOND
            .mul_div_round(fps.denom() as u64, fps.numer() as u64)
            .context("frame duration")?;
        Ok(Self {
            files,
            next: 0,
            fps,
            frame,
        })
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let Some(path) = self.files.get(self.next) else {
            return Ok(None);
        };
        let index = self.next as u64;
        self.next += 1;
        // A truncated JPEG or PNG decodes to grey without an error: refuse it by name. The
        // bytes are read once and decoded from memory.
        let bytes = derain::io::read_complete(path)?;
        let img = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .with_context(|| format!("opening {}", path.display()))?
            .decode()
            .with_context(|| format!("decoding {}", path.display()))?
            .to_rgba8();
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

/// `appsrc ! videoscale ! videoconvert ! I420 ! x264enc ! h264parse ! mux ! filesink`.
struct Encoder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    input: (u32, u32, gst::Fraction),
    output: PathBuf,
}

impl Encoder {
    fn new(
        output: &Path,
        muxer: &str,
        (width, height): (u32, u32),
        fps: gst::Fraction,
        quantizer: u32,
    ) -> Result<Self> {
        if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let make = |name: &str| {
            gst::ElementFactory::make(name)
                .build()
                .with_context(|| format!("GStreamer element `{name}` is missing"))
        };
        let appsrc = gst_app::AppSrc::builder()
            .caps(&rgbx_caps(width, height, fps)?)
            .format(gst::Format::Time)
            .block(true)
            .max_bytes(4 * width as u64 * height as u64 * 4)
            .build();
        let scale = make("videoscale")?;
        let convert = make("videoconvert")?;
        // x264enc wants even sizes in 4:2:0, and I420 keeps the file playable everywhere.
        let (even_w, even_h) = ((width & !1).max(2), (height & !1).max(2));
        let filter = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::I420)
                    .width(even_w as i32)
                    .height(even_h as i32)
                    .pixel_aspect_ratio(gst::Fraction::new(1, 1))
                    .build(),
            )
            .build()?;
        let x264 = make("x264enc").context("install gstreamer1.0-plugins-ugly")?;
        x264.set_property_from_str("pass", "qual");
        x264.set_property("quantizer", quantizer);
        x264.set_property_from_str("speed-preset", "faster");
        let parse = make("h264parse")?;
        let mux = make(muxer)?;
        let sink = gst::ElementFactory::make("filesink")
            .property(
                "location",
                output.to_str().context("output path is not UTF-8")?,
            )
            .build()?;
        let pipeline = gst::Pipeline::new();
        let chain = [
            appsrc.upcast_ref::<gst::Element>(),
            &scale,
            &convert,
            &filter,
            &x264,
            &parse,
            &mux,
            &sink,
        ];
        pipeline.add_many(chain)?;
        gst::Element::link_many(chain)?;
        let enc = Self {
            pipeline,
            appsrc,
            input: (width, height, fps),
            output: output.to_path_buf(),
        };
        if enc.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(enc.error_or("cannot start the encoder"));
        }
        Ok(enc)
    }

    /// Announces a new input size (scaled to the first one) or rate.
    fn set_input_size(&mut self, width: u32, height: u32, fps: gst::Fraction) -> Result<()> {
        if self.input != (width, height, fps) {
            self.appsrc.set_caps(Some(&rgbx_caps(width, height, fps)?));
            self.input = (width, height, fps);
        }
        Ok(())
    }

    fn push(&self, buffer: gst::Buffer) -> Result<()> {
        self.appsrc
            .push_buffer(buffer)
            .map_err(|flow| self.error_or(&format!("encoder refused a frame: {flow:?}")))?;
        Ok(())
    }

    /// Sends EOS and waits until the muxer has written the file.
    fn finish(self) -> Result<()> {
        self.appsrc
            .end_of_stream()
            .map_err(|flow| anyhow!("encoder: {flow:?}"))?;
        let bus = self.pipeline.bus().context("encoder bus")?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::NONE,
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let result = match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(err)) => Err(anyhow!(
                "writing {}: {} ({})",
                self.output.display(),
                err.error(),
                err.debug().map(|d| d.to_string()).unwrap_or_default()
            )),
            _ => Ok(()),
        };
        self.pipeline.set_state(gst::State::Null)?;
        result
    }

    fn error_or(&self, fallback: &str) -> anyhow::Error {
        let msg = self
            .pipeline
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]));
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(err)) => anyhow!(
                "writing {}: {} ({})",
                self.output.display(),
                err.error(),
                err.debug().map(|d| d.to_string()).unwrap_or_default()
            ),
            _ => anyhow!("writing {}: {fallback}", self.output.display()),
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Encodes planar frames (all the size of the first) to H.264 in MP4/MKV by extension.
pub fn encode_frames(output: &Path, frames: &[derain::PlanarRgb], fps: i32) -> Result<()> {
    gst::init()?;
    let first = frames.first().context("no frames to encode")?;
    let (w, h) = (first.width() as u32, first.height() as u32);
    let rate = gst::Fraction::new(fps, 1);
    let enc = Encoder::new(output, muxer_for(output)?, (w, h), rate, 20)?;
    let frame_ns = 1_000_000_000u64 / fps.max(1) as u64;
    for (i, f) in frames.iter().enumerate() {
        let mut bytes = vec![0u8; (w * h * 4) as usize];
        let mut fm = FrameMut::new(&mut bytes, w, h, w as usize * 4, PixelFormat::Rgbx)?;
        f.write_frame(&mut fm, None)?;
        let mut buf = gst::Buffer::from_mut_slice(bytes);
        {
            let b = buf.get_mut().context("fresh buffer")?;
            b.set_pts(gst::ClockTime::from_nseconds(i as u64 * frame_ns));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
        }
        enc.push(buf)?;
    }
    enc.finish()
}

fn rgbx_caps(width: u32, height: u32, fps: gst::Fraction) -> Result<gst::Caps> {
    Ok(
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgbx, width, height)
            .fps(fps)
            .build()
            .context("frame layout")?
            .to_caps()?,
    )
}
