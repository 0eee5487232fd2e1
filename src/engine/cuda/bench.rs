//! The GPU benchmark behind `derain bench --backend cuda` (and `scripts/gpu-check.sh`):
//! per-kernel times from CUDA events, end-to-end throughput with the ring of frames in flight
//! (with and without the frame transfers), and achieved bandwidth against the device's own
//! measured device-to-device copy bandwidth.

use std::collections::VecDeque;
use std::time::Instant;

use cudarc::driver::{CudaSlice, sys};

use super::buffers::{STAGES, Stage};
use super::launch::{self, FinishInputs, InvertInputs, LowResGeometry, driver};
use super::nets::{DeviceStreakNet, LaunchOps, UNetMaps, check_unet, device_conv, unet_forward};
use super::ops::{GuidedBuffers, GuidedOutput, guided_on_device, upload, zeros};
use super::{CudaEngine, DEFAULT_RUN, DeviceInfo, OutKind, RING_DEPTH, RunOptions, Ticket};
use crate::config::Config;
use crate::engine::cpu::pack_frame;
use crate::error::{Error, Result};
use crate::frame::{FrameMut, FrameRef, PixelFormat, PlanarRgb};
use crate::nets::full::work_factor;
use crate::nets::{ConvLayer, FullNets, ModelSize, PAD_MULTIPLE, STREAK_MULTIPLE};
use crate::physics::guided_filter::{BANK_EPS, BANK_RADII};
use crate::physics::{AtmosphereTracker, Source, residue};

/// One timed step.
#[derive(Debug, Clone)]
pub struct KernelTime {
    /// Kernel or transfer name.
    pub name: String,
    /// Median milliseconds (CUDA events; host steps by the host clock).
    pub ms: f64,
    /// Minimum bytes the step must move (reads + writes of its planes), 0 for host steps.
    pub bytes: f64,
}

impl KernelTime {
    /// Achieved GB/s (bytes / time), 0 when unknown.
    pub fn gbps(&self) -> f64 {
        if self.ms > 0.0 && self.bytes > 0.0 {
            self.bytes / (self.ms * 1e6)
        } else {
            0.0
        }
    }
}

/// One network timed on the device.
#[derive(Debug, Clone)]
pub struct NetTime {
    /// Which network and size.
    pub name: String,
    /// Median milliseconds per frame (CUDA events; input and output on the device).
    pub ms: f64,
    /// Multiply-accumulates per frame.
    pub macs: f64,
}

/// Results at one frame size.
#[derive(Debug, Clone)]
pub struct SizeReport {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Per stage of one frame (events around each stage of a synchronous run).
    pub stages: Vec<KernelTime>,
    /// Guided filter r=8 on 3 channels, the 10-filter bank and `full` mode's full-resolution
    /// kernels, device-resident.
    pub filters: Vec<KernelTime>,
    /// Frames/s with RING_DEPTH frames in flight, RGBA in host memory → RGBA in host memory.
    pub fps_with_transfers: f64,
    /// Frames/s with the frame already on the device and the result left there (the small
    /// low-resolution round trip and the host estimation included).
    pub fps_without_transfers: f64,
    /// Milliseconds of one frame submitted and finished alone (the element's latency).
    pub latency_ms: f64,
    /// The streak networks of both shipped sizes at this size (padded to a multiple of 16) and
    /// the refinement networks at the working resolution, device-resident (`kernels/nets.cu`).
    pub networks: Vec<NetTime>,
}

/// The whole benchmark.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// The device.
    pub device: DeviceInfo,
    /// Device-to-device copy bandwidth (read + write bytes / s), GB/s.
    pub copy_gbps: f64,
    /// Host (pinned) → device, GB/s.
    pub h2d_gbps: f64,
    /// Device → host (pinned), GB/s.
    pub d2h_gbps: f64,
    /// Per size.
    pub sizes: Vec<SizeReport>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `f` (work enqueued on `s`) with CUDA events: median ms of `reps` after a warm-up.
fn time_events(
    s: &std::sync::Arc<cudarc::driver::CudaStream>,
    reps: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let ctx = s.context().clone();
    let ev = || {
        ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| driver("creating a timing event", e))
    };
    let (a, b) = (ev()?, ev()?);
    f()?;
    let mut v = Vec::new();
    for _ in 0..reps.max(1) {
        a.record(s).map_err(|e| driver("recording an event", e))?;
        f()?;
        b.record(s).map_err(|e| driver("recording an event", e))?;
        v.push(
            a.elapsed_ms(&b)
                .map_err(|e| driver("reading an event", e))? as f64,
        );
    }
    Ok(median(v))
}

