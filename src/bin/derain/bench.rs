//! `derain bench [--json]`: ms and fps of each stage and end to end at 720p and 1080p on
//! generated frames, with the thread count stated.

use std::time::Instant;

use clap::Args;
use derain::physics::{guided_filter, residue};
use derain::{Config, FrameMut, FrameRef, Pipeline, PixelFormat, PlanarRgb, Plane};
use serde_json::json;

/// Arguments of `derain bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed repetitions per measurement (the median is reported).
    #[arg(long, default_value_t = 15)]
    pub reps: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Sizes as WxH (default 1280x720 and 1920x1080).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// Mode timed end to end: physics or full (the stage rows are the same for both).
    #[arg(long, default_value = "physics")]
    pub mode: String,
    /// Engine to benchmark: `cpu` (stages, filters, end to end), `cuda` (per-kernel times
    /// from CUDA events, fps with and without transfers, GB/s against the measured copy
    /// bandwidth), or `auto` (CUDA if present, else CPU).
    #[arg(long, default_value = "cpu")]
    pub backend: derain::Backend,
    /// `full` mode's networks: `fast`, `quality` or a directory (default: `fast` on the CPU).
    #[arg(long)]
    pub model: Option<derain::nets::ModelChoice>,
    /// `full` mode: time the mirror ensemble (the streak network twice a frame; the
    /// file commands' default, `--ensemble on`).
    #[arg(long)]
    pub ensemble: bool,
    /// Also time the frame scheduler (frames in flight over replicated engines) with this
    /// many engines, side by side with the serial row: ms per frame from the throughput of a
    /// stream of frames (0: skip).
    #[arg(long, default_value_t = 0)]
    pub engines: usize,
    /// Frames in flight for the scheduler row (default: 2 × engines).
    #[arg(long)]
    pub in_flight: Option<usize>,
}

/// A deterministic rainy-looking RGBA frame: gradients, blocks and bright vertical streaks.
pub fn test_frame(w: usize, h: usize) -> Vec<u8> {
    let mut v = vec![0u8; w * h * 4];
    let mut s = 0x2545F4914F6CDD1Du64;
    for y in 0..h {
        for x in 0..w {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let block = ((x / 64 + y / 48) % 3) as f32 * 0.2;
            let base = [
                0.2 + block + 0.3 * x as f32 / w as f32,
                0.3 + block,
                0.4 + 0.2 * y as f32 / h as f32,
            ];
            let streak = if (x * 7 + (y / 9) * 3) % 41 == 0 {
                0.25
            } else {
                0.0
            };
            let noise = (s % 16) as f32 / 255.0;
            for c in 0..3 {
                v[(y * w + x) * 4 + c] = ((base[c] + streak + noise).min(1.0) * 255.0) as u8;
            }
            v[(y * w + x) * 4 + 3] = 255;
        }
    }
    v
}

/// The median of column `k` of per-run step timings (at least one run).
fn column_median<const N: usize>(rows: &[[f64; N]], k: usize) -> f64 {
    let mut v: Vec<f64> = rows.iter().map(|s| s[k]).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn parse_size(s: &str) -> anyhow::Result<(usize, usize)> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("size `{s}` is not WxH"))?;
    Ok((w.parse()?, h.parse()?))
}

