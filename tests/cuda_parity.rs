//! CUDA engine vs CPU engine: every kernel chain and the whole `physics` pipeline, on random
//! inputs and odd sizes. Tolerance: max |Δ| ≤ 1e-4 on [0,1] f32 (bit-identical where the
//! operation is exact: conversion, downsampling, min filters), ≤ 1 code value on 8-bit output.
//!
//! Without a GPU each test prints `SKIPPED … (no GPU)` and passes; `DERAIN_REQUIRE_GPU=1` (or
//! `DERAIN_REQUIRE_CUDA=1`) turns that into a failure (scripts/gpu-check.sh sets it).
#![cfg(feature = "cuda")]

mod common;

use derain::engine::cuda::CudaEngine;
use derain::physics::guided_filter::{self, BANK_EPS, BANK_RADII};
use derain::physics::{Components, Source, dark, residue};
use derain::{Backend, Config, FrameMut, FrameRef, Pipeline, PixelFormat, PlanarRgb, Plane};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-4;

/// `DERAIN_PARITY_QUICK=1` (scripts/gpu-check.sh under compute-sanitizer, which slows kernels
/// down many times): only the sizes up to 200 pixels wide (every kernel still runs).
fn keep(w: usize) -> bool {
    w <= 200 || !std::env::var("DERAIN_PARITY_QUICK").is_ok_and(|v| v == "1")
}

fn engine(test: &str) -> Option<CudaEngine> {
    let require = ["DERAIN_REQUIRE_GPU", "DERAIN_REQUIRE_CUDA"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| v == "1"));
    let cfg = Config {
        backend: Backend::Cuda,
        ..Config::default()
    };
    match CudaEngine::new(&cfg) {
        Ok(e) => Some(e),
        Err(e) if require => panic!("{test}: DERAIN_REQUIRE_GPU=1 but the CUDA engine fails: {e}"),
        Err(e) => {
            common::report_skip(test, &format!("no GPU: {e}"));
            None
        }
    }
}

/// Random plane in [0,1]: noise over blocks, so filters see both edges and texture.
fn plane(w: usize, h: usize, rng: &mut ChaCha8Rng) -> Plane {
    let blocks: Vec<f32> = (0..64).map(|_| rng.random::<f32>()).collect();
    let data = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            let b = blocks[(x / 7 + 3 * (y / 5)) % 64];
            (0.6 * b + 0.4 * rng.random::<f32>()).clamp(0.0, 1.0)
        })
        .collect();
    Plane {
        width: w,
        height: h,
        data,
    }
}

fn image(w: usize, h: usize, rng: &mut ChaCha8Rng) -> PlanarRgb {
    PlanarRgb::from_planes([plane(w, h, rng), plane(w, h, rng), plane(w, h, rng)]).unwrap()
}

fn max_diff(a: &Plane, b: &Plane) -> f32 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_close(what: &str, cpu: &Plane, gpu: &Plane, tol: f32) {
    let d = max_diff(cpu, gpu);
    assert!(
        d <= tol,
        "{what}: max |Δ| = {d:e} > {tol:e} ({}x{})",
        cpu.width,
        cpu.height
    );
}

/// J, T and S of a CPU and a CUDA run within [`TOL`]; `what` names the plane in messages.
fn assert_planes_close(what: &dyn Fn(&str) -> String, c: &Components, g: &Components) {
    for k in 0..3 {
        assert_close(
            &what("J"),
            &c.background.planes[k],
            &g.background.planes[k],
            TOL,
        );
    }
    assert_close(&what("T"), &c.transmission, &g.transmission, TOL);
    assert_close(&what("S"), &c.streaks, &g.streaks, TOL);
}

const SIZES: [(usize, usize); 7] = [
    (1, 1),
    (2, 3),
    (3, 2),
    (17, 9),
    (64, 33),
    (97, 61),
    (131, 300),
];

