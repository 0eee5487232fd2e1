//! Device planes and pinned host buffers, allocated once per frame size and reused for every
//! frame after it (a stream of one size allocates nothing per frame).

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaEvent, CudaSlice, CudaStream, DeviceRepr, PinnedHostSlice, ValidAsZeroBits,
    sys,
};

use super::launch::driver;
use crate::error::Result;

/// Which way a pinned buffer is used: write-combined memory is fast for the host to write and
/// the device to read (uploads) but very slow for the host to read, so downloads use plain
/// page-locked memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Host writes, device reads.
    Upload,
    /// Device writes, host reads.
    Download,
}

/// `len` zeroed elements of device memory on `stream`.
fn device<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<CudaSlice<T>> {
    stream
        .alloc_zeros::<T>(len.max(1))
        .map_err(|e| driver("allocating device memory", e))
}

/// `len` zeroed elements of page-locked host memory, write-combined for uploads.
fn pinned<T: DeviceRepr + ValidAsZeroBits + Copy + Default>(
    ctx: &Arc<CudaContext>,
    len: usize,
    dir: Direction,
) -> Result<PinnedHostSlice<T>> {
    let flags = match dir {
        Direction::Upload => sys::CU_MEMHOSTALLOC_WRITECOMBINED,
        Direction::Download => 0,
    };
    // SAFETY: the memory is uninitialised until the fill below, and nothing reads it before;
    // T is plain data (u8, f32) for which zero bits are valid.
    let mut p = unsafe { ctx.alloc_pinned_with_flags::<T>(len.max(1), flags) }
        .map_err(|e| driver("allocating pinned host memory", e))?;
    p.as_mut_slice()
        .map_err(|e| driver("pinned host memory", e))?
        .fill(T::default());
    Ok(p)
}

/// The value in `slot` if `fits` accepts it, else a new one from `make` (the old one is freed
/// first, so peak memory stays at one copy).
fn reuse<X>(
    slot: &mut Option<X>,
    fits: impl FnOnce(&X) -> bool,
    make: impl FnOnce() -> Result<X>,
) -> Result<&mut X> {
    let x = match slot.take() {
        Some(x) if fits(&x) => x,
        old => {
            drop(old);
            make()?
        }
    };
    Ok(slot.insert(x))
}

/// `slot`'s pinned buffer if it holds `len` elements, else a new one.
pub(crate) fn fit_pinned<'a, T: DeviceRepr + ValidAsZeroBits + Copy + Default>(
    slot: &'a mut Option<PinnedHostSlice<T>>,
    ctx: &Arc<CudaContext>,
    len: usize,
    dir: Direction,
) -> Result<&'a mut PinnedHostSlice<T>> {
    reuse(slot, |b| b.len() == len.max(1), || pinned(ctx, len, dir))
}

/// Device memory and its page-locked host twin, `len` elements each.
pub(crate) struct Staged<T: DeviceRepr> {
    pub dev: CudaSlice<T>,
    pub host: PinnedHostSlice<T>,
}

impl<T: DeviceRepr + ValidAsZeroBits + Copy + Default> Staged<T> {
    fn new(
        stream: &Arc<CudaStream>,
        ctx: &Arc<CudaContext>,
        len: usize,
        dir: Direction,
    ) -> Result<Self> {
        Ok(Self {
            dev: device(stream, len)?,
            host: pinned(ctx, len, dir)?,
        })
    }

    /// `slot`'s buffers if they hold `len` elements, else new ones.
    pub(crate) fn fit<'a>(
        slot: &'a mut Option<Self>,
        stream: &Arc<CudaStream>,
        ctx: &Arc<CudaContext>,
        len: usize,
        dir: Direction,
    ) -> Result<&'a mut Self> {
        reuse(
            slot,
            |b| b.dev.len() == len.max(1),
            || Self::new(stream, ctx, len, dir),
        )
    }
}

/// The sizes that fix a slot's per-frame buffers: the frame's pixel count and the
/// low-resolution grid's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameSize {
    /// Pixels of the frame (w × h).
    pub n: usize,
    /// Pixels of the low-resolution estimation grid (lw × lh).
    pub ln: usize,
}

/// The buffers every frame uses, sized once per [`FrameSize`].
pub(crate) struct FrameBuffers {
    size: FrameSize,
    /// The input as planar R, G, B (3n).
    pub rgb: CudaSlice<f32>,
    /// Downsampled R, G, B and residue (4ln), downloaded for the host estimation.
    pub lo: Staged<f32>,
    /// Decomposition (6 planes) and transmission (2 planes) coefficients (8ln), uploaded.
    pub coef: Staged<f32>,
    /// The achromatic high-frequency layer (n).
    pub achro: CudaSlice<f32>,
    /// The luma of the low-frequency layer (n).
    pub luma: CudaSlice<f32>,
}

