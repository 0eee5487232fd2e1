//! The rain families of the renderer: how [`RainParams::sample`] draws each one. A sample
//! sheet of every family is in `docs/rain-styles/`; `docs/RAIN_STYLES.md` shows them.
//!
//! | family | layers | angle (° from +x, y down) | width / length px | blend | veil |
//! |---|---|---|---|---|---|
//! | (a) reference | 1, `imnoise` N(m, v) clipped to [0, 1], m = −4·U(0.2, 0.25), v = U(0.7, 1) | 80–100 in 5° steps | ×U(1.01, 1.21) bicubic / 21–60 | add, clip; weight 0.2 + 0.04L + 0.05u; background pre-blur σ = min(1, \|N(0.5, 0.5)\|) | always: β U(2.6, 4.6), grey A U(0.25, 0.95), depth blur σ 5 |
//! | (b) dense | 1–5, each its own angle, point drops blurred to the width, 5–20 % cover each | 90 ± 30 (one sample in five ± 60) | FWHM 1 + 8u³ (1–9) / 25–60 | add, clip; isolated streaks peak 0.15–0.6 | half: β U(2.6, 4.6)·U(0.2, 0.8) |
//! | (c) screen | 1–2, noise (half the pixels) → blur σ 0.3–1.2 → motion blur → levels (k_lo U(−0.2, 1.8), k_hi = k_lo + U(1.5, 4)) | 90 ± 35 | ×U(1, 2) / 15–150 (log-uniform) | screen, opacity 0.4–1 | one in three: β U(2.6, 4.6)·U(0.2, 0.7) |
//! | (d) layered | far (short, faint), reference, near (long, defocused) | shared wind 80–100 (one in four 65–115) | see [`layered`] | achromatic model blend | β U(2.6, 4.6)·(0.25..1), fading out below intensity 0.3 |
//! | (e) light | (d) at intensity 0–0.25, or nothing (one in four) | as (d) | | achromatic | as (d): thin or none |
//! | (f) grainy | 1–3, drops on 1.2–8 % of the pixels, uneven, a layer's mean 0.01–0.08 | one angle 90 ± 35, each layer ± 6 | FWHM 0.75–2.5 / 4–20 | add-clip 40 %, screen 30 %, achromatic 30 % | half: β U(2.6, 4.6)·U(0.2, 0.8) |
//!
//! Every family but (a) draws A as a grey level (triangular on [0.25, 0.95]) with a slight
//! tint, and a perturbed depth prior; (a) uses the reference's grey A and the default prior.

use rand::{Rng, RngCore};