#[test]
fn cuda_conversion_is_bit_identical() {
    let Some(e) = engine("cuda_conversion_is_bit_identical") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &(w, h) in &SIZES {
        for format in PixelFormat::ALL {
            let bpp = format.bytes_per_pixel();
            let stride = w * bpp + 5; // padded rows
            let bytes: Vec<u8> = (0..stride * h).map(|_| rng.random()).collect();
            let frame = FrameRef::new(&bytes, w as u32, h as u32, stride, format).unwrap();
            let cpu = PlanarRgb::from_frame(&frame);
            let gpu = e.ops().unpack(&frame).unwrap();
            assert_eq!(cpu, gpu, "unpack {w}x{h} {format:?}");

            let img = image(w, h, &mut rng);
            let (mut a, mut b) = (vec![0u8; stride * h], vec![0u8; stride * h]);
            let mut fa = FrameMut::new(&mut a, w as u32, h as u32, stride, format).unwrap();
            img.write_frame(&mut fa, Some(&frame)).unwrap();
            let mut fb = FrameMut::new(&mut b, w as u32, h as u32, stride, format).unwrap();
            e.ops().pack(&img, &frame, &mut fb).unwrap();
            for y in 0..h {
                assert_eq!(
                    a[y * stride..y * stride + w * bpp],
                    b[y * stride..y * stride + w * bpp],
                    "pack {w}x{h} {format:?} row {y}"
                );
            }
        }
    }
}

#[test]
fn cuda_residue_and_downsampling_are_bit_identical() {
    let Some(e) = engine("cuda_residue_and_downsampling_are_bit_identical") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for &(w, h) in &SIZES {
        let img = image(w, h, &mut rng);
        assert_eq!(residue::residue(&img), e.ops().residue(&img).unwrap());
        for s in 1..=8 {
            let (c_rgb, c_res) = Source::Planar(&img).downsample_with_residue(s);
            let (g_rgb, g_res) = e.ops().downsample_with_residue(&img, s).unwrap();
            assert_eq!(c_rgb, g_rgb, "{w}x{h} s={s}");
            assert_eq!(c_res, g_res, "{w}x{h} s={s}");
        }
    }
}

#[test]
fn cuda_box_mean_matches_cpu() {
    let Some(e) = engine("cuda_box_mean_matches_cpu") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for &(w, h) in &SIZES {
        let p = plane(w, h, &mut rng);
        for r in (1..=16).chain([32]) {
            let cpu = guided_filter::box_mean(&p, r).unwrap();
            let gpu = e.ops().box_mean(&p, r).unwrap();
            assert_close(&format!("box r={r}"), &cpu, &gpu, TOL);
        }
    }
}

#[test]
fn cuda_guided_filter_and_coefficients_match_cpu() {
    let Some(e) = engine("cuda_guided_filter_and_coefficients_match_cpu") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for &(w, h) in &SIZES {
        let g = plane(w, h, &mut rng);
        let img = image(w, h, &mut rng);
        let [r0, g0, b0] = &img.planes;
        for r in [1, 2, 3, 5, 8, 13, 16, 32] {
            let cpu = guided_filter::guided_filter_multi(&g, &[r0, g0, b0], r, &BANK_EPS).unwrap();
            let gpu = e
                .ops()
                .guided_filter_multi(&g, &[r0, g0, b0], r, &BANK_EPS)
                .unwrap();
            assert_eq!(cpu.len(), gpu.len());
            for (k, (c, d)) in cpu.iter().zip(&gpu).enumerate() {
                assert_close(&format!("guided r={r} plane {k}"), c, d, TOL);
            }
            let cpu = guided_filter::guided_coefficients(&g, &[r0], r, &[1e-3]).unwrap();
            let gpu = e.ops().guided_coefficients(&g, &[r0], r, &[1e-3]).unwrap();
            for (k, (c, d)) in cpu.iter().zip(&gpu).enumerate() {
                // a = cov/(var + eps) is up to 1/eps times the error of the means: compare
                // relative to |a| + 1.
                let scale = c.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                assert_close(&format!("coefficients r={r} plane {k}"), c, d, TOL * scale);
            }
        }
    }
}

