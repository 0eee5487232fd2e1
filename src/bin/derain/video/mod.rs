//! `derain video IN -o OUT [--mode M] [--side-by-side]`: a video file, a folder of frames or a
//! stream (rtsp://...) → derain → H.264 in MP4 or Matroska (by the extension of OUT).
//!
//! Two GStreamer pipelines with this program in between:
//! - decode: `uridecodebin ! videoconvert ! appsink` (RGBx), or for a folder the `image` crate
//!   reads the JPEG/PNG files in name order at `--fps`;
//! - each frame goes through [`derain::Pipeline::process`] here, in Rust, straight from the
//!   mapped buffer into the output buffer (and, with `--side-by-side`, next to a copy of the
//!   input); with `--in-flight K` through the frame scheduler, K frames at once (derainer.rs);
//! - encode: `appsrc ! videoscale ! videoconvert ! I420 ! x264enc ! h264parse ! mp4mux|matroskamux
//!   ! filesink`. A resolution change mid-stream is scaled to the first frame's size.
//!
//! A live source (rtsp://) keeps only the newest frames when derain cannot keep up; stop it with
//! `--max-frames`, `--duration` or Ctrl-C. Every way out goes through one ending: the source
//! stops, the encoder gets EOS and the file is finished (MP4 included), then the exit code says
//! what happened ([`exit`], `derain video --help`). A stream that drops is opened again with
//! `--reconnect`. Only a failing output leaves an unfinished file: nothing more can be
//! written to it.

mod derainer;
mod encoder;
pub mod source;
pub mod stop;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use derain::FrameRef;
use gst::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use super::Exit;
use super::common::{EngineArgs, STREAMS};
use derainer::Derainer;
use encoder::Encoder;
pub use encoder::encode_frames;
use source::{DecodeOptions, DecodeSource, FolderSource, FrameSource};
use stop::Stop;

/// Exit codes of `derain video` besides 0 (the input ended, or `--max-frames`/`--duration`
/// was reached), 1 (nothing was written) and 2 (bad arguments).
pub mod exit {
    /// The input failed or dropped mid-stream; the frames before were written and the file
    /// is finished.
    pub const INPUT_FAILED: u8 = 3;
    /// Writing the output failed (encoder, disk); what the container holds may be unfinished.
    pub const OUTPUT_FAILED: u8 = 4;
}

/// Arguments of `derain video`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the input ended or a limit (--max-frames, --duration) was \
    reached; 1 nothing was written (bad input, ...); 2 bad arguments; 3 the input failed or \
    dropped mid-stream, the frames before it are in a finished file; 4 writing the output \
    failed; 130/143 stopped by SIGINT (Ctrl-C)/SIGTERM, the file is finished (a second signal \
    ends at once)."
)]
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
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_frames: Option<u64>,
    /// Stop after this many seconds of video (stream time).
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// A stream (rtsp://, udp://, ...) that fails, ends or stalls is opened again, with
    /// backoff (1, 2, 4 ... 30 s), until a stop; the gap is left out of the file.
    #[arg(long)]
    pub reconnect: bool,
    /// A stream that sends no frame for this many seconds has dropped.
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    pub stall_timeout: f64,
    /// x264 quantizer in constant-quality mode: lower is better and bigger (0-50).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=50))]
    pub quantizer: u32,
    /// Use the frames before each one: `off`, `on` (fixed cameras: static parts come from
    /// the recent frames) or `auto` (on, following a camera that pans or shakes).
    #[arg(long, default_value = "off")]
    pub temporal: derain::TemporalMode,
    /// Frames derained at once (1..=16): above 1, on replicated engines (two per GPU in
    /// --devices), written in order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub in_flight: u16,
    /// GPUs the engines spread over with --in-flight, e.g. `0,1` [default: device 0].
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<usize>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// A positive number of seconds below [`MAX_SECONDS`](super::common::MAX_SECONDS).
fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    use super::common::MAX_SECONDS;
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < MAX_SECONDS => Ok(v),
        Ok(v) if v >= MAX_SECONDS => {
            Err(format!("`{s}`: at most {MAX_SECONDS} seconds (115 days)"))
        }
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// Why the frame loop ended.
enum End {
    /// End of the input, or a limit reached.
    Done,
    Stopped(stop::Signal),
    InputFailed(anyhow::Error),
    OutputFailed(anyhow::Error),
}

/// Opens the input; a stream is retried with backoff when `reconnect` is on.
fn open(a: &VideoArgs, stop: &Stop, mode: derain::pipeline::Mode) -> Result<Box<dyn FrameSource>> {
    if Path::new(&a.input).is_dir() {
        return Ok(Box::new(FolderSource::new(
            Path::new(&a.input),
            a.fps,
            mode,
            stop.clone(),
        )?));
    }
    let options = DecodeOptions::recording(Duration::from_secs_f64(a.stall_timeout));
    Ok(Box::new(DecodeSource::new(
        &a.input,
        stop.clone(),
        options,
    )?))
}

