//! The frame scheduler (frames in flight over several engines) with simulated devices: CPU
//! engines with injected latency, failures and panics. Output order, bit-identity with a
//! serial run (A smoothed over frames, temporal history), drain, flush, and a clean stop
//! without deadlock when one device fails.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::Lcg;
use derain::engine::{Engine, FrameEngine};
use derain::physics::{AtmosphereStep, RunInfo, Sink, Source};
use derain::{
    Backend, Config, Error, FrameBuf, FrameMut, FrameRef, Mode, Pipeline, PixelFormat, Scheduler,
    TemporalMode,
};

const W: u32 = 72;
const H: u32 = 48;

/// What a simulated device does to a frame whose first pixel is `mark`.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    Fail,
    Panic,
}

/// A CPU engine standing in for one device: it sleeps an uneven, deterministic time per frame
/// after the work (so frames finish out of order), logs which frame it finished, and fails or panics on the
/// frame whose first pixel is `mark`.
struct SimDevice {
    engine: Engine,
    index: usize,
    calls: usize,
    fault: Fault,
    finished: Arc<Mutex<Vec<u8>>>,
}

const MARK: [u8; 3] = [7, 7, 7];

impl FrameEngine for SimDevice {
    fn name(&self) -> &'static str {
        "sim"
    }
    fn derain_into(
        &mut self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
        out: Sink<'_, '_>,
    ) -> derain::Result<RunInfo> {
        self.calls += 1;
        let Source::Packed(frame) = input else {
            panic!("the scheduler passes packed frames")
        };
        let tag = frame.row(0)[3]; // the frame number, in the first pixel's alpha
        if frame.row(0)[..3] == MARK {
            match self.fault {
                Fault::Fail => {
                    return Err(Error::Unavailable(format!(
                        "device {} lost (injected)",
                        self.index
                    )));
                }
                Fault::Panic => panic!("device {} crashed (injected)", self.index),
                Fault::None => {}
            }
        }
        let r = self.engine.derain_into(input, config, tracker, out);
        // The device's latency (a slow download, say): after the frame's tracker step, so
        // frames finish out of order.
        let ms = ((self.calls * 5 + self.index * 3) % 4) as u64 * 4;
        std::thread::sleep(Duration::from_millis(ms));
        self.finished.lock().unwrap().push(tag);
        r
    }
}

fn config(mode: Mode, temporal: TemporalMode) -> Config {
    Config {
        backend: Backend::Cpu,
        mode,
        temporal,
        ..Config::default()
    }
}

fn devices(
    cfg: &Config,
    n: usize,
    fault: Fault,
    finished: &Arc<Mutex<Vec<u8>>>,
) -> Vec<Box<dyn FrameEngine>> {
    (0..n)
        .map(|index| {
            Box::new(SimDevice {
                engine: Engine::new(cfg).unwrap(),
                index,
                calls: 0,
                fault,
                finished: finished.clone(),
            }) as Box<dyn FrameEngine>
        })
        .collect()
}