/// Runs the benchmark on `frames` (RGBA, tightly packed, with their sizes).
pub fn run(
    engine: &CudaEngine,
    frames: &[(usize, usize, Vec<u8>)],
    reps: usize,
    config: &Config,
) -> Result<BenchReport> {
    let (copy_gbps, h2d_gbps, d2h_gbps) = bandwidth(engine)?;
    let mut sizes = Vec::new();
    for (w, h, bytes) in frames {
        sizes.push(bench_size(engine, *w, *h, bytes, reps, config)?);
    }
    Ok(BenchReport {
        device: engine.device().clone(),
        copy_gbps,
        h2d_gbps,
        d2h_gbps,
        sizes,
    })
}

fn bandwidth(engine: &CudaEngine) -> Result<(f64, f64, f64)> {
    let g = engine.lock()?;
    let s = g.slots[0].stream.clone();
    let n: usize = 256 << 20;
    let src: CudaSlice<u8> = zeros(&s, n)?;
    let mut dst: CudaSlice<u8> = zeros(&s, n)?;
    let ms = time_events(&s, 5, || {
        s.memcpy_dtod(&src, &mut dst)
            .map_err(|e| driver("device copy", e))
    })?;
    let copy = 2.0 * n as f64 / (ms * 1e6);
    let hn: usize = 64 << 20;
    // SAFETY: filled before use by the copies below (device → host first).
    let mut pinned = unsafe { g.ctx.alloc_pinned_with_flags::<u8>(hn, 0) }
        .map_err(|e| driver("allocating pinned memory", e))?;
    let mut dev: CudaSlice<u8> = zeros(&s, hn)?;
    let d2h = time_events(&s, 5, || {
        s.memcpy_dtoh(&dev, &mut pinned)
            .map_err(|e| driver("device → host copy", e))
    })?;
    let h2d = time_events(&s, 5, || {
        s.memcpy_htod(&pinned, &mut dev)
            .map_err(|e| driver("host → device copy", e))
    })?;
    Ok((copy, hn as f64 / (h2d * 1e6), hn as f64 / (d2h * 1e6)))
}

