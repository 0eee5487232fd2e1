//! Where `derain video` writes: `appsrc ! videoscale ! videoconvert ! I420 ! x264enc !
//! h264parse ! mp4mux|matroskamux ! filesink`.
//!
//! The appsrc does not block: [`Encoder::push`] waits itself while the queue is full and reads
//! the bus as it waits, so an encoder or a disk that fails is an error within a tenth of a
//! second instead of a push that never returns.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use derain::{FrameMut, PixelFormat};
use gst::prelude::*;

/// The smallest side x264 encodes (a 16×16 macroblock; smaller frames fail to negotiate or
/// stall), after the size is made even.
pub const MIN_SIDE: u32 = 16;

/// Frames the encoder may hold before [`Encoder::push`] waits.
const QUEUE_FRAMES: u64 = 4;
/// The encoder must take a frame, or finish the file, within this long.
const STALL: Duration = Duration::from_secs(60);

/// The output side of `derain video` (see the module notes).
pub struct Encoder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    input: (u32, u32, gst::Fraction),
    output: PathBuf,
}

impl Encoder {
    pub fn new(
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
            .block(false)
            .max_bytes(QUEUE_FRAMES * width as u64 * height as u64 * 4)
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
    pub fn set_input_size(&mut self, width: u32, height: u32, fps: gst::Fraction) -> Result<()> {
        if self.input != (width, height, fps) {
            self.appsrc.set_caps(Some(&rgbx_caps(width, height, fps)?));
            self.input = (width, height, fps);
        }
        Ok(())
    }

    /// Queues a frame; waits while the encoder holds [`QUEUE_FRAMES`], and returns the
    /// pipeline's error as soon as one is posted (a failing encoder, a full disk).
    pub fn push(&self, buffer: gst::Buffer) -> Result<()> {
        let bus = self.pipeline.bus().context("encoder bus")?;
        let since = Instant::now();
        loop {
            // A pending error is returned at once; while the queue is full, wait for one 5 ms.
            let full = self.appsrc.current_level_bytes() >= self.appsrc.max_bytes();
            let wait = gst::ClockTime::from_mseconds(if full { 5 } else { 0 });
            if let Some(msg) = bus.timed_pop_filtered(wait, &[gst::MessageType::Error]) {
                return Err(self.describe(&msg));
            }
            if !full {
                break;
            }
            if since.elapsed() > STALL {
                return Err(anyhow!(
                    "writing {}: the encoder took no frame for {} s",
                    self.output.display(),
                    STALL.as_secs()
                ));
            }
        }
        self.appsrc
            .push_buffer(buffer)
            .map_err(|flow| self.error_or(&format!("encoder refused a frame: {flow:?}")))?;
        Ok(())
    }

    /// Sends EOS and waits until the muxer has written the file.
    pub fn finish(self) -> Result<()> {
        self.appsrc
            .end_of_stream()
            .map_err(|flow| anyhow!("encoder: {flow:?}"))?;
        let bus = self.pipeline.bus().context("encoder bus")?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(STALL.as_secs()),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        let result = match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(_)) => Err(self.describe(msg.as_ref().expect("seen"))),
            Some(_) => Ok(()),
            None => Err(anyhow!(
                "writing {}: the encoder did not finish the file within {} s",
                self.output.display(),
                STALL.as_secs()
            )),
        };
        self.pipeline.set_state(gst::State::Null)?;
        result
    }

    fn describe(&self, msg: &gst::Message) -> anyhow::Error {
        match msg.view() {
            gst::MessageView::Error(err) => anyhow!(
                "writing {}: {} ({})",
                self.output.display(),
                err.error(),
                err.debug().map(|d| d.to_string()).unwrap_or_default()
            ),
            _ => anyhow!("writing {}: the encoder stopped", self.output.display()),
        }
    }

    fn error_or(&self, fallback: &str) -> anyhow::Error {
        let msg = self
            .pipeline
            .bus()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]));
        match msg {
            Some(m) => self.describe(&m),
            None => anyhow!("writing {}: {fallback}", self.output.display()),
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
    let enc = Encoder::new(output, super::muxer_for(output)?, (w, h), rate, 20)?;
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