/// Frame `k` of a rainy stream (RGBA): a scene with a moving dark box, a veil that thickens
/// over time (so A moves and the tracker matters) and fresh streaks every frame. The first
/// pixel's alpha holds k, so a device can tell the frames apart.
fn frame(k: usize) -> FrameBuf {
    let (w, h) = (W as usize, H as usize);
    let mut rng = Lcg(1000 + k as u64);
    let mut data = vec![255u8; w * h * 4];
    let veil = 0.2 + 0.03 * k as f32;
    for y in 0..h {
        for x in 0..w {
            let base = if y > h / 2 { 0.3 } else { 0.65 } + 0.1 * ((x / 6 + y / 4) % 3) as f32;
            let obj = (x as isize - 4 * k as isize).rem_euclid(w as isize) < 12 && y > 10 && y < 26;
            let j = if obj { 0.1 } else { base };
            let streak = if (x + 3 * y / 7 + 11 * k).is_multiple_of(17) && rng.next_f32() < 0.7 {
                0.35
            } else {
                0.0
            };
            for c in 0..3 {
                let v = (1.0 - veil) * (j + 0.05 * c as f32) + veil * 0.8 + streak;
                data[(y * w + x) * 4 + c] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    data[3] = k as u8;
    FrameBuf::new(data, W, H, w * 4, PixelFormat::Rgba).unwrap()
}

/// Storage for one output frame.
fn out() -> FrameBuf {
    FrameBuf::zeroed(W, H, PixelFormat::Rgba).unwrap()
}

fn marked(k: usize) -> FrameBuf {
    let mut f = frame(k);
    f.as_mut().row_mut(0)[..3].copy_from_slice(&MARK);
    f
}

/// What a serial pipeline makes of the frames, and the A it used for each.
fn serial(cfg: &Config, frames: &[FrameBuf]) -> Vec<(Vec<u8>, [f32; 3])> {
    let mut p = Pipeline::new(cfg.clone()).unwrap();
    frames
        .iter()
        .map(|f| {
            let mut out = vec![0u8; f.data().len()];
            let mut o = FrameMut::new(&mut out, W, H, W as usize * 4, PixelFormat::Rgba).unwrap();
            p.process(&f.as_ref(), &mut o).unwrap();
            (out, p.last_run().unwrap().atmosphere)
        })
        .collect()
}

/// Runs `f` on another thread and fails the test if it takes longer than `secs` (a deadlock).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the scheduler did not finish in time: deadlock")
}

#[test]
fn frames_come_out_in_order_and_bit_identical_to_a_serial_run() {
    within(120, || {
        for (mode, temporal) in [
            (Mode::Physics, TemporalMode::On),
            (Mode::Physics, TemporalMode::Off),
            (Mode::Full, TemporalMode::Off),
        ] {
            let cfg = config(mode, temporal);
            let n = if mode == Mode::Full { 6 } else { 18 };
            let frames: Vec<FrameBuf> = (0..n).map(frame).collect();
            let want = serial(&cfg, &frames);
            let finished = Arc::new(Mutex::new(Vec::new()));
            let engines = if mode == Mode::Full { 2 } else { 3 };
            let mut s = Scheduler::with_engines(
                cfg.clone(),
                devices(&cfg, engines, Fault::None, &finished),
                5,
            )
            .unwrap();
            let mut got = Vec::new();
            let mut used = std::collections::BTreeSet::new();
            for f in &frames {
                if let Some(done) = s.push(f.clone(), out()).unwrap() {
                    got.push(done);
                }
                assert!(s.pending() < 5, "at most in-flight − 1 wait between pushes");
            }
            while let Some(done) = s.pop() {
                got.push(done.unwrap());
            }
            assert_eq!(got.len(), n);
            for (k, (done, (bytes, a))) in got.iter().zip(&want).enumerate() {
                assert_eq!(done.input.data()[3] as usize, k, "{mode:?}: out of order");
                assert!(
                    done.output.data() == bytes.as_slice(),
                    "{mode:?} {temporal:?}: frame {k} differs from the serial run"
                );
                assert_eq!(done.run.atmosphere, *a, "{mode:?}: A of frame {k}");
                used.insert(done.engine);
            }
            assert_eq!(used.len(), engines, "{mode:?}: every device took frames");
            let order = finished.lock().unwrap().clone();
            if mode == Mode::Physics {
                assert!(
                    order.windows(2).any(|p| p[1] < p[0]),
                    "the simulated latencies should make frames finish out of order: {order:?}"
                );
            }
            // Temporal on really used the history (so the identity above covers it).
            if temporal == TemporalMode::On {
                assert!(got.last().unwrap().temporal.applied);
            }
        }
    });
}

#[test]
fn flush_restarts_the_stream_and_a_drained_scheduler_is_empty() {
    within(60, || {
        let cfg = config(Mode::Physics, TemporalMode::On);
        let frames: Vec<FrameBuf> = (0..8).map(frame).collect();
        let want = serial(&cfg, &frames);
        let finished = Arc::new(Mutex::new(Vec::new()));
        let mut s =
            Scheduler::with_engines(cfg.clone(), devices(&cfg, 2, Fault::None, &finished), 4)
                .unwrap();
        assert!(s.pop().is_none(), "nothing pushed, nothing out");
        // Half a stream of other frames, flushed with frames still in flight...
        for k in 20..23 {
            assert!(s.push(frame(k), out()).unwrap().is_none());
        }
        s.flush();
        assert_eq!(s.pending(), 0);
        assert!(s.pop().is_none());
        // ...then the stream from the start: as from a fresh pipeline (A and history reset).
        let mut got = Vec::new();
        for f in &frames {
            got.extend(s.push(f.clone(), out()).unwrap());
        }
        got.extend(std::iter::from_fn(|| s.pop()).map(Result::unwrap));
        assert_eq!(got.len(), frames.len());
        for (k, (done, (bytes, _))) in got.iter().zip(&want).enumerate() {
            assert!(
                done.output.data() == bytes.as_slice(),
                "frame {k} after flush"
            );
        }
        // Output storage is reused as given (not cleared first).
        let reused = got.pop().unwrap().output;
        let again = s.push(frame(0), reused).unwrap();
        assert!(again.is_none());
        assert!(s.pop().unwrap().is_ok());
    });
}

#[test]
fn a_failing_device_stops_the_scheduler_cleanly() {
    for fault in [Fault::Fail, Fault::Panic] {
        within(60, move || {
            let cfg = config(Mode::Physics, TemporalMode::Off);
            let frames: Vec<FrameBuf> = (0..12)
                .map(|k| if k == 6 { marked(k) } else { frame(k) })
                .collect();
            let want = serial(&cfg, &frames[..6]);
            let finished = Arc::new(Mutex::new(Vec::new()));
            // Every device fails on the marked frame, whichever takes it.
            let devs = devices(&cfg, 3, fault, &finished);
            let mut s = Scheduler::with_engines(cfg.clone(), devs, 4).unwrap();
            let mut results = Vec::new();
            for f in &frames {
                match s.push(f.clone(), out()) {
                    Ok(Some(d)) => results.push(Ok(d)),
                    Ok(None) => {}
                    Err(e) => {
                        results.push(Err(e));
                        break;
                    }
                }
            }
            while let Some(r) = s.pop() {
                let stop = r.is_err();
                results.push(r);
                if stop {
                    break;
                }
            }
            for (k, r) in results.iter().take(6).enumerate() {
                let d = r.as_ref().expect("frames before the failure come out");
                assert!(d.output.data() == want[k].0.as_slice(), "frame {k}");
            }
            let err = results[6].as_ref().expect_err("the marked frame fails");
            let text = err.to_string();
            match fault {
                Fault::Fail => assert!(text.contains("lost (injected)"), "{text}"),
                _ => assert!(
                    text.contains("panicked") && text.contains("crashed"),
                    "{text}"
                ),
            }
            // Stopped for good: a clear error, no hang.
            let again = s.push(frame(13), out()).unwrap_err();
            assert!(matches!(again, Error::Stopped(_)), "{again:?}");
            assert!(matches!(s.pop(), Some(Err(Error::Stopped(_))) | None));
            drop(s); // joins the workers
            let ran = finished.lock().unwrap().clone();
            assert!(!ran.contains(&6), "the marked frame never completed");
        });
    }
}

#[test]
fn bad_settings_are_errors() {
    let cfg = config(Mode::Physics, TemporalMode::Off);
    let finished = Arc::new(Mutex::new(Vec::new()));
    assert!(Scheduler::<Vec<u8>>::with_engines(cfg.clone(), Vec::new(), 2).is_err());
    assert!(
        Scheduler::<Vec<u8>>::with_engines(
            cfg.clone(),
            devices(&cfg, 1, Fault::None, &finished),
            0
        )
        .is_err()
    );
    assert!(Scheduler::<Vec<u8>>::new(cfg.clone(), 0, 2).is_err());
    let s: Scheduler = Scheduler::new(cfg, 2, 3).unwrap();
    assert_eq!(
        (s.engines(), s.in_flight(), s.backend_name()),
        (2, 3, "cpu")
    );
    // Frames of another size mid-stream are fine (each engine resizes its buffers).
    let calls = Arc::new(AtomicUsize::new(0));
    let mut s = s;
    for (w, h) in [(40u32, 30u32), (64, 20), (40, 30)] {
        let buf = FrameBuf::zeroed(w, h, PixelFormat::Rgbx).unwrap();
        let dst = FrameBuf::zeroed(w, h, PixelFormat::Rgbx).unwrap();
        if s.push(buf, dst).unwrap().is_some() {
            calls.fetch_add(1, Ordering::Relaxed);
        }
    }
    while let Some(r) = s.pop() {
        let d = r.unwrap();
        assert_eq!(d.output.size(), d.input.size());
        calls.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    let _ = FrameRef::new(&[0; 12], 2, 2, 6, PixelFormat::Rgb).unwrap();
}

/// On the GPU machine: three CUDA engines on device 0 (three contexts' worth of streams on one
/// GPU) with frames in flight give a serial CUDA run's bytes and A, in order. Skips with the
/// reason where there is no GPU (DERAIN_REQUIRE_GPU=1 makes that a failure).
#[test]
fn cuda_engines_in_flight_match_a_serial_cuda_run() {
    let test = "cuda_engines_in_flight_match_a_serial_cuda_run";
    let cfg = Config {
        backend: Backend::Cuda,
        temporal: TemporalMode::On,
        ..Config::default()
    };
    let require = std::env::var("DERAIN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let mut s: Scheduler = match Scheduler::new(cfg.clone(), 3, 5) {
        Ok(s) => s,
        Err(e) if require => panic!("{test}: DERAIN_REQUIRE_GPU=1 but CUDA fails: {e}"),
        Err(e) => return common::report_skip(test, &format!("no GPU: {e}")),
    };
    assert_eq!(s.backend_name(), "cuda");
    within(120, move || {
        let frames: Vec<FrameBuf> = (0..16).map(frame).collect();
        let want = serial(&cfg, &frames);
        let mut got = Vec::new();
        for f in &frames {
            got.extend(s.push(f.clone(), out()).unwrap());
        }
        got.extend(std::iter::from_fn(|| s.pop()).map(Result::unwrap));
        assert_eq!(got.len(), frames.len());
        for (k, (done, (bytes, a))) in got.iter().zip(&want).enumerate() {
            assert!(done.output.data() == bytes.as_slice(), "CUDA frame {k}");
            assert_eq!(done.run.atmosphere, *a, "CUDA A of frame {k}");
        }
    });
}