fn bench_size(
    engine: &CudaEngine,
    w: usize,
    h: usize,
    bytes: &[u8],
    reps: usize,
    config: &Config,
) -> Result<SizeReport> {
    let frame = FrameRef::new(bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
    let n = (w * h) as f64;
    let mut out_bytes = vec![0u8; w * h * 4];
    let mut tracker = AtmosphereTracker::new(config.atmosphere_smoothing);
    let out_kind = OutKind::Frame {
        strength_bits: config.strength.to_bits(),
    };
    let mut g = engine.lock()?;
    let inner = &mut *g;
    if inner.slots.iter().any(|s| s.pending.is_some()) {
        return Err(Error::param("bench", "frames in flight"));
    }

    // 1. Stages of one frame, synchronous, with events (every slot warmed with the frame).
    let mut per_stage: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut host = Vec::new();
    let profile = RunOptions {
        transfers: true,
        profile: true,
    };
    for i in 0..reps.max(1) + RING_DEPTH {
        let slot = inner.free_slot()?;
        let seq = inner.run(
            slot,
            Source::Packed(&frame),
            None,
            out_kind,
            &config.physics,
            Some(&mut tracker),
            profile,
        )?;
        let t = Ticket { slot, seq };
        let mut out = FrameMut::new(&mut out_bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
        inner.finish_frame(t, &mut out)?;
        // The events stay recorded until the slot's next run.
        let ms = inner.slots[slot].stage_ms()?;
        if i >= RING_DEPTH {
            for (acc, m) in per_stage.iter_mut().zip(ms) {
                if let Some(m) = m {
                    acc.push(m as f64);
                }
            }
            host.push(inner.last_host_ms);
        }
    }
    let sub = crate::physics::Scales::new(w, h, &config.physics).estimation_subsample;
    let lo = (w.div_ceil(sub) * h.div_ceil(sub)) as f64;
    let traffic = |s: Stage| -> f64 {
        match s {
            Stage::Upload | Stage::Download => 4.0 * n,
            Stage::Unpack => 16.0 * n,
            Stage::Downsample => 12.0 * n + 16.0 * lo,
            Stage::DownloadLowRes => 16.0 * lo,
            Stage::UploadCoefs => 32.0 * lo,
            Stage::Pass1 => 20.0 * n,
            Stage::Pass2 => 28.0 * n,
        }
    };
    let all = [
        Stage::Upload,
        Stage::Unpack,
        Stage::Downsample,
        Stage::DownloadLowRes,
        Stage::UploadCoefs,
        Stage::Pass1,
        Stage::Pass2,
        Stage::Download,
    ];
    let mut stages: Vec<KernelTime> = all
        .iter()
        .map(|&s| KernelTime {
            name: STAGES[s as usize].to_string(),
            ms: median(per_stage[s as usize].clone()),
            bytes: traffic(s),
        })
        .collect();
    stages.insert(
        4,
        KernelTime {
            name: "host estimation (CPU: A, T, coefficients)".into(),
            ms: median(host),
            bytes: 0.0,
        },
    );

    // 2. Latency of one frame alone (what Pipeline::process / the element see).
    let mut lat = Vec::new();
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        let slot = inner.free_slot()?;
        let seq = inner.run(
            slot,
            Source::Packed(&frame),
            None,
            out_kind,
            &config.physics,
            Some(&mut tracker),
            DEFAULT_RUN,
        )?;
        let mut out = FrameMut::new(&mut out_bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
        inner.finish_frame(Ticket { slot, seq }, &mut out)?;
        lat.push(t0.elapsed().as_secs_f64() * 1e3);
    }

    // 3. Throughput with RING_DEPTH frames in flight, with and without frame transfers.
    let frames = (4 * reps).max(24);
    let mut fps = [0.0f64; 2];
    for (k, transfers) in [true, false].into_iter().enumerate() {
        let opt = RunOptions {
            transfers,
            profile: false,
        };
        let mut q: VecDeque<Ticket> = VecDeque::new();
        let t0 = Instant::now();
        for _ in 0..frames {
            if q.len() == RING_DEPTH {
                let t = q.pop_front().expect("non-empty");
                finish_any(inner, t, transfers, &mut out_bytes, w, h)?;
            }
            let slot = inner.free_slot()?;
            let seq = inner.run(
                slot,
                Source::Packed(&frame),
                None,
                out_kind,
                &config.physics,
                Some(&mut tracker),
                opt,
            )?;
            q.push_back(Ticket { slot, seq });
        }
        while let Some(t) = q.pop_front() {
            finish_any(inner, t, transfers, &mut out_bytes, w, h)?;
        }
        fps[k] = frames as f64 / t0.elapsed().as_secs_f64();
    }

    // 4. The guided filter and the bank, device-resident.
    let img = PlanarRgb::from_frame(&frame);
    let res = residue::residue(&img);
    let s = inner.slots[0].stream.clone();
    let k = &inner.k;
    let inputs: Vec<f32> = img
        .planes
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    let dg = upload(&s, &res.data)?;
    let di = upload(&s, &inputs)?;
    let mut filters = Vec::new();
    {
        let mut bufs = GuidedBuffers::new(&s, w * h, 3, 1)?;
        let mut o = zeros::<f32>(&s, 3 * w * h)?;
        let ms = time_events(&s, reps, || {
            guided_on_device(
                &s,
                k,
                &dg,
                &di,
                3,
                &[1e-3],
                (w, h, 8),
                &mut bufs,
                GuidedOutput::Filtered,
                &mut o,
            )
        })?;
        // stats 16n in + 64n out; coeffs 64n in + 24n out; cols 24n + 48n; apply 48n + 4n + 12n.
        filters.push(KernelTime {
            name: "guided filter r=8, 3 ch (4 kernels)".into(),
            ms,
            bytes: 304.0 * n,
        });
    }
    {
        let ne = BANK_EPS.len();
        let mut bufs = GuidedBuffers::new(&s, w * h, 3, ne)?;
        let mut o = zeros::<f32>(&s, 3 * ne * w * h)?;
        let ms = time_events(&s, reps.min(5), || {
            for &r in &BANK_RADII {
                guided_on_device(
                    &s,
                    k,
                    &dg,
                    &di,
                    3,
                    &BANK_EPS,
                    (w, h, r),
                    &mut bufs,
                    GuidedOutput::Filtered,
                    &mut o,
                )?;
            }
            Ok(())
        })?;
        // per radius: stats 80n; coeffs 64n + 48n; cols 48n + 96n; apply 96n + 4n + 24n.
        filters.push(KernelTime {
            name: "10-filter bank, 30 planes (5 radii × 4 kernels)".into(),
            ms,
            bytes: 5.0 * 460.0 * n,
        });
    }
    // 5. The streak networks, device-resident.
    let mut networks = Vec::new();
    let (pw, ph) = (
        w.next_multiple_of(STREAK_MULTIPLE),
        h.next_multiple_of(STREAK_MULTIPLE),
    );
    let mut padded = Vec::new();
    pack_frame(&Source::Planar(&img), pw, ph, &mut padded);
    let dp = upload(&s, &padded)?;
    for size in [ModelSize::Fast, ModelSize::Quality] {
        let nets = FullNets::embedded(size)?;
        let Some(layers) = nets.streak.streak_layers() else {
            continue;
        };
        let mut net = DeviceStreakNet::upload(&s, &layers)?;
        let mut r = zeros::<f32>(&s, 3 * pw * ph)?;
        let ms = time_events(&s, reps, || net.forward(&s, k, &dp, pw, ph, &mut r))?;
        networks.push(NetTime {
            name: format!("streak network `{}` ({pw}x{ph})", size.name()),
            ms,
            macs: nets.streak.macs_per_pixel() * (pw * ph) as f64,
        });
    }
    // 6. `full` mode's full-resolution kernels and the refinement network, device-resident
    // (the chain of engine::cuda::full minus its two transfers and the host's stage 1).
    let f = work_factor(w, h);
    let g = LowResGeometry {
        lw: w.div_ceil(f),
        lh: h.div_ceil(f),
        s: f,
    };
    let (pn, ln) = ((pw * ph) as f64, g.lw * g.lh);
    let mut x = zeros::<f32>(&s, 3 * pw * ph)?;
    let r = zeros::<f32>(&s, 3 * pw * ph)?;
    let mut i_s = zeros::<f32>(&s, 3 * w * h)?;
    let mut j1 = zeros::<f32>(&s, 3 * w * h)?;
    let t_lo = upload(&s, &vec![0.6f32; ln])?;
    let dj = upload(&s, &vec![0.01f32; 3 * ln])?;
    let frame_dev = upload(&s, &out_bytes)?;
    let mut frame_out = zeros::<u8>(&s, out_bytes.len())?;
    let ms = time_events(&s, reps, || {
        launch::pad_n(&s, k, &di, 3, (w, h), (pw, ph), &mut x)
    })?;
    filters.push(KernelTime {
        name: "full: pad_n_f32 (I to a multiple of 16)".into(),
        ms,
        bytes: 12.0 * n + 12.0 * pn,
    });
    let ms = time_events(&s, reps, || {
        launch::rain_free(&s, k, &x, &r, (pw, ph), (w, h), &mut i_s)
    })?;
    filters.push(KernelTime {
        name: "full: rain_free_f32 (I_s = I - R)".into(),
        ms,
        bytes: 24.0 * pn + 12.0 * n,
    });
    let inv = InvertInputs {
        i_s: &i_s,
        w,
        h,
        t_lo: &t_lo,
        g,
        t0: config.physics.min_transmission,
        t_inv: 0.0,
        atmosphere: [0.8, 0.8, 0.8],
        rain: &r,
        pw,
        ph,
    };
    let ms = time_events(&s, reps, || launch::full_invert(&s, k, &inv, &mut j1, None))?;
    filters.push(KernelTime {
        name: "full: full_invert_f32 (J1)".into(),
        ms,
        bytes: 24.0 * n,
    });
    let fin = FinishInputs {
        j1: &j1,
        dj: &dj,
        g,
        w,
        h,
    };
    let ms = time_events(&s, reps, || {
        launch::full_finish_packed8(
            &s,
            k,
            &fin,
            1.0,
            &di,
            &frame_dev,
            &mut frame_out,
            w * 4,
            PixelFormat::Rgba,
        )
    })?;
    filters.push(KernelTime {
        name: "full: full_finish_packed8 (J1 + up(dJ), pack)".into(),
        ms,
        bytes: 12.0 * n + 8.0 * n,
    });
    for size in [ModelSize::Fast, ModelSize::Quality] {
        let nets = FullNets::embedded(size)?;
        let Some(l) = nets.stage2.refine_layers() else {
            continue;
        };
        check_unet(&l, 4, 3)?;
        let dl = l.try_map(|c| device_conv(&s, c))?;
        let (rpw, rph) = (
            g.lw.next_multiple_of(PAD_MULTIPLE),
            g.lh.next_multiple_of(PAD_MULTIPLE),
        );
        let x2 = zeros::<f32>(&s, 4 * rpw * rph)?;
        let mut out = zeros::<f32>(&s, 3 * rpw * rph)?;
        let mut ops = LaunchOps { s: &s, k };
        let mut maps = UNetMaps::new(&mut ops, &dl, rpw, rph)?;
        let ms = time_events(&s, reps, || {
            unet_forward(
                &mut LaunchOps { s: &s, k },
                &dl,
                &x2,
                &mut maps,
                None,
                &mut out,
            )
        })?;
        let area = |c: &ConvLayer, a: f64| (c.cout * c.cin * c.k * c.k) as f64 * a;
        let full = (rpw * rph) as f64;
        let macs = [&l.inp, &l.e0, &l.m0, &l.u0, &l.out]
            .iter()
            .map(|c| area(c, full))
            .sum::<f64>()
            + [&l.d1, &l.e1, &l.m1, &l.u1]
                .iter()
                .map(|c| area(c, full / 4.0))
                .sum::<f64>()
            + [&l.d2, &l.e2]
                .iter()
                .map(|c| area(c, full / 16.0))
                .sum::<f64>();
        networks.push(NetTime {
            name: format!("refinement network `{}` ({rpw}x{rph})", size.name()),
            ms,
            macs,
        });
    }
    Ok(SizeReport {
        width: w,
        height: h,
        stages,
        filters,
        networks,
        fps_with_transfers: fps[0],
        fps_without_transfers: fps[1],
        latency_ms: median(lat),
    })
}

fn finish_any(
    inner: &mut super::Inner,
    t: Ticket,
    transfers: bool,
    out_bytes: &mut [u8],
    w: usize,
    h: usize,
) -> Result<()> {
    if transfers {
        let mut out = FrameMut::new(out_bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
        inner.finish_frame(t, &mut out)?;
    } else {
        inner.complete(&t)?;
    }
    Ok(())
}

impl BenchReport {
    /// The report as a text table (what `derain bench --backend cuda` prints last).
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let d = &self.device;
        let _ = writeln!(
            s,
            "CUDA bench: {} (sm_{}{}, {} MiB), physics mode",
            d.name,
            d.compute_capability.0,
            d.compute_capability.1,
            d.total_memory >> 20
        );
        let _ = writeln!(
            s,
            "measured bandwidth: device copy {:.0} GB/s (read+write), H2D {:.1} GB/s, D2H {:.1} GB/s (pinned)",
            self.copy_gbps, self.h2d_gbps, self.d2h_gbps
        );
        for z in &self.sizes {
            let _ = writeln!(s, "\n{}x{}", z.width, z.height);
            let _ = writeln!(
                s,
                "  {:<48} {:>9} {:>9} {:>9}",
                "stage / kernel", "ms", "GB/s", "% copy"
            );
            for k in z.stages.iter().chain(&z.filters) {
                let gb = k.gbps();
                let pct = if gb > 0.0 && !k.name.contains("H2D") && !k.name.contains("D2H") {
                    format!("{:.0}%", 100.0 * gb / self.copy_gbps)
                } else {
                    "-".into()
                };
                let gbs = if gb > 0.0 {
                    format!("{gb:.0}")
                } else {
                    "-".into()
                };
                let _ = writeln!(s, "  {:<48} {:>9.3} {:>9} {:>9}", k.name, k.ms, gbs, pct);
            }
            for n in &z.networks {
                let _ = writeln!(
                    s,
                    "  {:<48} {:>9.3} ms  {:>6.2} TMAC/s  {:>7.1} fps",
                    n.name,
                    n.ms,
                    n.macs / (n.ms * 1e9),
                    1e3 / n.ms
                );
            }
            let _ = writeln!(
                s,
                "  end to end, {RING_DEPTH} frames in flight, with transfers:    {:>8.1} fps",
                z.fps_with_transfers
            );
            let _ = writeln!(
                s,
                "  end to end, {RING_DEPTH} frames in flight, without transfers: {:>8.1} fps",
                z.fps_without_transfers
            );
            let _ = writeln!(
                s,
                "  one frame alone (submit → finish):              {:>8.3} ms",
                z.latency_ms
            );
        }
        s
    }
}