impl FrameBuffers {
    /// `slot`'s buffers if they were made for `size`, else new ones.
    pub(crate) fn fit<'a>(
        slot: &'a mut Option<Self>,
        stream: &Arc<CudaStream>,
        ctx: &Arc<CudaContext>,
        size: FrameSize,
    ) -> Result<&'a mut Self> {
        reuse(
            slot,
            |b| b.size == size,
            || {
                let FrameSize { n, ln } = size;
                Ok(Self {
                    size,
                    rgb: device(stream, 3 * n)?,
                    lo: Staged::new(stream, ctx, 4 * ln, Direction::Download)?,
                    coef: Staged::new(stream, ctx, 8 * ln, Direction::Upload)?,
                    achro: device(stream, n)?,
                    luma: device(stream, n)?,
                })
            },
        )
    }
}

/// A slot's buffers. Those of the frame are always used; the others belong to one kind of
/// input or output and are made at the first frame that needs them. Each is kept while the
/// sizes stay the same, so a stream of one size allocates nothing per frame.
#[derive(Default)]
pub(crate) struct SlotBuffers {
    pub frame: Option<FrameBuffers>,
    /// A packed 8-bit input frame (upload).
    pub packed_in: Option<Staged<u8>>,
    /// A planar f32 input image, staged for its upload into `frame.rgb`.
    pub planar_in: Option<PinnedHostSlice<f32>>,
    /// The packed 8-bit output frame (download).
    pub packed_out: Option<Staged<u8>>,
    /// J (3 planes), T and S for component output (5n, download).
    pub planes_out: Option<Staged<f32>>,
}

/// Start and end events of each stage of the frame in a slot, created on first profiled use.
#[derive(Default)]
pub(crate) struct StageTimer {
    events: Vec<CudaEvent>,
    /// Which stages were recorded for the frame in the slot.
    recorded: [bool; STAGES.len()],
}

impl StageTimer {
    /// Forgets the stages of the previous frame.
    pub(crate) fn reset(&mut self) {
        self.recorded = [false; STAGES.len()];
    }

    /// Records the start (`end` false) or end of `stage` on `stream` when profiling.
    pub(crate) fn mark(
        &mut self,
        stream: &Arc<CudaStream>,
        stage: Stage,
        end: bool,
        profile: bool,
    ) -> Result<()> {
        if !profile {
            return Ok(());
        }
        if self.events.is_empty() {
            let ctx = stream.context().clone();
            for _ in 0..2 * STAGES.len() {
                self.events.push(
                    ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                        .map_err(|e| driver("creating a timing event", e))?,
                );
            }
        }
        let i = 2 * stage as usize + end as usize;
        self.events[i]
            .record(stream)
            .map_err(|e| driver("recording a timing event", e))?;
        if end {
            self.recorded[stage as usize] = true;
        }
        Ok(())
    }

    /// Milliseconds of each recorded stage (waits for them).
    pub(crate) fn stage_ms(&self) -> Result<Vec<Option<f32>>> {
        (0..STAGES.len())
            .map(|i| {
                if !self.recorded[i] || self.events.is_empty() {
                    return Ok(None);
                }
                self.events[2 * i]
                    .elapsed_ms(&self.events[2 * i + 1])
                    .map(Some)
                    .map_err(|e| driver("reading a timing event", e))
            })
            .collect()
    }
}

/// Stages of one frame on its stream, in order; each is bracketed by two timing events when
/// profiling.
pub const STAGES: [&str; 8] = [
    "upload frame (H2D)",
    "packed8_to_planar_f32",
    "downsample_residue_f32",
    "download low-res planes (D2H)",
    "upload coefficients (H2D)",
    "physics_pass1_f32",
    "physics_pass2 (inversion, blend, pack)",
    "download frame (D2H)",
];

/// Index of each stage in [`STAGES`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    Upload = 0,
    Unpack = 1,
    Downsample = 2,
    DownloadLowRes = 3,
    UploadCoefs = 4,
    Pass1 = 5,
    Pass2 = 6,
    Download = 7,
}

/// One frame in flight: its stream, its timing events and its buffers.
pub(crate) struct Slot {
    pub stream: Arc<CudaStream>,
    pub timer: StageTimer,
    pub bufs: SlotBuffers,
    /// The frame submitted into this slot and not yet finished.
    pub pending: Option<super::Pending>,
}

impl Slot {
    pub(crate) fn new(ctx: &Arc<CudaContext>) -> Result<Self> {
        Ok(Self {
            stream: ctx
                .new_stream()
                .map_err(|e| driver("creating a stream", e))?,
            timer: StageTimer::default(),
            bufs: SlotBuffers::default(),
            pending: None,
        })
    }

    /// Milliseconds of each recorded stage of the frame in the slot (waits for it).
    pub(crate) fn stage_ms(&self) -> Result<Vec<Option<f32>>> {
        self.timer.stage_ms()
    }
}
