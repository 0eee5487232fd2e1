//! A camera's grain must not come out as a snowstorm: on frames with no rain and sensor
//! noise (flat grey, a dark night frame, pure noise), the derained output's noise may grow
//! only a bounded amount, and it must not saturate.

use derain::{Config, Mode, Pipeline, PlanarRgb, Plane};

/// A `w`×`h` frame of `level` plus Gaussian noise of `sigma` (independent per channel),
/// quantised to 8 bits; `level` may vary per row (`slope` per row).
fn noisy(w: usize, h: usize, level: f32, slope: f32, sigma: f32, seed: u64) -> PlanarRgb {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = Normal::new(0.0f32, sigma).unwrap();
    let planes = [0, 1, 2].map(|_| {
        let data = (0..w * h)
            .map(|i| {
                let v = level + slope * (i / w) as f32 + n.sample(&mut rng);
                (v.clamp(0.0, 1.0) * 255.0).round() / 255.0
            })
            .collect();
        Plane::from_vec(w, h, data).unwrap()
    });
    PlanarRgb::from_planes(planes).unwrap()
}

fn uniform_noise(w: usize, h: usize, seed: u64) -> PlanarRgb {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let planes = [0, 1, 2].map(|_| {
        let data = (0..w * h)
            .map(|_| f32::from(rng.random::<u8>()) / 255.0)
            .collect();
        Plane::from_vec(w, h, data).unwrap()
    });
    PlanarRgb::from_planes(planes).unwrap()
}

/// Standard deviation of the pixel-to-pixel differences along x (the grain, not the level).
fn grain(img: &PlanarRgb) -> f64 {
    let mut s = 0.0f64;
    let mut n = 0usize;
    for p in &img.planes {
        for y in 0..p.height {
            let r = p.row(y);
            for x in 1..p.width {
                let d = f64::from(r[x] - r[x - 1]);
                s += d * d;
                n += 1;
            }
        }
    }
    (s / n as f64 / 2.0).sqrt()
}

/// Fraction of samples at 0 or 1.
fn saturated(img: &PlanarRgb) -> f64 {
    let all: Vec<f32> = img
        .planes
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    all.iter().filter(|&&v| v <= 0.0 || v >= 1.0).count() as f64 / all.len() as f64
}

fn run(mode: Mode, img: &PlanarRgb) -> PlanarRgb {
    let mut p = Pipeline::new(Config {
        mode,
        backend: derain::Backend::Cpu,
        ..Config::default()
    })
    .unwrap();
    let mut out = p.process_image(img).unwrap();
    out.quantize();
    out
}

/// (grain growth, saturated fraction after, saturated before) of `mode` on `img`.
fn effect(mode: Mode, img: &PlanarRgb) -> (f64, f64, f64) {
    let out = run(mode, img);
    (grain(&out) / grain(img), saturated(&out), saturated(img))
}

// Before the noise bound (physics / full): flat grey ×4.9 / ×7.1 grain; dark night ×3.1 with
// 17.5 % of samples clipped in physics; pure noise 60 % / 18 % clipped.

#[test]
fn flat_grey_grain_grows_at_most_2_5_times() {
    for mode in [Mode::Physics, Mode::Full] {
        for level in [0.5, 0.8] {
            let (growth, sat, _) = effect(mode, &noisy(320, 240, level, 0.0, 2.0 / 255.0, 1));
            assert!(growth < 2.5, "{mode:?} grey {level}: grain ×{growth:.2}");
            assert!(sat < 0.001, "{mode:?} grey {level}: {sat:.3} clipped");
        }
    }
}

#[test]
fn a_dark_noisy_night_frame_is_not_turned_into_snow() {
    for mode in [Mode::Physics, Mode::Full] {
        let (growth, sat, _) = effect(mode, &noisy(320, 240, 0.06, 0.0, 4.0 / 255.0, 2));
        assert!(growth < 2.2, "{mode:?}: grain ×{growth:.2}");
        assert!(sat < 0.06, "{mode:?}: {sat:.3} clipped");
        let (growth, sat, before) = effect(mode, &noisy(320, 240, 0.02, 0.0006, 3.0 / 255.0, 3));
        assert!(growth < 1.5, "{mode:?} gradient: grain ×{growth:.2}");
        assert!(
            sat < before + 0.06,
            "{mode:?} gradient: {before:.3} -> {sat:.3} clipped"
        );
    }
}

#[test]
fn pure_noise_is_left_as_it_is() {
    for mode in [Mode::Physics, Mode::Full] {
        let (growth, sat, before) = effect(mode, &uniform_noise(320, 240, 5));
        assert!(growth < 1.1, "{mode:?}: grain ×{growth:.2}");
        assert!(
            sat < before + 0.01,
            "{mode:?}: {before:.3} -> {sat:.3} clipped"
        );
    }
}
