//! The CUDA engine: `physics` mode on an NVIDIA GPU, computing what the CPU engine computes.
//!
//! # How a frame flows (one stream per frame in flight)
//! ```text
//!  host                         device (the slot's stream)
//!  frame rows → pinned ──H2D──▶ packed8_to_planar_f32 → I (3 planes f32)
//!                               downsample_residue_f32 → R, G, B, res at 1/s  (s ≈ h/200)
//!  pinned ◀──────────D2H─────── (4 small planes: 1/s² of the frame)
//!  estimate_from_downsampled    (the CPU code itself: decomposition coefficients, dark
//!   (physics/mod.rs)             channel, A with the tracker, veil score, T refinement)
//!  pinned ──────────H2D───────▶ 8 coefficient planes at 1/s
//!                               physics_pass1_f32 → streak candidates, LF luma
//!                               physics_pass2_* → J blended and packed (or J, T, S planes)
//!  out frame ◀── pinned ◀─D2H── packed frame
//! ```
//! The frame is uploaded once, stays on the device through every full-resolution stage and
//! is downloaded once. The estimation at reduced resolution (≈ 1/25 of the pixels at 1080p)
//! runs on the host on planes the device made bit-identically to the CPU's (same summation
//! order, no contraction): A and the veil score are order statistics (medians of selected
//! pixels) whose ties the CPU breaks arbitrarily, so only the CPU code on the CPU's input
//! reproduces them exactly, and an error in A moves every output pixel. Its cost per frame at
//! 1080p: 1.3 MB down, 2.7 MB up (≈ 0.2 ms over PCIe 4) and the host estimation (median 4 ms
//! at 1080p, 5 ms at 720p on the 2-core development VM, measured 2026-11-27; rayon uses every
//! core, so less on a GPU host). With frames in flight it overlaps the device work of the
//! neighbouring frames, but it bounds throughput per engine (≈ 1/(estimation + host copies)):
//! the price of exact parity. The dark-channel and guided-filter kernels exist on the device
//! (`ops`), with parity tests, for the day the estimation moves there (A's selection would
//! then need a device radix select).
//!
//! # Frames in flight
//! [`CudaEngine::submit`] / [`CudaEngine::finish`] keep up to [`RING_DEPTH`] frames in flight,
//! each in its own slot (stream, device planes, pinned buffers): uploading frame n+1 overlaps
//! computing frame n and downloading frame n−1. [`Engine::derain_into`](super::Engine) (what
//! `Pipeline::process` and the element call) submits and finishes one frame at a time, so
//! the element adds no latency.
//!
//! # Availability
//! [`CudaEngine::new`] looks for libcuda before touching cudarc (which panics without it),
//! creates the context inside `catch_unwind`, and compiles every kernel with NVRTC once.

#[cfg(feature = "bench")]
pub mod bench;
mod buffers;
#[cfg(test)]
mod emulated;
pub mod full;
pub mod kernels;
mod launch;
mod nets;
mod ops;

pub use buffers::STAGES;
pub use ops::DeviceOps;

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaView};
use rayon::prelude::*;

use self::buffers::{Direction, FrameBuffers, FrameSize, Slot, Stage, Staged, fit_pinned};
use self::launch::{Kernels, LowResGeometry, Pass2Inputs, driver};
use crate::config::{Config, PhysicsParams};
use crate::error::{Error, Result};
use crate::frame::{FrameMut, FrameRef, PixelFormat, PlanarRgb, Plane};
use crate::physics::{
    AtmosphereStep, Components, RunInfo, Scales, Sink, Source, StageTimings,
    estimate_from_downsampled,
};

/// A context on device `ordinal` and what it is. Errors: [`Error::NoCudaDriver`] without
/// libcuda (or when the driver API panics on load), [`Error::CudaDriver`] without that device.
pub(crate) fn open_device(ordinal: usize) -> Result<(Arc<CudaContext>, DeviceInfo)> {
    if !driver_present() {
        return Err(Error::NoCudaDriver);
    }
    let ctx = match std::panic::catch_unwind(|| {
        let n = CudaContext::device_count().map_err(|e| driver("counting devices", e))?;
        if ordinal >= n.max(0) as usize {
            return Err(Error::CudaDriver {
                context: "choosing the device",
                message: format!("device {ordinal} asked for, {n} present"),
            });
        }
        CudaContext::new(ordinal).map_err(|e| driver("creating the context", e))
    }) {
        Ok(r) => r?,
        Err(_) => return Err(Error::NoCudaDriver),
    };
    let info = DeviceInfo {
        ordinal,
        name: ctx.name().unwrap_or_else(|_| "unknown".into()),
        compute_capability: ctx
            .compute_capability()
            .map_err(|e| driver("reading the compute capability", e))?,
        total_memory: ctx.total_mem().unwrap_or(0),
    };
    Ok((ctx, info))
}

