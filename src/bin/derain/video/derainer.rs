//! What derains the frames of `derain video`: the library's pipeline one frame at a time
//! (`--in-flight 1`, the default), or its frame scheduler with several frames in flight on
//! replicated engines (two per listed `--devices` GPU), frames read from the decoder's mapped
//! buffers and written into the encoder's, in order.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use derain::physics::RunInfo;
use derain::{Config, FrameBuf, FrameMut, FrameRef, Scheduler};

use super::source::{Frame, FrameData};

impl AsRef<[u8]> for FrameData {
    fn as_ref(&self) -> &[u8] {
        match self {
            // Mapped and checked when the frame was read; cannot fail here.
            FrameData::Gst(f) => f.plane_data(0).unwrap_or(&[]),
            FrameData::Raw(v) => v,
        }
    }
}

/// An encoder buffer in flight, mapped; the derained pixels start at byte `offset` (past the
/// input's copy with `--side-by-side`).
pub struct OutBuf {
    map: gst::MappedBuffer<gst::buffer::Writable>,
    offset: usize,
}

impl AsRef<[u8]> for OutBuf {
    fn as_ref(&self) -> &[u8] {
        &self.map.as_slice()[self.offset..]
    }
}

impl AsMut<[u8]> for OutBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.map.as_mut_slice()[self.offset..]
    }
}

/// A derained frame ready for the encoder, and the time the engine spent on it.
pub struct Done {
    pub buffer: gst::Buffer,
    pub busy: Duration,
}

pub enum Derainer {
    Serial(Box<derain::Pipeline>),
    Flight(Box<Scheduler<FrameData, OutBuf>>),
}

impl Derainer {
    /// `in_flight` 1: a pipeline; more: the scheduler on `2 × max(1, devices)` engines (at
    /// most `in_flight`).
    pub fn new(config: Config, in_flight: usize) -> derain::Result<Self> {
        if in_flight <= 1 {
            return derain::Pipeline::new(config).map(|p| Derainer::Serial(Box::new(p)));
        }
        let engines = derain::pipeline::engines_for(&config, in_flight);
        log::info!("{in_flight} frames in flight on {engines} engines");
        Scheduler::new(config, engines, in_flight).map(|s| Derainer::Flight(Box::new(s)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Derainer::Serial(p) => p.backend_name(),
            Derainer::Flight(s) => s.backend_name(),
        }
    }

    /// Frames taken and not yet returned.
    pub fn pending(&self) -> usize {
        match self {
            Derainer::Serial(_) => 0,
            Derainer::Flight(s) => s.pending(),
        }
    }

    /// Derains `frame` into `out`, whose pixels (the frame's size and format) start at byte
    /// `offset`, rows `stride` apart. Returns the frames finished by this call, in order: this
    /// one at once with one frame in flight, else the oldest once the window is full.
    pub fn submit(
        &mut self,
        frame: Frame,
        out: gst::Buffer,
        offset: usize,
        stride: usize,
    ) -> Result<Vec<Done>> {
        let (w, h, format) = (frame.width, frame.height, frame.format);
        match self {
            Derainer::Serial(p) => {
                let mut out = out;
                let t = Instant::now();
                {
                    let b = out.get_mut().context("output buffer not writable")?;
                    let mut map = b.map_writable().context("mapping a frame")?;
                    let input = FrameRef::new(frame.data(), w, h, frame.stride, format)?;
                    let mut output =
                        FrameMut::new(&mut map.as_mut_slice()[offset..], w, h, stride, format)?;
                    p.process(&input, &mut output)?;
                }
                Ok(vec![Done {
                    buffer: out,
                    busy: t.elapsed(),
                }])
            }
            Derainer::Flight(s) => {
                let input = FrameBuf::new(frame.data, w, h, frame.stride, format)?;
                let map = out
                    .into_mapped_buffer_writable()
                    .map_err(|_| anyhow::anyhow!("mapping an output frame"))?;
                let output = FrameBuf::new(OutBuf { map, offset }, w, h, stride, format)?;
                let done = s.push(input, output)?;
                Ok(done.into_iter().map(finished).collect())
            }
        }
    }

    /// Every frame still in flight, in order (end of the input, a size change).
    pub fn drain(&mut self) -> Result<Vec<Done>> {
        let mut all = Vec::new();
        if let Derainer::Flight(s) = self {
            while let Some(f) = s.pop() {
                all.push(finished(f?));
            }
        }
        Ok(all)
    }
}

fn finished(f: derain::pipeline::Finished<FrameData, OutBuf>) -> Done {
    Done {
        buffer: f.output.into_data().map.into_buffer(),
        busy: busy(&f.run),
    }
}

/// The engine's time on a frame: the sum of its stage times.
fn busy(run: &RunInfo) -> Duration {
    Duration::from_secs_f64(run.timings.total_ms() / 1e3)
}
