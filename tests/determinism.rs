//! Outputs are bit-identical whatever the thread count and the scheduling: the same rainy
//! frames through each mode in rayon pools of 1, 2, 3, 4 and 8 threads, and repeatedly at 4,
//! must hash the same. (Row passes used to keep a running column sum per thread and rebuild
//! it where a thread's range began, so a different split gave 1-LSB differences.)

mod common;

use derain::synth::{RainParams, RainRange, Style};
use derain::{Config, FrameMut, FrameRef, Mode, Pipeline, PixelFormat, PlanarRgb, TemporalMode};
use rand::SeedableRng;

/// Three rainy RGBA frames of `w`×`h` (tall enough for many row blocks).
fn frames(w: usize, h: usize) -> Vec<Vec<u8>> {
    let scene = common::scene(w, h);
    (0..3u64)
        .map(|seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(40 + seed);
            let range = RainRange {
                style: Style::Layered,
                intensity: (0.9, 0.9),
            };
            let p = RainParams::sample(&mut rng, &range).unwrap();
            let s = derain::synth::render(&scene, &p).unwrap();
            let mut bytes = vec![0u8; w * h * 4];
            let mut f =
                FrameMut::new(&mut bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            s.input.write_frame(&mut f, None).unwrap();
            bytes
        })
        .collect()
}

fn fnv(hash: &mut u64, bytes: impl IntoIterator<Item = u8>) {
    for b in bytes {
        *hash = (*hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
}

fn fnv_floats<'a>(hash: &mut u64, values: impl IntoIterator<Item = &'a f32>) {
    fnv(
        hash,
        values.into_iter().flat_map(|v| v.to_bits().to_le_bytes()),
    );
}

/// FNV-1a of every output of a fresh pipeline run in a pool of `threads`: the 8-bit frames,
/// then (a second pipeline) the float components J, T, S of each frame, where a difference
/// in the last bit shows even when it does not change a rounded byte.
fn run(config: &Config, input: &[Vec<u8>], w: usize, h: usize, threads: usize) -> u64 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut p = Pipeline::new(config.clone()).unwrap();
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        let mut out = vec![0u8; w * h * 4];
        for bytes in input {
            let src = FrameRef::new(bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            let mut dst =
                FrameMut::new(&mut out, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            p.process(&src, &mut dst).unwrap();
            fnv(&mut hash, out.iter().copied());
        }
        let mut p = Pipeline::new(config.clone()).unwrap();
        for bytes in input {
            let src = FrameRef::new(bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            let c = p.components(&PlanarRgb::from_frame(&src)).unwrap();
            for plane in &c.background.planes {
                fnv_floats(&mut hash, &plane.data);
            }
            fnv_floats(&mut hash, &c.transmission.data);
            fnv_floats(&mut hash, &c.streaks.data);
            fnv_floats(&mut hash, &c.atmosphere);
        }
        hash
    })
}

fn check(config: Config, w: usize, h: usize) {
    let input = frames(w, h);
    let want = run(&config, &input, w, h, 1);
    for threads in [2, 3, 4, 4, 4, 8] {
        let got = run(&config, &input, w, h, threads);
        assert_eq!(
            got, want,
            "{:?}: {threads} threads give another output than 1 thread",
            config.mode
        );
    }
}

fn cpu(mode: Mode) -> Config {
    Config {
        mode,
        backend: derain::Backend::Cpu,
        ..Config::default()
    }
}

#[test]
fn physics_is_bit_identical_at_any_thread_count() {
    check(cpu(Mode::Physics), 400, 900);
}

#[test]
fn physics_with_temporal_is_bit_identical_at_any_thread_count() {
    let mut c = cpu(Mode::Physics);
    c.temporal = TemporalMode::On;
    check(c, 320, 600);
}

#[test]
fn full_is_bit_identical_at_any_thread_count() {
    check(cpu(Mode::Full), 256, 400);
}