/// Frames in flight in the streaming API (upload, compute and download overlap).
pub const RING_DEPTH: usize = 3;

/// Is a CUDA driver library (libcuda) loadable here? Never panics.
pub fn driver_present() -> bool {
    // SAFETY: only dlopens and closes libcuda by its usual names.
    std::panic::catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false)
}

/// The device a [`CudaEngine`] runs on.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Ordinal.
    pub ordinal: usize,
    /// Marketing name.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_memory: usize,
}

/// A frame submitted with [`CudaEngine::submit`], to hand to [`CudaEngine::finish`].
#[derive(Debug)]
#[must_use = "a submitted frame must be finished"]
pub struct Ticket {
    slot: usize,
    seq: u64,
}

/// What a slot holds between submit and finish.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    seq: u64,
    w: usize,
    h: usize,
    format: Option<PixelFormat>,
    /// Whether the output was downloaded into the slot's pinned buffers.
    downloaded: bool,
    info: RunInfo,
}

/// What a run writes on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutKind {
    /// Packed frame, blended with the input by `strength`.
    Frame { strength_bits: u32 },
    /// J, T, S planes.
    Planes,
}

/// Switches of one run (the benchmark turns transfers off and profiling on).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunOptions {
    /// Upload the frame / download the result (off: reuse what is on the device).
    pub transfers: bool,
    /// Record a pair of timing events around each stage.
    pub profile: bool,
}

const DEFAULT_RUN: RunOptions = RunOptions {
    transfers: true,
    profile: false,
};

pub(crate) struct Inner {
    ctx: Arc<CudaContext>,
    k: Kernels,
    slots: Vec<Slot>,
    next: usize,
    seq: u64,
    /// Host time of the last frame's estimation (ms).
    last_host_ms: f64,
}

/// The CUDA engine. All device state sits behind one mutex, so `&self` methods may be called
/// from any thread (the element's streaming thread, the CLI); calls are serialised.
pub struct CudaEngine {
    info: DeviceInfo,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CudaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaEngine")
            .field("device", &self.info)
            .finish()
    }
}

impl CudaEngine {
    /// Opens device `config.devices[0]` (0 if empty), compiles the kernels once and makes the
    /// ring of frame slots. Errors: [`Error::NoCudaDriver`] without libcuda,
    /// [`Error::CudaDriver`] without a device, [`Error::NoNvrtc`] without NVRTC,
    /// [`Error::KernelCompile`] with NVRTC's log.
    pub fn new(config: &Config) -> Result<Self> {
        let ordinal = config.devices.first().copied().unwrap_or(0);
        let (ctx, info) = open_device(ordinal)?;
        let k = Kernels::compile(&ctx)?;
        let slots = (0..RING_DEPTH)
            .map(|_| Slot::new(&ctx))
            .collect::<Result<_>>()?;
        log::info!(
            "CUDA engine on device {ordinal}: {} (sm_{}{}, {} MiB)",
            info.name,
            info.compute_capability.0,
            info.compute_capability.1,
            info.total_memory >> 20
        );
        Ok(Self {
            info,
            inner: Mutex::new(Inner {
                ctx,
                k,
                slots,
                next: 0,
                seq: 0,
                last_host_ms: 0.0,
            }),
        })
    }