use super::REFERENCE_AMPLITUDE;
use super::matlab::normal_cdf;
use super::params::{Blend, DepthPrior, LayerMethod, RainParams, StreakLayer, Style};
use super::streaks::normal_quantile;

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Grey level triangular on [0.25, 0.95] (mode 0.6) with a slight, bluish tint (±3 % per
/// channel): the extremes (a near-black or a blinding veil) are rarer than with a uniform
/// draw, and overcast daylight is slightly blue.
fn tinted_atmosphere<R: RngCore + ?Sized>(rng: &mut R) -> [f32; 3] {
    let grey = 0.25 + 0.35 * (rng.random_range(0.0..=1.0f32) + rng.random_range(0.0..=1.0f32));
    let blue = rng.random_range(0.0..=0.04f32);
    let tint = [
        rng.random_range(-0.03..=0.03f32) - 0.5 * blue,
        rng.random_range(-0.03..=0.03f32),
        rng.random_range(-0.03..=0.03f32) + blue,
    ];
    tint.map(|t| (grey * (1.0 + t)).clamp(0.0, 1.0))
}

/// A perturbed depth prior: horizon 5–50 % of the height, ε 0.06–0.16, curved, tilted and
/// wobbled.
fn random_prior<R: RngCore + ?Sized>(rng: &mut R) -> DepthPrior {
    DepthPrior {
        horizon: rng.random_range(0.05..=0.5),
        offset: rng.random_range(0.06..=0.16),
        gamma: rng.random_range(0.7..=1.6),
        tilt: rng.random_range(-0.25..=0.25),
        wobble: rng.random_range(0.0..=0.15),
    }
}

/// β for a veil on a share `p` of the samples, U(2.6, 4.6)·U(0.2, `hi`), else 0 (no veil).
fn veil_on_share<R: RngCore + ?Sized>(rng: &mut R, p: f64, hi: f32) -> f32 {
    if rng.random_bool(p) {
        rng.random_range(2.6..=4.6f32) * rng.random_range(0.2..=hi)
    } else {
        0.0
    }
}

/// The parameters every family but (a) shares: its layers, blend, β and name, then (drawn in
/// this order) a tinted A, a perturbed depth prior and the noise seed; no background or
/// depth blur, intensity 1.
fn drawn_scene<R: RngCore + ?Sized>(
    rng: &mut R,
    layers: Vec<StreakLayer>,
    blend: Blend,
    beta: f32,
    style: Style,
) -> RainParams {
    RainParams {
        layers,
        blend,
        background_blur_px: 0.0,
        beta,
        atmosphere: tinted_atmosphere(rng),
        depth: random_prior(rng),
        depth_blur_px: 0.0,
        seed: rng.next_u64(),
        intensity: 1.0,
        style,
    }
}

/// E[n | n > 0] for the seed noise n ~ N(μ, σ²) with P(n > 0) = `density` (σ = `amplitude`).
fn tail_mean(density: f32, amplitude: f32) -> f32 {
    let q = normal_quantile(density as f64);
    let phi = (-0.5 * q * q).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (amplitude as f64 * (q + phi / density as f64)) as f32
}

/// (a) The reference generator as its MATLAB code runs (`generate_dataset.m`,
/// `render_rain(im, theta, 0.1, -4, 0.7)`, `render_haze.m`).
pub(super) fn reference<R: RngCore + ?Sized>(rng: &mut R) -> RainParams {
    // theta = s·5 + 75 for s = 1..5 (MATLAB's angle convention).
    let theta = 75.0 + 5.0 * rng.random_range(1..=5) as f32;
    let scale = 1.01 + 0.2 * rng.random_range(0.0..1.0f32);
    let mean = -4.0 * (0.2 + 0.05 * rng.random_range(0.0..1.0f32));
    let variance = 0.7 + 0.3 * rng.random_range(0.0..1.0f32);
    let len = (rng.random_range(1..=40) + 20) as f32;
    let weight = 0.05 * rng.random_range(0.0..1.0f32) + 0.04 * len + 0.2;
    let sigma = variance.sqrt();
    let layer = StreakLayer {
        density: normal_cdf((mean / sigma) as f64) as f32,
        amplitude: sigma,
        scale,
        angle_deg: 180.0 - theta,
        length_px: len,
        defocus_px: 0.0,
        weight,
        seed_max: 1.0,
        seed_blur_px: 0.0,
        levels: None,
        method: LayerMethod::Matlab,
    };
    let pre_blur: f32 = {
        // min(1, |normrnd(0.5, 0.5)|), by Box–Muller.
        let (u1, u2) = (
            rng.random_range(f32::EPSILON..1.0f32),
            rng.random_range(0.0..1.0f32),
        );
        let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
        (0.5 + 0.5 * z).abs().min(1.0)
    };
    let beta = rng.random_range(0.0..1.0f32) * 2.0 + 2.6;
    let a = 0.25 + 0.7 * rng.random_range(0.0..1.0f32);
    RainParams {
        layers: vec![layer],
        blend: Blend::AddClip,
        // imgaussfilt needs σ > 0; a draw of exactly 0 leaves the background as it is.
        background_blur_px: pre_blur,
        beta,
        atmosphere: [a; 3],
        depth: DepthPrior::default(),
        depth_blur_px: 5.0,
        seed: rng.next_u64(),
        intensity: 1.0,
        style: Style::Reference,
    }
}

/// Gaussian σ of a drop of full width at half maximum `width_px`.
fn fwhm_sigma(width_px: f32) -> f32 {
    width_px / (8.0 * std::f32::consts::LN_2).sqrt()
}

/// (b) Dense, bright, multi-direction streaks, additive with clipping. Drops are points blurred
/// to a round blob of the drawn width (FWHM), then motion-blurred; each layer covers 5–20 % of
/// the image and its isolated streaks peak at 0.15–0.6 above the background.
pub(super) fn dense<R: RngCore + ?Sized>(rng: &mut R) -> RainParams {
    let n = rng.random_range(1..=5);
    let spread = if rng.random_bool(0.2) { 60.0 } else { 30.0 };
    let layers = (0..n)
        .map(|_| {
            let angle = 90.0 + rng.random_range(-spread..=spread);
            // Thin streaks are much more common than wide ones: width = 1 + 8·u³.
            let u: f32 = rng.random_range(0.0..=1.0);
            let width = 1.0 + 8.0 * u * u * u;
            let sigma = fwhm_sigma(width).max(0.4);
            let len = rng.random_range(25.0..=60.0f32);
            let coverage = rng.random_range(0.05..=0.2f32);
            let density = (coverage / (width * len)).min(0.2);
            let peak = rng.random_range(0.15..=0.6f32);
            // An isolated point drop n peaks at n/(σ·√(2π)·L) after both blurs.
            let gain = sigma * (2.0 * std::f32::consts::PI).sqrt() * len;
            StreakLayer {
                density,
                amplitude: 1.0,
                scale: 1.0,
                angle_deg: angle,
                length_px: len,
                defocus_px: 0.0,
                weight: peak * gain / tail_mean(density, 1.0),
                seed_max: f32::INFINITY,
                seed_blur_px: sigma,
                levels: None,
                method: LayerMethod::Fast,
            }
        })
        .collect();
    let beta = veil_on_share(rng, 0.5, 0.8);
    drawn_scene(rng, layers, Blend::AddClip, beta, Style::Dense)
}

/// (c) Photographic rain: the recipe of photo editors (monochrome noise on black, a slight
/// blur, a motion blur, "levels" to keep the brightest strokes, a screen blend).
pub(super) fn screen<R: RngCore + ?Sized>(rng: &mut R) -> RainParams {
    let n = if rng.random_bool(0.8) { 1 } else { 2 };
    let layers = (0..n)
        .map(|_| {
            let k_lo = rng.random_range(-0.2..=1.8f32);
            StreakLayer {
                density: 0.5,
                amplitude: 1.0,
                scale: rng.random_range(1.0..=2.0),
                angle_deg: 90.0 + rng.random_range(-35.0..=35.0f32),
                // Log-uniform on 15–150 px: mostly short strokes, some very long ones (slow
                // shutters, which real photographs often have).
                length_px: 15.0 * 10f32.powf(rng.random_range(0.0..=1.0f32)),
                defocus_px: 0.0,
                weight: rng.random_range(0.4..=1.0),
                seed_max: f32::INFINITY,
                seed_blur_px: rng.random_range(0.3..=1.2),
                levels: Some((k_lo, k_lo + rng.random_range(1.5..=4.0f32))),
                method: LayerMethod::Fast,
            }
        })
        .collect();
    let beta = veil_on_share(rng, 1.0 / 3.0, 0.7);
    drawn_scene(rng, layers, Blend::Screen, beta, Style::Screen)
}

/// (d) Depth-layered rain at intensity `k` ∈ [0, 1]: up to three layers (short faint far
/// drops, the reference layer, long soft out-of-focus near drops) sharing a wind angle.
/// The draws and their order are those of the renderer's first (`extended`) family, so
/// earlier data sets render bit-identically.
pub(super) fn layered<R: RngCore + ?Sized>(rng: &mut R, k: f32) -> RainParams {
    // The reference's 80–100° most of the time; one sample in four gets wind-blown rain
    // (65–115°), which real photographs often show.
    let wind = if rng.random_bool(0.25) {
        rng.random_range(65.0..=115.0f32)
    } else {
        rng.random_range(80.0..=100.0f32)
    };
    let jitter = |rng: &mut R, d: f32| (wind + rng.random_range(-d..=d)).clamp(60.0, 120.0);
    let main_density = lerp(0.002, 0.009, k) * rng.random_range(0.7..=1.3);
    let mut layers = Vec::with_capacity(3);
    // Fine, distant drops: short, dense, faint.
    if rng.random_bool((0.4 + 0.5 * k as f64).min(1.0)) {
        let len = rng.random_range(8.0..=25.0);
        layers.push(StreakLayer {
            density: (main_density * rng.random_range(1.0..=2.5)).min(0.2),
            amplitude: REFERENCE_AMPLITUDE * rng.random_range(0.4..=0.7),
            scale: rng.random_range(1.0..=1.08),
            angle_deg: jitter(rng, 3.0),
            length_px: len,
            defocus_px: rng.random_range(0.0..=0.4),
            ..StreakLayer::reference(0.0, 1.0, 90.0, len)
        });
    }
    // The reference layer (always present).
    let len = rng.random_range(21.0..=60.0);
    layers.push(StreakLayer {
        density: main_density,
        amplitude: REFERENCE_AMPLITUDE * rng.random_range(0.8..=1.2),
        scale: rng.random_range(1.01..=1.21),
        angle_deg: jitter(rng, 1.5),
        length_px: len,
        defocus_px: rng.random_range(0.0..=0.6),
        ..StreakLayer::reference(0.0, 1.0, 90.0, len)
    });
    // Large, out-of-focus drops close to the camera: sparse, long, soft.
    if rng.random_bool((0.2 + 0.5 * k as f64).min(1.0)) {
        let len = rng.random_range(60.0..=140.0);
        layers.push(StreakLayer {
            density: (main_density * rng.random_range(0.05..=0.2)).max(2e-4),
            amplitude: REFERENCE_AMPLITUDE * rng.random_range(0.8..=1.4),
            scale: rng.random_range(1.5..=2.6),
            angle_deg: jitter(rng, 3.0),
            length_px: len,
            defocus_px: rng.random_range(1.0..=3.0),
            ..StreakLayer::reference(0.0, 1.0, 90.0, len)
        });
    }
    // Veil: the reference β range at k = 1, thinning towards light rain, and fading out
    // below k = 0.3 so that the lightest renders have no veil (T = 1), as light real rain
    // often has none. Without veil-free pairs the networks learned to dehaze every scene.
    let beta = rng.random_range(2.6..=4.6f32) * lerp(0.25, 1.0, k) * (k / 0.3).min(1.0);
    RainParams {
        intensity: k,
        ..drawn_scene(rng, layers, Blend::Achromatic, beta, Style::Layered)
    }
}

/// (f) Grainy rain: heavy rain as a compressed web photo shows it. Seen in 5× crops of real
/// photo 1 (a crowd under dense rain, 600×407) the drops are 5–8 px long, 1–2 px wide, soft,
/// of uneven brightness and everywhere; the other families' streaks stay long, crisp lines
/// when scaled down, blurred or made faint, and the networks trained on them take about one
/// grey level off that photo (BENCHMARKS.md §7, thirty-fourth session). 1–3 layers sharing a
/// base angle within ±35° of vertical (each layer ±6° from it); per layer drops seeded on
/// 1.2–8 % of the pixels (the seed noise's positive tail: most drops faint, a few bright),
/// blurred to a FWHM of 0.75–2.5 px and motion-blurred over 4–20 px, the layer's mean
/// brightness 0.01–0.08. The training-side `rain.grainy_rain` draws the same look on the
/// GPU; training/tests/test_rain.py checks the two against each other.
pub(super) fn grainy<R: RngCore + ?Sized>(rng: &mut R) -> RainParams {
    let base = 90.0 + rng.random_range(-35.0..=35.0f32);
    let n = rng.random_range(1..=3);
    let layers = (0..n)
        .map(|_| {
            let width = rng.random_range(0.75..=2.5f32);
            let density = rng.random_range(0.012..=0.08f32);
            let mean = rng.random_range(0.01..=0.08f32);
            StreakLayer {
                density,
                amplitude: 1.0,
                scale: 1.0,
                angle_deg: base + rng.random_range(-6.0..=6.0f32),
                length_px: rng.random_range(4.0..=20.0),
                defocus_px: 0.0,
                // Both blurs keep the mean: the layer's mean is weight · density · E[n | n > 0].
                weight: mean / (density * tail_mean(density, 1.0)),
                seed_max: f32::INFINITY,
                seed_blur_px: fwhm_sigma(width),
                levels: None,
                method: LayerMethod::Fast,
            }
        })
        .collect();
    let u: f32 = rng.random_range(0.0..1.0);
    let blend = if u < 0.4 {
        Blend::AddClip
    } else if u < 0.7 {
        Blend::Screen
    } else {
        Blend::Achromatic
    };
    let beta = veil_on_share(rng, 0.5, 0.8);
    drawn_scene(rng, layers, blend, beta, Style::Grainy)
}

/// (e) Light rain or a clear frame.
pub(super) fn light<R: RngCore + ?Sized>(rng: &mut R) -> RainParams {
    let clear = rng.random_bool(0.25);
    let k = rng.random_range(0.0..=0.25f32);
    let mut p = layered(rng, k);
    if clear {
        p.layers.clear();
        p.beta = 0.0;
        p.intensity = 0.0;
    }
    p.style = Style::Light;
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::RainRange;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn draw(style: Style, n: usize) -> Vec<RainParams> {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let range = RainRange {
            style,
            intensity: (0.0, 1.0),
        };
        (0..n)
            .map(|_| RainParams::sample(&mut rng, &range).unwrap())
            .collect()
    }

    #[test]
    fn every_family_draws_valid_parameters_within_its_documented_ranges() {
        for p in draw(Style::Reference, 300) {
            p.validate().unwrap();
            let l = &p.layers[0];
            let theta = 180.0 - l.angle_deg;
            assert!([80.0, 85.0, 90.0, 95.0, 100.0].contains(&theta), "{theta}");
            assert!((21.0..=60.0).contains(&l.length_px) && l.length_px.fract() == 0.0);
            assert!((1.01..=1.21).contains(&l.scale));
            let w0 = 0.2 + 0.04 * l.length_px;
            assert!(l.weight >= w0 - 1e-5 && l.weight <= w0 + 0.05 + 1e-5);
            // imnoise mean m ∈ [−1, −0.8] and variance v ∈ [0.7, 1]: P(n > 0) = Φ(m/√v).
            assert!((0.11..=0.22).contains(&l.density), "{}", l.density);
            assert!((0.7f32.sqrt()..=1.0).contains(&l.amplitude));
            assert!((0.0..=1.0).contains(&p.background_blur_px));
            assert!((2.6..=4.6).contains(&p.beta) && p.depth_blur_px == 5.0);
            assert!(p.atmosphere[0] == p.atmosphere[1] && p.atmosphere[1] == p.atmosphere[2]);
            assert!((0.25..=0.95).contains(&p.atmosphere[0]));
            assert_eq!(p.blend, Blend::AddClip);
        }
        let mut wide = 0;
        for p in draw(Style::Dense, 300) {
            p.validate().unwrap();
            assert!((1..=5).contains(&p.layers.len()));
            for l in &p.layers {
                assert!((30.0..=150.0).contains(&l.angle_deg));
                wide += usize::from((l.angle_deg - 90.0).abs() > 30.0);
                let fwhm = l.seed_blur_px * (8.0 * std::f32::consts::LN_2).sqrt();
                assert!((0.9..=9.0 + 1e-4).contains(&fwhm), "{fwhm}");
                assert!((25.0..=60.0).contains(&l.length_px));
            }
            assert_eq!(p.blend, Blend::AddClip);
        }
        assert!(wide > 0, "some dense samples spread beyond ±30°");
        for p in draw(Style::Screen, 200) {
            p.validate().unwrap();
            assert_eq!(p.blend, Blend::Screen);
            assert!(p.layers.iter().all(|l| l.levels.is_some()));
        }
        let light = draw(Style::Light, 200);
        let clear = light.iter().filter(|p| p.layers.is_empty()).count();
        assert!((25..=80).contains(&clear), "{clear} clear of 200");
        for p in &light {
            p.validate().unwrap();
            assert!(p.intensity <= 0.25 && p.beta <= 4.6 * 0.25 / 0.3 + 1e-5);
        }
        let mut blends = [0usize; 3];
        for p in draw(Style::Grainy, 300) {
            p.validate().unwrap();
            assert!((1..=3).contains(&p.layers.len()));
            let base = p.layers[0].angle_deg;
            for l in &p.layers {
                assert!((49.0 - 1e-4..=131.0 + 1e-4).contains(&l.angle_deg));
                assert!(
                    (l.angle_deg - base).abs() <= 12.0 + 1e-4,
                    "one wind per sample"
                );
                assert!((4.0..=20.0).contains(&l.length_px));
                let fwhm = l.seed_blur_px * (8.0 * std::f32::consts::LN_2).sqrt();
                assert!((0.75 - 1e-4..=2.5 + 1e-4).contains(&fwhm), "{fwhm}");
                assert!((0.012..=0.08).contains(&l.density));
                let mean = l.weight * l.density * tail_mean(l.density, 1.0);
                assert!((0.01 - 1e-5..=0.08 + 1e-5).contains(&mean), "{mean}");
            }
            blends[match p.blend {
                Blend::AddClip => 0,
                Blend::Screen => 1,
                Blend::Achromatic => 2,
            }] += 1;
        }
        assert!(
            blends.iter().all(|&n| n >= 50),
            "every blend drawn: {blends:?}"
        );
        // Mixtures draw (a)–(e), as they did before (f) existed.
        let mixed = draw(Style::Mixed, 400);
        assert!(mixed.iter().all(|p| p.style != Style::Grainy));
        for s in &Style::FAMILIES[..5] {
            let s = *s;
            let n = mixed.iter().filter(|p| p.style == s).count();
            assert!(n >= 30, "{s:?} drawn {n} times of 400");
        }
    }

    #[test]
    fn grainy_layers_have_the_mean_brightness_they_were_drawn_for() {
        // The weight makes a layer's mean brightness the drawn 0.01–0.08 whatever its density
        // and drop size (both blurs keep the mean); checked on rendered layers.
        for (k, p) in draw(Style::Grainy, 8).iter().enumerate() {
            for (i, l) in p.layers.iter().enumerate() {
                let want = l.weight * l.density * tail_mean(l.density, 1.0);
                let r = crate::synth::streaks::render_layer(256, 256, l, 100 * k as u64 + i as u64)
                    .unwrap();
                let got = r.data.iter().map(|&v| v as f64).sum::<f64>() / r.data.len() as f64;
                assert!(
                    (got / want as f64 - 1.0).abs() < 0.2,
                    "sample {k} layer {i}: mean {got:.4} against {want:.4}"
                );
            }
        }
    }

    #[test]
    fn tail_mean_matches_a_monte_carlo_estimate() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (d, s) = (0.02f32, 1.0f32);
        let mu = s as f64 * normal_quantile(d as f64);
        let (mut sum, mut n) = (0.0f64, 0usize);
        for _ in 0..2_000_000 {
            let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            let v = mu + s as f64 * z;
            if v > 0.0 {
                sum += v;
                n += 1;
            }
        }
        let mc = sum / n as f64;
        assert!(
            (tail_mean(d, s) as f64 - mc).abs() < 0.01 * mc,
            "{} vs {mc}",
            tail_mean(d, s)
        );
    }
}