/// Runs `derain bench`.
pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    let threads = rayon::current_num_threads();
    let sizes: Vec<(usize, usize)> = if a.sizes.is_empty() {
        vec![(1280, 720), (1920, 1080)]
    } else {
        a.sizes
            .iter()
            .map(|s| parse_size(s))
            .collect::<anyhow::Result<_>>()?
    };
    if a.backend != derain::Backend::Cpu {
        match cuda_bench(&a, &sizes) {
            Ok(()) => return Ok(()),
            Err(e) if a.backend == derain::Backend::Auto => {
                log::warn!(
                    "backend auto: CUDA not used ({e:#}); benchmarking the CPU engine (--backend cpu silences this)"
                );
            }
            Err(e) => return Err(e),
        }
    }
    let mut results = Vec::new();
    for (w, h) in sizes {
        let bytes = test_frame(w, h);
        let frame = FrameRef::new(&bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
        let img = PlanarRgb::from_frame(&frame);
        let res = residue::residue(&img);
        let [r, g, b] = &img.planes;
        let mut out_bytes = vec![0u8; w * h * 4];
        let mode: derain::Mode = a.mode.parse()?;
        let mut pipeline = Pipeline::new(Config {
            backend: derain::Backend::Cpu,
            mode,
            model: a.model.clone(),
            ensemble: a.ensemble,
            ..Config::default()
        })?;
        let mut stages: Vec<(&str, f64)> = Vec::new();
        let mut buf = PlanarRgb::zeros(w, h);
        stages.push((
            "rgba8_to_planar (conversion only)",
            median_ms(a.reps, || buf.fill_from_frame(&frame)),
        ));
        stages.push((
            "residue channel",
            median_ms(a.reps, || drop(residue::residue(&img))),
        ));
        // Outputs are allocated once and reused, as a caller filtering every frame does
        // (scripts/opencv_bench.py hands OpenCV a reused `dst` the same way).
        let mut gf_out: Vec<Plane> = (0..3).map(|_| Plane::zeros(w, h)).collect();
        stages.push((
            "guided filter r=8, 3ch (exact)",
            median_ms(a.reps, || {
                guided_filter::guided_filter_multi_into(&res, &[r, g, b], 8, &[1e-3], &mut gf_out)
                    .expect("valid sizes")
            }),
        ));
        let mut bank_out: Vec<Plane> = (0..30).map(|_| Plane::zeros(w, h)).collect();
        stages.push((
            "10-filter bank, 30 planes (exact)",
            median_ms(a.reps.min(5), || {
                guided_filter::guided_bank_into(
                    &res,
                    &img,
                    &guided_filter::BANK_RADII,
                    &guided_filter::BANK_EPS,
                    &mut bank_out,
                )
                .expect("valid sizes")
            }),
        ));
        // The same bank in f64 arithmetic: the frame's 8-bit samples take the exact integer
        // path above unless told otherwise.
        stages.push((
            "10-filter bank, f64 path (same data)",
            median_ms(a.reps.min(5), || {
                guided_filter::guided_bank_into_with(
                    &res,
                    &img,
                    &guided_filter::BANK_RADII,
                    &guided_filter::BANK_EPS,
                    &mut bank_out,
                    guided_filter::Arithmetic::F64,
                )
                .expect("valid sizes")
            }),
        ));
        // End to end through the pipeline (packed RGBA in → packed RGBA out), with the
        // pipeline's own per-step timings.
        let mut steps: Vec<[f64; 5]> = Vec::new();
        let e2e = median_ms(a.reps, || {
            let mut out =
                FrameMut::new(&mut out_bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba)
                    .expect("layout");
            pipeline.process(&frame, &mut out).expect("process");
            if let Some(t) = pipeline.last_run().map(|r| r.timings) {
                steps.push([
                    t.low_res_ms,
                    t.decomposition_ms,
                    t.inversion_ms,
                    t.networks_ms,
                    t.streak_ms,
                ]);
            }
        });
        // The same, with the temporal stage on (side by side with the row above: its cost
        // is the difference). The frame repeats, so the history is full and static.
        let mut temporal = Pipeline::new(Config {
            backend: derain::Backend::Cpu,
            mode,
            model: a.model.clone(),
            ensemble: a.ensemble,
            temporal: derain::TemporalMode::On,
            ..Config::default()
        })?;
        let e2e_temporal = median_ms(a.reps, || {
            let mut out =
                FrameMut::new(&mut out_bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba)
                    .expect("layout");
            temporal.process(&frame, &mut out).expect("process");
        });
        let scheduled = if a.engines > 0 {
            Some(scheduler_ms(&a, derain::Backend::Cpu, mode, &bytes, w, h)?)
        } else {
            None
        };
        let med = |k: usize| column_median(&steps, k);
        if mode == derain::Mode::Full {
            stages.push(("full: streak network (full res, I_s = I − R)", med(4)));
            stages.push(("full: downsample + 10-filter bank (work res)", med(0)));
            stages.push(("full: veil + refinement networks", med(3)));
            stages.push(("full: full-res passes (T, inversion, ΔJ)", med(2)));
            stages.push(("end to end (full, RGBA in/out)", e2e));
            stages.push(("end to end (full) + temporal=on", e2e_temporal));
        } else {
            stages.push(("physics: low-res estimation (A, T, LF coefs)", med(0)));
            stages.push(("physics: decomposition pass (LF, candidates)", med(1)));
            stages.push(("physics: streaks + inversion pass (→ RGBA)", med(2)));
            stages.push(("end to end (physics, RGBA in/out)", e2e));
            stages.push(("end to end (physics) + temporal=on", e2e_temporal));
        }
        if let Some((name, ms)) = scheduled {
            stages.push((name, ms));
        }
        results.push((w, h, stages));
    }
    if a.json {
        let v: Vec<_> = results
            .iter()
            .map(|(w, h, st)| {
                json!({"width": w, "height": h, "threads": threads,
                       "stages": st.iter().map(|(n, ms)| json!({"stage": n, "ms": ms, "fps": 1e3 / ms})).collect::<Vec<_>>()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "derain bench: CPU engine, {threads} threads, median of {} runs",
            a.reps
        );
        for (w, h, st) in &results {
            println!("\n{w}x{h}");
            println!("  {:<44} {:>9} {:>9}", "stage", "ms", "fps");
            for (n, ms) in st {
                println!("  {:<44} {:>9.2} {:>9.1}", n, ms, 1e3 / ms);
            }
        }
    }
    Ok(())
}

/// Throughput of the frame scheduler: `reps` × 4 frames pushed and drained through
/// `a.engines` engines of `backend` with `in_flight` frames out; the median of 3 such streams, as ms per
/// frame.
fn scheduler_ms(
    a: &BenchArgs,
    backend: derain::Backend,
    mode: derain::Mode,
    bytes: &[u8],
    w: usize,
    h: usize,
) -> anyhow::Result<(&'static str, f64)> {
    let in_flight = a.in_flight.unwrap_or(2 * a.engines);
    let config = Config {
        backend,
        mode,
        model: a.model.clone(),
        ensemble: a.ensemble,
        ..Config::default()
    };
    // Input frames are shared, not copied, and outputs reuse their allocations: what the
    // element does with mapped buffers.
    let mut sched: derain::Scheduler<Shared, Vec<u8>> =
        derain::Scheduler::new(config, a.engines, in_flight)?;
    let frames = (a.reps * 4).max(8);
    let shared = std::sync::Arc::new(bytes.to_vec());
    let (wu, hu) = (w as u32, h as u32);
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut stream = || -> anyhow::Result<f64> {
        let t = Instant::now();
        for _ in 0..frames {
            let input =
                derain::FrameBuf::new(Shared(shared.clone()), wu, hu, w * 4, PixelFormat::Rgba)?;
            let out = spare.pop().unwrap_or_else(|| vec![0; w * h * 4]);
            let output = derain::FrameBuf::new(out, wu, hu, w * 4, PixelFormat::Rgba)?;
            if let Some(done) = sched.push(input, output)? {
                spare.push(done.output.into_data());
            }
        }
        while let Some(done) = sched.pop() {
            spare.push(done?.output.into_data());
        }
        Ok(t.elapsed().as_secs_f64() * 1e3 / frames as f64)
    };
    stream()?; // warm-up: every engine sizes its buffers
    let mut t = [stream()?, stream()?, stream()?];
    t.sort_by(f64::total_cmp);
    let name: &'static str = Box::leak(
        format!(
            "scheduler: {} engines, {in_flight} in flight (per frame)",
            a.engines
        )
        .into_boxed_str(),
    );
    Ok((name, t[1]))
}

/// A frame's bytes shared between frames in flight.
struct Shared(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// `derain bench --backend cuda`: the GPU benchmark; its table is printed last.
#[cfg(feature = "cuda")]
fn cuda_bench(a: &BenchArgs, sizes: &[(usize, usize)]) -> anyhow::Result<()> {
    use derain::engine::cuda::{CudaEngine, bench};
    let config = Config {
        backend: derain::Backend::Cuda,
        ..Config::default()
    };
    let engine = CudaEngine::new(&config)?;
    let frames: Vec<(usize, usize, Vec<u8>)> = sizes
        .iter()
        .map(|&(w, h)| (w, h, test_frame(w, h)))
        .collect();
    let report = bench::run(&engine, &frames, a.reps, &config)?;
    if a.json {
        let v: Vec<_> = report
            .sizes
            .iter()
            .map(|z| {
                json!({"width": z.width, "height": z.height,
                       "fps_with_transfers": z.fps_with_transfers,
                       "fps_without_transfers": z.fps_without_transfers,
                       "latency_ms": z.latency_ms,
                       "stages": z.stages.iter().chain(&z.filters).map(|k| json!({
                           "stage": k.name, "ms": k.ms, "gbps": k.gbps()})).collect::<Vec<_>>(),
                       "networks": z.networks.iter().map(|n| json!({
                           "network": n.name, "ms": n.ms, "macs": n.macs})).collect::<Vec<_>>()})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "device": report.device.name,
                "copy_gbps": report.copy_gbps,
                "h2d_gbps": report.h2d_gbps,
                "d2h_gbps": report.d2h_gbps,
                "sizes": v}))?
        );
    } else {
        print!("{}", report.table());
    }
    // The frame scheduler over CUDA engines on device 0 (several contexts on one GPU), with
    // the host's copies into and out of the frames included.
    if a.engines > 0 {
        for (w, h, bytes) in &frames {
            let (name, ms) = scheduler_ms(
                a,
                derain::Backend::Cuda,
                derain::Mode::Physics,
                bytes,
                *w,
                *h,
            )?;
            println!("{w}x{h} cuda {name}: {ms:.3} ms ({:.1} fps)", 1e3 / ms);
        }
    }
    // `--mode full`: end to end with the frame on the GPU (engine::cuda::full), one engine and
    // as many as asked, frames in flight.
    if a.mode.parse::<derain::Mode>()? == derain::Mode::Full {
        let model = config.model_for("cuda");
        for (w, h, bytes) in &frames {
            // One frame at a time, with the pipeline's own split of it: the device's
            // full-resolution steps up to the working-resolution download, the host's stages,
            // and the device's inversion and finish with their round trips.
            let (wu, hu) = (*w as u32, *h as u32);
            let frame = FrameRef::new(bytes, wu, hu, w * 4, PixelFormat::Rgba)?;
            let mut out_bytes = vec![0u8; w * h * 4];
            let mut serial = Pipeline::new(Config {
                backend: derain::Backend::Cuda,
                mode: derain::Mode::Full,
                model: Some(model.clone()),
                ensemble: a.ensemble,
                ..Config::default()
            })?;
            let mut steps: Vec<[f64; 4]> = Vec::new();
            let e2e = median_ms(a.reps, || {
                let mut out = FrameMut::new(&mut out_bytes, wu, hu, w * 4, PixelFormat::Rgba)
                    .expect("layout");
                serial.process(&frame, &mut out).expect("process");
                if let Some(t) = serial.last_run().map(|r| r.timings) {
                    steps.push([t.streak_ms, t.low_res_ms, t.networks_ms, t.inversion_ms]);
                }
            });
            let med = |k: usize| column_median(&steps, k);
            println!(
                "{w}x{h} cuda full ({model}), one frame at a time: {e2e:.3} ms ({:.1} fps) = \
                 GPU: upload, streak network, I_s, downsamplings, bank and veil network with \
                 their download {:.3} + host: bank {:.3}, gate, tracker and any network left \
                 on the host {:.3} + GPU: inversion, refinement and finish with their \
                 transfers {:.3}",
                1e3 / e2e,
                med(0),
                med(1),
                med(2),
                med(3)
            );
            for engines in [1, a.engines.max(1)] {
                let one = BenchArgs {
                    engines,
                    in_flight: Some(2 * engines),
                    model: Some(model.clone()),
                    ..a.clone()
                };
                let (name, ms) = scheduler_ms(
                    &one,
                    derain::Backend::Cuda,
                    derain::Mode::Full,
                    bytes,
                    *w,
                    *h,
                )?;
                println!(
                    "{w}x{h} cuda full ({model}) {name}: {ms:.3} ms ({:.1} fps)",
                    1e3 / ms
                );
                if a.engines <= 1 {
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn cuda_bench(_a: &BenchArgs, _sizes: &[(usize, usize)]) -> anyhow::Result<()> {
    Err(derain::Error::CudaNotCompiled.into())
}