    /// The device in use.
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| Error::CudaDriver {
            context: "engine state",
            message: "poisoned by an earlier panic".into(),
        })
    }

    /// Per-kernel operations on host planes (upload, run one kernel chain, download): what
    /// the parity tests and the benchmark use.
    pub fn ops(&self) -> DeviceOps<'_> {
        DeviceOps::new(self)
    }

    /// Runs `physics` mode on one frame, as the CPU engine's `derain_physics_into` does.
    pub fn derain_into(
        &self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
        out: Sink<'_, '_>,
    ) -> Result<RunInfo> {
        let mut g = self.lock()?;
        let inner = &mut *g;
        let slot = inner.free_slot()?;
        match out {
            Sink::Frame(fs) => {
                let strength = fs.strength;
                let alpha_frame = match input {
                    Source::Packed(_) => None,
                    Source::Planar(_) => Some(fs.input),
                };
                let seq = inner.run(
                    slot,
                    input,
                    alpha_frame,
                    OutKind::Frame {
                        strength_bits: strength.to_bits(),
                    },
                    &config.physics,
                    Some(tracker),
                    DEFAULT_RUN,
                )?;
                inner.finish_frame(Ticket { slot, seq }, fs.frame)
            }
            Sink::Components(c) => {
                let seq = inner.run(
                    slot,
                    input,
                    None,
                    OutKind::Planes,
                    &config.physics,
                    Some(tracker),
                    DEFAULT_RUN,
                )?;
                inner.finish_planes(Ticket { slot, seq }, c)
            }
        }
    }

    /// Queues one packed frame (upload, every stage, download) without waiting for the result,
    /// on its own stream; up to [`RING_DEPTH`] frames may be in flight. Frames must be
    /// finished in submission order before their slot comes round again.
    pub fn submit(
        &self,
        input: &FrameRef<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
    ) -> Result<Ticket> {
        let mut g = self.lock()?;
        let slot = g.free_slot()?;
        let seq = g.run(
            slot,
            Source::Packed(input),
            None,
            OutKind::Frame {
                strength_bits: config.strength.to_bits(),
            },
            &config.physics,
            Some(tracker),
            DEFAULT_RUN,
        )?;
        Ok(Ticket { slot, seq })
    }

    /// Waits for a submitted frame and writes it into `out` (same size and format).
    pub fn finish(&self, ticket: Ticket, out: &mut FrameMut<'_>) -> Result<RunInfo> {
        self.lock()?.finish_frame(ticket, out)
    }
}

impl Inner {
    /// The next slot of the ring, if it holds no unfinished frame.
    fn free_slot(&mut self) -> Result<usize> {
        let i = self.next;
        if self.slots[i].pending.is_some() {
            return Err(Error::CudaDriver {
                context: "submitting a frame",
                message: format!("all {RING_DEPTH} frame slots are in flight: finish one first"),
            });
        }
        self.next = (i + 1) % self.slots.len();
        Ok(i)
    }