/// Waits and opens the stream again until it works or a stop is asked for.
fn reopen(a: &VideoArgs, stop: &Stop, why: &anyhow::Error) -> Option<Box<dyn FrameSource>> {
    let mut wait = 1u64;
    let mut attempt = 1u32;
    log::warn!("{}: dropped ({why:#}); reconnecting", a.input);
    loop {
        log::warn!("{}: reconnect attempt {attempt} in {wait} s", a.input);
        if stop.wait(Duration::from_secs(wait)) {
            return None;
        }
        let options = DecodeOptions::recording(Duration::from_secs_f64(a.stall_timeout));
        match DecodeSource::new(&a.input, stop.clone(), options) {
            Ok(s) => {
                log::info!("{}: reconnected (attempt {attempt})", a.input);
                return Some(Box::new(s));
            }
            Err(e) => log::warn!("{}: {e:#}", a.input),
        }
        wait = (wait * 2).min(30);
        attempt += 1;
    }
}

/// Runs `derain video`.
pub fn run(a: VideoArgs) -> Result<()> {
    gst::init().context("initialising GStreamer")?;
    let muxer = muxer_for(&a.output)?;
    if super::common::same_path(Path::new(&a.input), &a.output) {
        bail!(
            "the output {} is the input: the derained video would replace the rainy one",
            a.output.display()
        );
    }
    let live = source::is_live(&a.input);
    if a.reconnect && !live {
        bail!(
            "--reconnect is for streams (rtsp://, udp://, srt://, rtmp://, v4l2://), not for {}",
            a.input
        );
    }
    let mut config = a.engine.config(STREAMS);
    config.temporal = a.temporal;
    config.devices = a.devices.clone();
    let mode = config.mode;
    let mut derainer = Derainer::new(config, a.in_flight.into())?;
    let stop = Stop::install()?;
    let mut source = open(&a, &stop, mode)?;

    let bar = ProgressBar::new_spinner();
    let mut encoder: Option<Encoder> = None;
    // Output time = input time - `first` + `base`; a reconnect starts a new `first` and moves
    // `base` to the end of what was written.
    let mut first_pts = None;
    let mut base = gst::ClockTime::ZERO;
    let mut written_end = gst::ClockTime::ZERO;
    let limit = a.duration.map(gst::ClockTime::from_seconds_f64);
    let mut frames = 0u64;
    let mut submitted = 0u64;
    let mut last_size = None;
    let mut derain_time = Duration::ZERO;
    let started = Instant::now();
    let mut warned_audio = false;
    let end = loop {
        if let Some(sig) = stop.requested() {
            break End::Stopped(sig);
        }
        if a.max_frames.is_some_and(|m| submitted >= m) {
            break End::Done;
        }
        let frame = source.next_frame();
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) if stop.requested().is_some() => continue,
            Ok(None) | Err(_) if a.reconnect => {
                let why = match frame {
                    Err(e) => e,
                    Ok(_) => anyhow!("the stream ended"),
                };
                // The old connection is closed first (a UDP port, a camera's session).
                source.stop();
                if let Some(s) = reopen(&a, &stop, &why) {
                    source = s;
                    (first_pts, base) = (None, written_end);
                }
                continue;
            }
            Ok(None) => break End::Done,
            Err(e) => break End::InputFailed(e),
        };
        let (w, h) = (frame.width, frame.height);
        let out_w = if a.side_by_side { 2 * w } else { w };
        let first = *first_pts.get_or_insert(frame.pts.unwrap_or(gst::ClockTime::ZERO));
        let pts = frame.pts.map(|p| p.saturating_sub(first) + base);
        let duration = frame.duration.or_else(|| {
            (frame.fps.numer() > 0).then(|| {
                gst::ClockTime::SECOND
                    .mul_div_round(frame.fps.denom() as u64, frame.fps.numer() as u64)
                    .unwrap_or(gst::ClockTime::ZERO)
            })
        });
        if let (Some(limit), Some(p)) = (limit, pts)
            && p >= limit
        {
            break End::Done;
        }
        if out_w < encoder::MIN_SIDE || h < encoder::MIN_SIDE {
            let e = anyhow!(
                "{}: frames of {out_w}x{h}: the H.264 encoder needs at least {m}x{m} pixels",
                a.input,
                m = encoder::MIN_SIDE
            );
            match encoder {
                // Nothing written yet: no file is made (exit 1).
                None => return Err(e),
                // A stream that shrank: what came before is finished (exit 3).
                Some(_) => break End::InputFailed(e),
            }
        }
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
        if !warned_audio && source.has_audio() {
            warned_audio = true;
            log::warn!(
                "{}: the audio track is not copied to {} (derain video writes video only)",
                a.input,
                a.output.display()
            );
        }
        let enc = encoder.as_mut().expect("created above");
        if last_size.replace((w, h)).is_some_and(|s| s != (w, h)) && derainer.pending() > 0 {
            // The frames in flight are written at their own size first.
            let done = derainer.drain()?;
            if let Err(e) = write(enc, done, &mut frames, &mut derain_time, &bar) {
                break End::OutputFailed(e);
            }
        }
        if let Err(e) = enc.set_input_size(out_w, h, frame.fps) {
            break End::OutputFailed(e);
        }

        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgbx, out_w, h)
            .build()
            .context("output frame layout")?;
        let mut out = gst::Buffer::with_size(info.size()).context("allocating a frame")?;
        let stride = info.stride()[0] as usize;
        let right = {
            let out = out.get_mut().expect("new buffer is writable");
            out.set_pts(pts);
            out.set_duration(duration);
            if a.side_by_side {
                let mut map = out.map_writable().context("mapping a frame")?;
                let input = FrameRef::new(frame.data(), w, h, frame.stride, frame.format)?;
                let data = map.as_mut_slice();
                let row = w as usize * 4;
                for y in 0..h as usize {
                    data[y * stride..][..row].copy_from_slice(input.row(y));
                }
                row
            } else {
                0
            }
        };
        let done = derainer.submit(frame, out, right, stride)?;
        submitted += 1;
        if let Some(p) = pts {
            written_end = p + duration.unwrap_or(gst::ClockTime::ZERO);
        }
        if let Err(e) = write(enc, done, &mut frames, &mut derain_time, &bar) {
            break End::OutputFailed(e);
        }
    };
    // The frames still in flight go into the file, whatever ended the input.
    let end = match (end, encoder.as_mut()) {
        (End::OutputFailed(e), _) => End::OutputFailed(e),
        (end, Some(enc)) if derainer.pending() > 0 => {
            let done = derainer.drain()?;
            match write(enc, done, &mut frames, &mut derain_time, &bar) {
                Ok(()) => end,
                Err(e) => End::OutputFailed(e),
            }
        }
        (end, _) => end,
    };
    // Asked before the source stops: a stopped pipeline knows no duration.
    let early = matches!(end, End::Done)
        .then(|| source.ended_early())
        .flatten()
        .filter(|_| a.max_frames.is_none_or(|m| frames < m) && limit.is_none());
    source.stop();
    drop(source);
    bar.finish_and_clear();
    let out = a.output.display();
    let Some(encoder) = encoder else {
        return match end {
            End::InputFailed(e) => Err(e.context(format!("{}: no frame was written", a.input))),
            End::Stopped(sig) => Err(Exit::with_code(
                sig.exit_code(),
                anyhow!(
                    "stopped by {} before the first frame; nothing was written",
                    sig.name()
                ),
            )),
            _ => bail!("{}: the input holds no video frames", a.input),
        };
    };
    if let End::OutputFailed(e) = end {
        drop(encoder);
        return Err(Exit::with_code(
            exit::OUTPUT_FAILED,
            e.context(format!("after {frames} frames; {out} is not finished")),
        ));
    }
    if let Err(e) = encoder.finish() {
        return Err(Exit::with_code(
            exit::OUTPUT_FAILED,
            e.context(format!("finishing {out} after {frames} frames")),
        ));
    }
    if let Some(warning) = early {
        log::warn!("{warning} ({frames} frames written to {out})");
    }
    let secs = started.elapsed().as_secs_f64();
    let summary = format!(
        "{} -> {out}: {frames} frames in {secs:.1} s ({:.1} fps overall; derain {:.1} ms/frame{} on {})",
        a.input,
        frames as f64 / secs,
        derain_time.as_secs_f64() * 1e3 / frames.max(1) as f64,
        if a.in_flight > 1 {
            format!(" in the engines, {} frames in flight", a.in_flight)
        } else {
            String::new()
        },
        derainer.backend_name()
    );
    match end {
        End::Done => {
            println!("{summary}");
            Ok(())
        }
        End::Stopped(sig) => {
            println!("{summary}");
            Err(Exit::with_code(
                sig.exit_code(),
                anyhow!(
                    "stopped by {} after {frames} frames; {out} is finished and playable",
                    sig.name()
                ),
            ))
        }
        End::InputFailed(e) => Err(Exit::with_code(
            exit::INPUT_FAILED,
            e.context(format!(
                "{}: the input failed after {frames} frames; those {frames} frames were written \
                 to {out} (a finished, playable file)",
                a.input
            )),
        )),
        End::OutputFailed(_) => unreachable!("returned above"),
    }
}

/// Hands derained frames to the encoder, in order, counting them.
fn write(
    enc: &mut Encoder,
    done: Vec<derainer::Done>,
    frames: &mut u64,
    derain_time: &mut Duration,
    bar: &ProgressBar,
) -> Result<()> {
    for d in done {
        *derain_time += d.busy;
        enc.push(d.buffer)?;
        *frames += 1;
        bar.inc(1);
    }
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