#[test]
fn cuda_bank_matches_cpu() {
    let Some(e) = engine("cuda_bank_matches_cpu") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for &(w, h) in &[(97, 61), (131, 300), (257, 129)] {
        let img = image(w, h, &mut rng);
        let res = residue::residue(&img);
        let cpu = guided_filter::guided_bank(&res, &img, &BANK_RADII, &BANK_EPS).unwrap();
        let gpu = e
            .ops()
            .guided_bank(&res, &img, &BANK_RADII, &BANK_EPS)
            .unwrap();
        assert_eq!(cpu.len(), 30);
        assert_eq!(gpu.len(), 30);
        for (k, (c, d)) in cpu.iter().zip(&gpu).enumerate() {
            assert_close(&format!("bank {w}x{h} plane {k}"), c, d, TOL);
        }
    }
}

#[test]
fn cuda_dark_channel_is_bit_identical_and_transmission_matches() {
    let Some(e) = engine("cuda_dark_channel_is_bit_identical_and_transmission_matches") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for &(w, h) in &SIZES {
        let img = image(w, h, &mut rng);
        let a = [0.8, 0.7, 0.0]; // 0 exercises the max(A, 1e-3) guard
        for r in 0..6 {
            let cpu = dark::dark_channel(&img, a, r);
            let gpu = e.ops().dark_channel(&img, a, r).unwrap();
            assert_eq!(cpu, gpu, "{w}x{h} r={r}");
        }
        let d = dark::dark_channel(&img, [1.0; 3], 2);
        let t = e.ops().transmission_raw(&d, 0.8).unwrap();
        for (dv, tv) in d.data.iter().zip(&t.data) {
            assert_eq!(*tv, 1.0 - 0.8 * dv.min(1.0));
        }
    }
}

fn pipelines(e_name: &str) -> Option<(Pipeline, Pipeline)> {
    engine(e_name)?;
    let cpu = Pipeline::new(Config {
        backend: Backend::Cpu,
        ..Config::default()
    })
    .unwrap();
    let gpu = Pipeline::new(Config {
        backend: Backend::Cuda,
        ..Config::default()
    })
    .unwrap();
    assert_eq!(gpu.backend_name(), "cuda");
    Some((cpu, gpu))
}

#[test]
fn cuda_physics_components_match_cpu() {
    let Some((mut cpu, mut gpu)) = pipelines("cuda_physics_components_match_cpu") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Odd sizes, sizes where the estimation factor s is 1, 2, 3, 5 and the fixed-phase
    // upsampling paths, and a short video (A smoothed over frames by the tracker).
    for &(w, h) in &[
        (1, 1),
        (2, 3),
        (37, 23),
        (161, 99),
        (401, 301),
        (641, 359),
        (1001, 563),
    ] {
        if !keep(w) {
            continue;
        }
        for frame in 0..2 {
            let img = image(w, h, &mut rng);
            let c = cpu.components(&img).unwrap();
            let g = gpu.components(&img).unwrap();
            let what = |s: &str| format!("{s} {w}x{h} frame {frame}");
            assert_eq!(c.atmosphere, g.atmosphere, "{}", what("A"));
            assert_planes_close(&what, &c, &g);
        }
    }
}