    /// Enqueues the whole frame on slot `si`'s stream; returns its sequence number. Waits
    /// only for the small low-resolution download (the host estimation needs it).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        si: usize,
        input: Source<'_>,
        alpha_frame: Option<&FrameRef<'_>>,
        out: OutKind,
        params: &PhysicsParams,
        tracker: Option<&mut dyn AtmosphereStep>,
        opt: RunOptions,
    ) -> Result<u64> {
        let (w, h) = (input.width(), input.height());
        if w == 0 || h == 0 {
            return Err(Error::param("input", "empty image"));
        }
        let n = w * h;
        let prof = opt.profile;
        let sc = Scales::new(w, h, params);
        let s = sc.estimation_subsample;
        let (lw, lh) = (w.div_ceil(s), h.div_ceil(s));
        let ln = lw * lh;
        let Inner {
            ctx,
            k,
            slots,
            last_host_ms,
            ..
        } = self;
        let Slot {
            stream,
            timer,
            bufs,
            ..
        } = &mut slots[si];
        timer.reset();
        let fb = FrameBuffers::fit(&mut bufs.frame, stream, ctx, FrameSize { n, ln })?;

        // 1. Input → planar f32 on the device.
        let frame_for_alpha = match input {
            Source::Packed(f) => Some(f),
            Source::Planar(_) => alpha_frame,
        };
        let format = frame_for_alpha.map(|f| f.format());
        let packed_in = match frame_for_alpha {
            Some(f) => {
                let row = w * f.format().bytes_per_pixel();
                let b = Staged::fit(&mut bufs.packed_in, stream, ctx, row * h, Direction::Upload)?;
                if opt.transfers {
                    timer.mark(stream, Stage::Upload, false, prof)?;
                    let dst = b
                        .host
                        .as_mut_slice()
                        .map_err(|e| driver("pinned host memory", e))?;
                    dst.par_chunks_mut(row)
                        .enumerate()
                        .with_min_len(32)
                        .for_each(|(y, d)| d.copy_from_slice(f.row(y)));
                    stream
                        .memcpy_htod(&b.host, &mut b.dev)
                        .map_err(|e| driver("uploading the frame", e))?;
                    timer.mark(stream, Stage::Upload, true, prof)?;
                }
                Some(&b.dev)
            }
            None => None,
        };
        match input {
            Source::Packed(f) => {
                let d_in = packed_in.ok_or_else(|| {
                    Error::param("cuda engine", "a packed input has its frame buffer")
                })?;
                timer.mark(stream, Stage::Unpack, false, prof)?;
                let row = w * f.format().bytes_per_pixel();
                launch::packed8_to_planar(stream, k, d_in, row, w, h, f.format(), &mut fb.rgb)?;
                timer.mark(stream, Stage::Unpack, true, prof)?;
            }
            Source::Planar(img) => {
                if opt.transfers {
                    timer.mark(stream, Stage::Upload, false, prof)?;
                    let h_rgb = fit_pinned(&mut bufs.planar_in, ctx, 3 * n, Direction::Upload)?;
                    let dst = h_rgb
                        .as_mut_slice()
                        .map_err(|e| driver("pinned host memory", e))?;
                    for (d, p) in dst.chunks_exact_mut(n).zip(&img.planes) {
                        d.copy_from_slice(&p.data);
                    }
                    stream
                        .memcpy_htod(&*h_rgb, &mut fb.rgb)
                        .map_err(|e| driver("uploading the image", e))?;
                    timer.mark(stream, Stage::Upload, true, prof)?;
                }
            }
        }

        // 2. Downsampled R, G, B, residue → host (small).
        timer.mark(stream, Stage::Downsample, false, prof)?;
        launch::downsample_residue(stream, k, &fb.rgb, w, h, s, &mut fb.lo.dev)?;
        timer.mark(stream, Stage::Downsample, true, prof)?;
        timer.mark(stream, Stage::DownloadLowRes, false, prof)?;
        stream
            .memcpy_dtoh(&fb.lo.dev, &mut fb.lo.host)
            .map_err(|e| driver("downloading the low-resolution planes", e))?;
        timer.mark(stream, Stage::DownloadLowRes, true, prof)?;

        // 3. Estimation on the host (waits for the download above only).
        let t_host = std::time::Instant::now();
        let lo = fb
            .lo
            .host
            .as_slice()
            .map_err(|e| driver("waiting for the low-resolution planes", e))?;
        let plane = |c: usize| Plane {
            width: lw,
            height: lh,
            data: lo[c * ln..(c + 1) * ln].to_vec(),
        };
        let img_lo = [plane(0), plane(1), plane(2)];
        let res_lo = plane(3);
        let est = estimate_from_downsampled(&img_lo, &res_lo, &sc, params, tracker)?;
        // The noise bound on the gain 1/T, from the host frame (physics::noise).
        let t0 = crate::physics::noise::min_transmission_for(&input, params);
        let host_ms = t_host.elapsed().as_secs_f64() * 1e3;
        *last_host_ms = host_ms;

        // 4. Coefficients → device.
        {
            let dst = fb
                .coef
                .host
                .as_mut_slice()
                .map_err(|e| driver("pinned host memory", e))?;
            for (d, p) in dst
                .chunks_exact_mut(ln)
                .zip(est.decomposition.iter().chain(&est.transmission))
            {
                d.copy_from_slice(&p.data);
            }
        }
        timer.mark(stream, Stage::UploadCoefs, false, prof)?;
        stream
            .memcpy_htod(&fb.coef.host, &mut fb.coef.dev)
            .map_err(|e| driver("uploading the coefficients", e))?;
        timer.mark(stream, Stage::UploadCoefs, true, prof)?;

        // 5. Full-resolution passes.
        let g = LowResGeometry { lw, lh, s };
        timer.mark(stream, Stage::Pass1, false, prof)?;
        {
            let dcoef: CudaView<'_, f32> = fb.coef.dev.slice(0..6 * ln);
            launch::physics_pass1(
                stream,
                k,
                &fb.rgb,
                (w, h),
                &dcoef,
                g,
                sc.streak_width,
                &mut fb.achro,
                &mut fb.luma,
            )?;
        }
        timer.mark(stream, Stage::Pass1, true, prof)?;
        timer.mark(stream, Stage::Pass2, false, prof)?;
        let p = Pass2Inputs {
            rgb: &fb.rgb,
            achro: &fb.achro,
            luma: &fb.luma,
            w,
            h,
            tcoef: fb.coef.dev.slice(6 * ln..8 * ln),
            g,
            half_length: sc.streak_half_length,
            gain: params.streak_gain,
            t0,
            atmosphere: est.atmosphere,
        };
        match out {
            OutKind::Frame { strength_bits } => {
                let (format, d_in) = format.zip(packed_in).ok_or_else(|| {
                    Error::param("cuda engine", "frame output needs the input frame (alpha)")
                })?;
                let bytes = w * format.bytes_per_pixel() * h;
                let o = Staged::fit(
                    &mut bufs.packed_out,
                    stream,
                    ctx,
                    bytes,
                    Direction::Download,
                )?;
                launch::physics_pass2_packed8(
                    stream,
                    k,
                    &p,
                    f32::from_bits(strength_bits),
                    d_in,
                    &mut o.dev,
                    w * format.bytes_per_pixel(),
                    format,
                )?;
                timer.mark(stream, Stage::Pass2, true, prof)?;
                if opt.transfers {
                    timer.mark(stream, Stage::Download, false, prof)?;
                    stream
                        .memcpy_dtoh(&o.dev, &mut o.host)
                        .map_err(|e| driver("downloading the frame", e))?;
                    timer.mark(stream, Stage::Download, true, prof)?;
                }
            }
            OutKind::Planes => {
                let o = Staged::fit(
                    &mut bufs.planes_out,
                    stream,
                    ctx,
                    5 * n,
                    Direction::Download,
                )?;
                launch::physics_pass2_planar(stream, k, &p, &mut o.dev)?;
                timer.mark(stream, Stage::Pass2, true, prof)?;
                if opt.transfers {
                    timer.mark(stream, Stage::Download, false, prof)?;
                    stream
                        .memcpy_dtoh(&o.dev, &mut o.host)
                        .map_err(|e| driver("downloading the planes", e))?;
                    timer.mark(stream, Stage::Download, true, prof)?;
                }
            }
        }
        self.seq += 1;
        let seq = self.seq;
        self.slots[si].pending = Some(Pending {
            seq,
            w,
            h,
            format,
            downloaded: opt.transfers,
            info: RunInfo {
                atmosphere: est.atmosphere,
                veil_gate: None,
                mean_transmission: est.mean_transmission,
                veil: est.veil,
                timings: StageTimings {
                    low_res_ms: host_ms,
                    decomposition_ms: 0.0,
                    inversion_ms: 0.0,
                    networks_ms: 0.0,
                    streak_ms: 0.0,
                },
            },
        });
        Ok(seq)
    }

    /// Takes the slot's pending frame after waiting for its stream.
    fn complete(&mut self, t: &Ticket) -> Result<Pending> {
        let slot = self
            .slots
            .get_mut(t.slot)
            .ok_or_else(|| Error::param("ticket", "unknown slot"))?;
        let p = match slot.pending {
            Some(p) if p.seq == t.seq => p,
            _ => {
                return Err(Error::param(
                    "ticket",
                    "this frame was already finished or never submitted",
                ));
            }
        };
        slot.stream
            .synchronize()
            .map_err(|e| driver("waiting for the frame", e))?;
        slot.pending = None;
        let mut p = p;
        if let Ok(ms) = slot.stage_ms() {
            let ms = |s: Stage| ms[s as usize].unwrap_or(0.0) as f64;
            p.info.timings.decomposition_ms = ms(Stage::Pass1);
            p.info.timings.inversion_ms = ms(Stage::Pass2);
        }
        Ok(p)
    }

    fn finish_frame(&mut self, t: Ticket, out: &mut FrameMut<'_>) -> Result<RunInfo> {
        let p = self.complete(&t)?;
        let format = p
            .format
            .ok_or_else(|| Error::param("ticket", "not a frame"))?;
        if out.width() as usize != p.w || out.height() as usize != p.h || out.format() != format {
            return Err(Error::UnsupportedFrame {
                width: out.width(),
                height: out.height(),
                format: out.format(),
                reason: format!(
                    "output differs from the submitted {}x{} {format:?}",
                    p.w, p.h
                ),
            });
        }
        let row = p.w * format.bytes_per_pixel();
        let src = self.slots[t.slot]
            .bufs
            .packed_out
            .as_ref()
            .filter(|_| p.downloaded)
            .ok_or_else(|| Error::param("ticket", "frame was run without download"))?
            .host
            .as_slice()
            .map_err(|e| driver("reading the downloaded frame", e))?;
        out.par_rows_mut()
            .zip(src.par_chunks(row))
            .with_min_len(32)
            .for_each(|(d, s)| d.copy_from_slice(s));
        Ok(p.info)
    }

    fn finish_planes(&mut self, t: Ticket, c: &mut Components) -> Result<RunInfo> {
        let p = self.complete(&t)?;
        let (w, h) = (p.w, p.h);
        let n = w * h;
        let src = self.slots[t.slot]
            .bufs
            .planes_out
            .as_ref()
            .filter(|_| p.downloaded)
            .ok_or_else(|| Error::param("ticket", "planes were run without download"))?
            .host
            .as_slice()
            .map_err(|e| driver("reading the downloaded planes", e))?;
        let plane = |i: usize| Plane {
            width: w,
            height: h,
            data: src[i * n..(i + 1) * n].to_vec(),
        };
        c.background = PlanarRgb::from_planes([plane(0), plane(1), plane(2)])?;
        c.transmission = plane(3);
        c.streaks = plane(4);
        c.atmosphere = p.info.atmosphere;
        c.timings = p.info.timings;
        Ok(p.info)
    }
}
