//! One camera of `derain serve`: a thread that opens the source, derains each frame on the
//! shared engines and publishes it to the camera's [`Output`]; a source that fails, ends or
//! stalls is opened again with backoff while the other cameras go on.
//!
//! A live source keeps only its newest decoded frame: when the engines are busy the older one
//! is dropped (and counted), so a stream's latency never grows. A file is played in a loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use derain::engine::EnginePool;
use derain::synth::video::{RainVideo, VideoParams};
use derain::synth::{RainParams, RainRange, Style};
use derain::{FrameMut, FrameRef, Pipeline, PixelFormat};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::rtsp::Output;
use super::settings::{Camera, Source};
use super::stats::State;
use crate::video::source::{DecodeOptions, DecodeSource, Frame, FrameData, FrameSource};
use crate::video::stop::Stop;

/// Longest wait between two attempts to open a camera: a camera that comes back is served
/// again within this long.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Built-in synthetic heavy rain over the demo photo, paced in real time: a 2-second loop of
/// rain that falls through the frame, with a few objects crossing the scene.
pub struct DemoSource {
    video: RainVideo,
    frames: Vec<Option<Vec<u8>>>,
    next: u64,
    start: Instant,
    fps: f64,
    stop: Stop,
}

impl DemoSource {
    pub fn new(width: u32, height: u32, fps: f64, seed: u64, stop: Stop) -> Result<Self> {
        let photo = crate::demo::decode_photo()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let range = RainRange {
            style: Style::Layered,
            intensity: (0.8, 0.8),
        };
        let rain = RainParams::sample(&mut rng, &range)?;
        let frames = ((2.0 * fps).round() as usize).clamp(2, 120);
        let video = RainVideo::new(
            &photo,
            VideoParams {
                frames,
                width: width as usize,
                height: height as usize,
                rain,
                pan_px: (0.0, 0.0),
                zoom: 1.0,
                exposure: 0.8,
                veil_variation: 0.1,
                veil_period_frames: frames as f32,
                shake_px: 0.0,
                objects: 2,
            },
        )?;
        Ok(Self {
            video,
            frames: vec![None; frames],
            next: 0,
            start: Instant::now(),
            fps,
            stop,
        })
    }
}