/// One random frame of `w`×`h` in `format` (alpha random where the format has it) through
/// both pipelines at `strength`: (input bytes, CPU output, CUDA output).
fn frames_side_by_side(
    cpu: &mut Pipeline,
    gpu: &mut Pipeline,
    (w, h, format, strength): (usize, usize, PixelFormat, f32),
    rng: &mut ChaCha8Rng,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    cpu.set_strength(strength).unwrap();
    gpu.set_strength(strength).unwrap();
    let bpp = format.bytes_per_pixel();
    let img = image(w, h, rng);
    let mut bytes = vec![0u8; w * h * bpp];
    let mut f = FrameMut::new(&mut bytes, w as u32, h as u32, w * bpp, format).unwrap();
    img.write_frame(&mut f, None).unwrap();
    if format.alpha_offset().is_some() {
        for px in bytes.chunks_exact_mut(4) {
            px[3] = rng.random();
        }
    }
    let input = FrameRef::new(&bytes, w as u32, h as u32, w * bpp, format).unwrap();
    let (mut a, mut b) = (vec![0u8; bytes.len()], vec![0u8; bytes.len()]);
    cpu.process(
        &input,
        &mut FrameMut::new(&mut a, w as u32, h as u32, w * bpp, format).unwrap(),
    )
    .unwrap();
    gpu.process(
        &input,
        &mut FrameMut::new(&mut b, w as u32, h as u32, w * bpp, format).unwrap(),
    )
    .unwrap();
    (bytes, a, b)
}

/// The largest byte difference and how many bytes differ.
fn byte_diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0);
    (worst, a.iter().zip(b).filter(|(x, y)| x != y).count())
}

#[test]
fn cuda_physics_frames_match_cpu() {
    let Some((mut cpu, mut gpu)) = pipelines("cuda_physics_frames_match_cpu") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for &(w, h, format, strength) in &[
        (53, 31, PixelFormat::Rgba, 1.0),
        (320, 181, PixelFormat::Bgrx, 0.7),
        (641, 361, PixelFormat::Rgb, 1.0),
        (1280, 720, PixelFormat::Bgra, 0.5),
    ] {
        if !keep(w) {
            continue;
        }
        let (_, a, b) = frames_side_by_side(&mut cpu, &mut gpu, (w, h, format, strength), &mut rng);
        assert_eq!(
            cpu.last_run().unwrap().atmosphere,
            gpu.last_run().unwrap().atmosphere
        );
        let (worst, off) = byte_diff(&a, &b);
        assert!(
            worst <= 1 && off * 1000 <= a.len(),
            "{w}x{h} {format:?}: worst byte Δ {worst}, {off} of {} bytes differ",
            a.len()
        );
    }
}

