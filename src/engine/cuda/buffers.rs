//! Device planes and pinned host buffers, allocated once per frame size and reused for every
//! frame after it (a stream of one size allocates nothing per frame).

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaEvent, CudaSlice, CudaStream, DeviceRepr, PinnedHostSlice, ValidAsZeroBits,
    sys,
};

use super::launch::driver;
use crate::error::Result;

/// `buf`, (re)allocated on `stream` when its length is not `len`.
pub(crate) fn ensure_dev<'a, T: DeviceRepr + ValidAsZeroBits>(
    buf: &'a mut Option<CudaSlice<T>>,
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<&'a mut CudaSlice<T>> {
    if buf.as_ref().is_none_or(|b| b.len() != len) {
        *buf = None; // free first: peak memory stays at one copy
        *buf = Some(
            stream
                .alloc_zeros::<T>(len.max(1))
                .map_err(|e| driver("allocating device memory", e))?,
        );
    }
    Ok(buf.as_mut().expect("allocated above"))
}

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

/// Page-locked host memory of `len` elements, (re)allocated when its length differs, zeroed
/// when new.
pub(crate) fn ensure_pinned<'a, T: DeviceRepr + ValidAsZeroBits + Copy + Default>(
    buf: &'a mut Option<PinnedHostSlice<T>>,
    ctx: &Arc<CudaContext>,
    len: usize,
    dir: Direction,
) -> Result<&'a mut PinnedHostSlice<T>> {
    if buf.as_ref().is_none_or(|b| b.len() != len) {
        *buf = None;
        let flags = match dir {
            Direction::Upload => sys::CU_MEMHOSTALLOC_WRITECOMBINED,
            Direction::Download => 0,
        };
        // SAFETY: the memory is uninitialised until the fill below, and nothing reads it
        // before; T is plain data (u8, f32) for which zero bits are valid.
        let mut p = unsafe { ctx.alloc_pinned_with_flags::<T>(len.max(1), flags) }
            .map_err(|e| driver("allocating pinned host memory", e))?;
        p.as_mut_slice()
            .map_err(|e| driver("pinned host memory", e))?
            .fill(T::default());
        *buf = Some(p);
    }
    Ok(buf.as_mut().expect("allocated above"))
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

/// One frame in flight: its stream, its device planes and its pinned staging buffers.
pub(crate) struct Slot {
    pub stream: Arc<CudaStream>,
    /// Two timing events per stage (start, end), created on first profiled use.
    pub events: Vec<CudaEvent>,
    /// Which stages were recorded for the frame in the slot.
    pub recorded: [bool; STAGES.len()],
    pub d_frame_in: Option<CudaSlice<u8>>,
    pub d_frame_out: Option<CudaSlice<u8>>,
    pub d_rgb: Option<CudaSlice<f32>>,
    pub d_lo: Option<CudaSlice<f32>>,
    pub d_coef: Option<CudaSlice<f32>>,
    pub d_achro: Option<CudaSlice<f32>>,
    pub d_luma: Option<CudaSlice<f32>>,
    /// J (3 planes), T, S for component output.
    pub d_planes: Option<CudaSlice<f32>>,
    pub h_frame_in: Option<PinnedHostSlice<u8>>,
    pub h_frame_out: Option<PinnedHostSlice<u8>>,
    pub h_rgb: Option<PinnedHostSlice<f32>>,
    pub h_lo: Option<PinnedHostSlice<f32>>,
    pub h_coef: Option<PinnedHostSlice<f32>>,
    pub h_planes: Option<PinnedHostSlice<f32>>,
    /// The frame submitted into this slot and not yet finished.
    pub pending: Option<super::Pending>,
}

impl Slot {
    pub(crate) fn new(ctx: &Arc<CudaContext>) -> Result<Self> {
        Ok(Self {
            stream: ctx
                .new_stream()
                .map_err(|e| driver("creating a stream", e))?,
            events: Vec::new(),
            recorded: [false; STAGES.len()],
            d_frame_in: None,
            d_frame_out: None,
            d_rgb: None,
            d_lo: None,
            d_coef: None,
            d_achro: None,
            d_luma: None,
            d_planes: None,
            h_frame_in: None,
            h_frame_out: None,
            h_rgb: None,
            h_lo: None,
            h_coef: None,
            h_planes: None,
            pending: None,
        })
    }

    /// Records the start (`end` false) or end of `stage` when profiling.
    pub(crate) fn mark(&mut self, stage: Stage, end: bool, profile: bool) -> Result<()> {
        if !profile {
            return Ok(());
        }
        if self.events.is_empty() {
            let ctx = self.stream.context().clone();
            for _ in 0..2 * STAGES.len() {
                self.events.push(
                    ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                        .map_err(|e| driver("creating a timing event", e))?,
                );
            }
        }
        let i = 2 * stage as usize + end as usize;
        self.events[i]
            .record(&self.stream)
            .map_err(|e| driver("recording a timing event", e))?;
        if end {
            self.recorded[stage as usize] = true;
        }
        Ok(())
    }

    /// Milliseconds of each recorded stage of the frame in the slot (waits for it).
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