impl FrameSource for DemoSource {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let due = self.start + Duration::from_secs_f64(self.next as f64 / self.fps);
        loop {
            if self.stop.requested().is_some() {
                return Ok(None);
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
        let i = (self.next % self.frames.len() as u64) as usize;
        let (w, h) = (self.video.params().width, self.video.params().height);
        if self.frames[i].is_none() {
            let mut sample = self.video.frame(i)?;
            sample.quantize();
            let mut data = vec![0u8; w * h * 4];
            let mut frame = FrameMut::new(&mut data, w as u32, h as u32, w * 4, PixelFormat::Rgbx)?;
            sample.input.write_frame(&mut frame, None)?;
            self.frames[i] = Some(data);
        }
        let data = self.frames[i].clone().expect("rendered above");
        let fps = gst::Fraction::approximate_f64(self.fps).unwrap_or(gst::Fraction::new(15, 1));
        let period = gst::ClockTime::from_nseconds((1e9 / self.fps) as u64);
        let pts = period * self.next;
        self.next += 1;
        Ok(Some(Frame {
            data: FrameData::Raw(data),
            width: w as u32,
            height: h as u32,
            stride: w * 4,
            format: PixelFormat::Rgbx,
            pts: Some(pts),
            duration: Some(period),
            fps,
        }))
    }

    fn total_frames(&self) -> Option<u64> {
        None
    }
}

/// What a camera thread needs besides its camera.
pub struct CameraContext {
    /// `None` when every camera is passed through.
    pub pool: Option<Arc<EnginePool>>,
    pub output: Arc<Output>,
    pub stop: Stop,
    pub decode: DecodeOptions,
    /// Seed of a `demo` source's rain.
    pub seed: u64,
}

fn open(cam: &Camera, ctx: &CameraContext) -> Result<(Box<dyn FrameSource>, bool)> {
    match &cam.source {
        Source::Demo { width, height, fps } => Ok((
            Box::new(DemoSource::new(
                *width,
                *height,
                *fps,
                ctx.seed,
                ctx.stop.clone(),
            )?),
            true,
        )),
        Source::Uri(uri) => {
            let s = DecodeSource::new(uri, ctx.stop.clone(), ctx.decode)?;
            let live = s.is_live();
            Ok((Box::new(s), live))
        }
    }
}

/// Derains (or copies) one frame into a new buffer for the output.
fn render(frame: &Frame, pipeline: Option<&mut Pipeline>) -> Result<(gst::Buffer, bool)> {
    let (w, h) = (frame.width, frame.height);
    let stride = w as usize * 4;
    let mut buffer = gst::Buffer::with_size(stride * h as usize).context("allocating a frame")?;
    let mut failed = false;
    {
        let buf = buffer.get_mut().expect("a new buffer is writable");
        let mut map = buf.map_writable().context("mapping a frame")?;
        let input = FrameRef::new(frame.data(), w, h, frame.stride, frame.format)?;
        let mut output = FrameMut::new(map.as_mut_slice(), w, h, stride, PixelFormat::Rgbx)?;
        match pipeline {
            Some(p) => {
                if let Err(e) = p.process(&input, &mut output) {
                    // The stream goes on with the frame as it came.
                    log::warn!("derain failed on a {w}x{h} frame ({e}); sent as it came");
                    output.copy_from(&input)?;
                    failed = true;
                }
            }
            None => output.copy_from(&input)?,
        }
    }
    Ok((buffer, failed))
}

/// Runs one camera until a stop.
pub fn run(cam: Camera, ctx: CameraContext) {
    let stats = ctx.output.stats.clone();
    let mut pipeline = match (&ctx.pool, cam.passthrough) {
        (Some(pool), false) => match Pipeline::with_pool(cam.config.clone(), pool.clone()) {
            Ok(p) => Some(p),
            Err(e) => {
                log::error!("{}: {e}; served as it comes", cam.name);
                None
            }
        },
        _ => None,
    };
    let mut backoff = Duration::from_secs(1);
    let mut first = true;
    while ctx.stop.requested().is_none() {
        stats.update(|c| {
            c.state = if first {
                State::Connecting
            } else {
                State::Reconnecting
            }
        });
        let why = match open(&cam, &ctx) {
            Err(e) => e,
            Ok((mut source, live)) => {
                let (why, got) = stream(&cam, &ctx, source.as_mut(), pipeline.as_mut());
                source.stop();
                drop(source);
                if let Some(p) = pipeline.as_mut() {
                    // The next connection may show another scene: start the state afresh.
                    p.reset();
                }
                if got {
                    backoff = Duration::from_secs(1);
                    if why.is_some() || live {
                        stats.update(|c| c.drops += u64::from(ctx.stop.requested().is_none()));
                    }
                }
                match why {
                    None if ctx.stop.requested().is_some() => break,
                    // A file plays in a loop.
                    None if !live && got => {
                        log::debug!("{}: {} ended; playing it again", cam.name, cam.source);
                        continue;
                    }
                    None => anyhow!("the stream ended"),
                    Some(e) => e,
                }
            }
        };
        if ctx.stop.requested().is_some() {
            break;
        }
        first = false;
        let message = format!("{why:#}");
        stats.update(|c| {
            c.reconnect_attempts += 1;
            c.state = State::Reconnecting;
            c.last_error = Some(message.clone());
        });
        // The source's errors name it already.
        log::warn!(
            "{}: {message}; trying again in {} s",
            cam.name,
            backoff.as_secs()
        );
        if ctx.stop.wait(backoff) {
            break;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    stats.update(|c| c.state = State::Stopped);
}

/// Reads, derains and publishes frames until the source ends (`None`), fails (`Some`) or a
/// stop; also says whether any frame came.
fn stream(
    cam: &Camera,
    ctx: &CameraContext,
    source: &mut dyn FrameSource,
    mut pipeline: Option<&mut Pipeline>,
) -> (Option<anyhow::Error>, bool) {
    let stats = &ctx.output.stats;
    let mut got = false;
    let base = stats.update(|c| c.frames_in);
    loop {
        let frame = match source.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => return (None, got),
            Err(e) => return (Some(e), got),
        };
        let pulled = Instant::now();
        if !got {
            // Back after a drop or failed attempts (not the first connection, not a loop).
            stats.update(|c| c.reconnects += u64::from(c.state == State::Reconnecting));
            log::info!(
                "{}: {} live, {}x{}",
                cam.name,
                cam.source,
                frame.width,
                frame.height
            );
        }
        got = true;
        let arrived = source.frames_arrived();
        let t = Instant::now();
        let (buffer, failed) = match render(&frame, pipeline.as_deref_mut()) {
            Ok(r) => r,
            Err(e) => return (Some(e), got),
        };
        let derain = t.elapsed();
        ctx.output
            .publish(buffer, (frame.width, frame.height), frame.fps);
        let run = pipeline.as_ref().and_then(|p| p.last_run());
        stats.update(|c| {
            c.state = State::Live;
            (c.width, c.height) = (frame.width, frame.height);
            c.frames_in = match arrived {
                Some(n) => (base + n).max(c.frames_out + 1),
                None => c.frames_in + 1,
            };
            c.timed(pulled.elapsed(), derain);
            c.frames_out += 1;
            c.errors += failed as u64;
            c.last_frame = Some(Instant::now());
            if let Some(r) = run {
                c.rain_level = r.veil;
                c.mean_transmission = r.mean_transmission;
                c.atmosphere = r.atmosphere;
            }
        });
    }
}