#[test]
fn cuda_frames_in_flight_match_one_at_a_time() {
    let Some(e) = engine("cuda_frames_in_flight_match_one_at_a_time") else {
        return;
    };
    let (w, h) = (333, 197);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let frames: Vec<Vec<u8>> = (0..7)
        .map(|_| {
            let img = image(w, h, &mut rng);
            let mut v = vec![0u8; w * h * 4];
            let mut f =
                FrameMut::new(&mut v, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            img.write_frame(&mut f, None).unwrap();
            v
        })
        .collect();
    let cfg = Config::default();
    // One at a time through a CPU pipeline (same tracker sequence).
    let mut cpu = Pipeline::new(Config {
        backend: Backend::Cpu,
        ..cfg.clone()
    })
    .unwrap();
    let want: Vec<Vec<u8>> = frames
        .iter()
        .map(|v| {
            let input = FrameRef::new(v, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            let mut o = vec![0u8; v.len()];
            cpu.process(
                &input,
                &mut FrameMut::new(&mut o, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap(),
            )
            .unwrap();
            o
        })
        .collect();
    // Three in flight on the device.
    let mut tracker = derain::physics::AtmosphereTracker::new(cfg.atmosphere_smoothing);
    let refs: Vec<FrameRef<'_>> = frames
        .iter()
        .map(|v| FrameRef::new(v, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap())
        .collect();
    let mut tickets = std::collections::VecDeque::new();
    let mut got = Vec::new();
    for f in &refs {
        if tickets.len() == derain::engine::cuda::RING_DEPTH {
            let mut o = vec![0u8; w * h * 4];
            let mut fm =
                FrameMut::new(&mut o, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            e.finish(tickets.pop_front().unwrap(), &mut fm).unwrap();
            got.push(o);
        }
        tickets.push_back(e.submit(f, &cfg, &mut tracker).unwrap());
    }
    // The ring is full: one more submit without a finish is an error, not a hang.
    assert!(e.submit(&refs[0], &cfg, &mut tracker).is_err());
    while let Some(t) = tickets.pop_front() {
        let mut o = vec![0u8; w * h * 4];
        let mut fm = FrameMut::new(&mut o, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
        e.finish(t, &mut fm).unwrap();
        got.push(o);
    }
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in want.iter().zip(&got).enumerate() {
        let worst = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        assert!(worst <= 1, "frame {i}: worst byte Δ {worst}");
    }
}

/// The streak network on the device (kernels/nets.cu, engine/cuda/nets.rs) against the native
/// CPU runtime, both shipped sizes, at a small size and at 1080p padded: the same fused
/// multiply-adds in the same order, so equal up to the device's rounding (1e-5 allowed).
#[test]
fn cuda_streak_network_matches_the_native_runtime() {
    use derain::nets::{FullNets, ModelSize};
    let Some(e) = engine("cuda_streak_network_matches_the_native_runtime") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for size in [ModelSize::Fast, ModelSize::Quality] {
        let mut nets = FullNets::embedded(size).unwrap();
        let layers = nets
            .streak
            .streak_layers()
            .expect("the native runtime runs it");
        for (w, h) in [(48, 32), (1920, 1088)] {
            if !keep(w) {
                continue;
            }
            let img = image(w, h, &mut rng);
            let rgb: Vec<f32> = img
                .planes
                .iter()
                .flat_map(|p| p.data.iter().copied())
                .collect();
            let want = nets.streak.run(h, w, &[&rgb]).unwrap().remove(0);
            let got = e.ops().streak_rain(&layers, &img).unwrap();
            for (c, plane) in got.iter().enumerate() {
                let cpu = Plane {
                    width: w,
                    height: h,
                    data: want[c * w * h..(c + 1) * w * h].to_vec(),
                };
                assert_close(&format!("{size:?} R[{c}] {w}x{h}"), &cpu, plane, 1e-5);
            }
        }
    }
}

/// `full` mode on CUDA (every full-resolution step on the GPU) against the CPU engine, both
/// shipped sizes, odd sizes and two frames of a stream: the same components within the
/// tolerance.
#[test]
fn cuda_full_mode_matches_cpu() {
    use derain::Mode;
    use derain::nets::{ModelChoice, ModelSize};
    if engine("cuda_full_mode_matches_cpu").is_none() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    for size in [ModelSize::Fast, ModelSize::Quality] {
        let config = |backend| Config {
            backend,
            mode: Mode::Full,
            model: Some(ModelChoice::Embedded(size)),
            ..Config::default()
        };
        let mut cpu = Pipeline::new(config(Backend::Cpu)).unwrap();
        let mut gpu = Pipeline::new(config(Backend::Cuda)).unwrap();
        assert_eq!(gpu.backend_name(), "cuda");
        for &(w, h) in &[(37, 23), (641, 359), (1920, 1080)] {
            if !keep(w) {
                continue;
            }
            for frame in 0..2 {
                let img = image(w, h, &mut rng);
                let c = cpu.components(&img).unwrap();
                let g = gpu.components(&img).unwrap();
                let what = |s: &str| format!("{size:?} {s} {w}x{h} frame {frame}");
                assert_planes_close(&what, &c, &g);
            }
        }
    }
}

/// The mirror ensemble on CUDA (kernels/full.cu `mirror_rows_f32`, `mean_mirrored_f32`, the
/// streak network twice) against the CPU engine: the same components within the tolerance.
#[test]
fn cuda_full_mode_with_the_mirror_ensemble_matches_cpu() {
    use derain::Mode;
    use derain::nets::{ModelChoice, ModelSize};
    if engine("cuda_full_mode_with_the_mirror_ensemble_matches_cpu").is_none() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for size in [ModelSize::Fast, ModelSize::Quality] {
        let config = |backend| Config {
            backend,
            mode: Mode::Full,
            model: Some(ModelChoice::Embedded(size)),
            ensemble: true,
            ..Config::default()
        };
        let mut cpu = Pipeline::new(config(Backend::Cpu)).unwrap();
        let mut gpu = Pipeline::new(config(Backend::Cuda)).unwrap();
        for &(w, h) in &[(37, 23), (641, 359)] {
            let img = image(w, h, &mut rng);
            let c = cpu.components(&img).unwrap();
            let g = gpu.components(&img).unwrap();
            assert_planes_close(&|s: &str| format!("{size:?} ensemble {s} {w}x{h}"), &c, &g);
        }
    }
}

/// `full` mode on CUDA with a veil whose TNet sees the whole frame (tests/fixtures/nets/tglobal
/// beside the shipped `fast` streak and refinement networks) against the CPU engine.
#[test]
fn cuda_full_mode_with_a_global_context_veil_matches_cpu() {
    use derain::Mode;
    use derain::nets::ModelChoice;
    if engine("cuda_full_mode_with_a_global_context_veil_matches_cpu").is_none() {
        return;
    }
    // The files are compiled in: the test binary runs where the source tree may not be.
    let dir = std::env::temp_dir().join(format!("derain-cuda-tglobal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in [
        (
            "stage1.onnx",
            &include_bytes!("fixtures/nets/tglobal/stage1.onnx")[..],
        ),
        (
            "streak.onnx",
            &include_bytes!("../models/fast/streak.onnx")[..],
        ),
        (
            "stage2.onnx",
            &include_bytes!("../models/fast/stage2.onnx")[..],
        ),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let config = |backend| Config {
        backend,
        mode: Mode::Full,
        model: Some(ModelChoice::Dir(dir.clone())),
        ..Config::default()
    };
    let mut cpu = Pipeline::new(config(Backend::Cpu)).unwrap();
    let mut gpu = Pipeline::new(config(Backend::Cuda)).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for &(w, h) in &[(37, 23), (641, 359)] {
        let img = image(w, h, &mut rng);
        let c = cpu.components(&img).unwrap();
        let g = gpu.components(&img).unwrap();
        assert_planes_close(&|s: &str| format!("tglobal {s} {w}x{h}"), &c, &g);
    }
}

/// `full` mode on CUDA into packed frames (the device's finish: blend, packing, alpha) against
/// the CPU engine: bytes within one level but where R's device rounding moves a pixel over a
/// rounding edge.
#[test]
fn cuda_full_mode_frames_match_cpu() {
    use derain::Mode;
    use derain::nets::{ModelChoice, ModelSize};
    if engine("cuda_full_mode_frames_match_cpu").is_none() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let config = |backend| Config {
        backend,
        mode: Mode::Full,
        model: Some(ModelChoice::Embedded(ModelSize::Fast)),
        ..Config::default()
    };
    let mut cpu = Pipeline::new(config(Backend::Cpu)).unwrap();
    let mut gpu = Pipeline::new(config(Backend::Cuda)).unwrap();
    for &(w, h, format, strength) in &[
        (53, 31, PixelFormat::Rgba, 1.0),
        (641, 361, PixelFormat::Bgrx, 0.7),
        (1280, 720, PixelFormat::Rgb, 1.0),
        (1920, 1080, PixelFormat::Bgra, 0.5),
    ] {
        if !keep(w) {
            continue;
        }
        let (bytes, a, b) =
            frames_side_by_side(&mut cpu, &mut gpu, (w, h, format, strength), &mut rng);
        let (worst, off) = byte_diff(&a, &b);
        assert!(
            worst <= 1 && off * 100 <= a.len(),
            "{w}x{h} {format:?}: worst byte Δ {worst}, {off} of {} bytes differ",
            a.len()
        );
        assert_ne!(a, bytes, "{w}x{h}: the frame changed");
    }
}
