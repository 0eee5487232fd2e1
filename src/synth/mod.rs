//! Heavy-rain renderer: training pairs, synthetic rainy video with ground truth, and the
//! built-in demo's rain.
//!
//! It reimplements the reference generator of DESIGN.md §2 (Li, Cheong & Tan 2019) and goes
//! beyond it where that helps a model generalise to real rain:
//!
//! ```text
//!   R = Σ_layers weight·line_blur(up_s(max(N(μ,σ²), 0)), θ, L)     streak layers (streaks.rs)
//!   S = min(R, 1 − max_c J)                                         achromatic, J + S ≤ 1
//!   D = proxy depth (vertical prior, edge-aware by a luma-guided filter)          (veil.rs)
//!   T = exp(−β·D)
//!   I = T ⊙ (J + S) + (1 − T) ⊙ A                                   the model of physics/
//! ```
//!
//! `S = min(R, 1 − max_c J)` is the reference's clip (`S = clip(J + R, ≤ 1) − J`) made
//! achromatic: it equals the reference in the brightest channel and keeps S one plane, so
//! the saved layers satisfy the model exactly.
//!
//! Beyond the reference ([`Style::Extended`], the default): up to three layers (short faint
//! far drops, the reference layer, long soft out-of-focus near drops) sharing a wind angle
//! (sometimes wind-blown, 65–115°), a light-to-heavy intensity range, a slightly tinted A,
//! and a perturbed depth prior.
//!
//! Everything is a pure function of the clean image and [`RainParams`] (drawn from a seeded
//! RNG by [`RainParams::sample`]), so a seed reproduces a data set bit for bit.
//!
//! ```
//! use derain::synth::{self, RainParams, RainRange};
//! use rand::SeedableRng;
//! let clean = derain::PlanarRgb::zeros(64, 48);
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let params = RainParams::sample(&mut rng, &RainRange::default())?;
//! let sample = synth::render(&clean, &params)?;
//! assert_eq!(sample.input.width(), 64);
//! # Ok::<(), derain::Error>(())
//! ```

mod files;
mod params;
mod resize;
pub mod streaks;
pub mod veil;
pub mod video;

pub use files::{LAYER_DIRS, encode_png, sample_seed};
pub use params::{DepthPrior, REFERENCE_AMPLITUDE, RainParams, RainRange, StreakLayer, Style};
pub use resize::{Size, fit, resize};
pub use streaks::{line_blur, render_layer};
pub use veil::{proxy_depth, transmission};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::{MAX_DIMENSION, PlanarRgb, Plane};

/// One rendered sample: the rainy input and every layer of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct RainySample {
    /// I, the rainy image.
    pub input: PlanarRgb,
    /// J, the clean background (ground truth).
    pub background: PlanarRgb,
    /// S, the achromatic streak layer in the model's domain (before attenuation by T), ≥ 0.
    pub streaks: Plane,
    /// T, the veil transmission in (0, 1].
    pub transmission: Plane,
    /// A, the atmospheric light (RGB).
    pub atmosphere: [f32; 3],
    /// The proxy depth D in [0, 1] (1 = far); T = exp(−β·D).
    pub depth: Plane,
}

/// A seed for layer `index` derived from the sample seed (SplitMix64 of both).
pub(crate) fn layer_seed(seed: u64, index: usize) -> u64 {
    files::splitmix64(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn check_image(clean: &PlanarRgb) -> Result<()> {
    let (w, h) = (clean.width(), clean.height());
    if w == 0 || h == 0 {
        return Err(Error::param("clean image", "empty image"));
    }
    if w > MAX_DIMENSION as usize || h > MAX_DIMENSION as usize {
        return Err(Error::param(
            "clean image",
            format!("{w}x{h} is larger than {MAX_DIMENSION} on a side"),
        ));
    }
    Ok(())
}

/// Renders heavy rain over `clean` (J, RGB in [0, 1]) with `params`. Deterministic: the same
/// inputs give the same output, bit for bit.
pub fn render(clean: &PlanarRgb, params: &RainParams) -> Result<RainySample> {
    params.validate()?;
    check_image(clean)?;
    let (w, h) = (clean.width(), clean.height());
    let depth = proxy_depth(clean, &params.depth, params.seed)?;
    let rain = streak_sum(w, h, &params.layers, params.seed)?;
    compose(clean.clone(), rain, depth, params.beta, params.atmosphere)
}

/// Sum of the streak layers R for a `w`×`h` image (layer `i` uses seed
/// `layer_seed(seed, i)`).
pub fn streak_sum(w: usize, h: usize, layers: &[StreakLayer], seed: u64) -> Result<Plane> {
    let mut sum = Plane::zeros(w, h);
    for (i, layer) in layers.iter().enumerate() {
        let r = render_layer(w, h, layer, layer_seed(seed, i))?;
        sum.data
            .par_iter_mut()
            .zip(&r.data)
            .for_each(|(s, &v)| *s += v);
    }
    Ok(sum)
}

/// Puts the model together from its parts: S = min(R, 1 − max_c J), T = exp(−β·D),
/// I = T(J + S) + (1 − T)A, clamped to [0, 1] (a no-op for inputs in range).
pub fn compose(
    background: PlanarRgb,
    rain: Plane,
    depth: Plane,
    beta: f32,
    atmosphere: [f32; 3],
) -> Result<RainySample> {
    let j = &background.planes;
    j[0].ensure_same_dims(&rain, "background and streaks")?;
    j[0].ensure_same_dims(&depth, "background and depth")?;
    let streaks_data = rain
        .data
        .par_iter()
        .enumerate()
        .map(|(i, &r)| {
            let m = j[0].data[i].max(j[1].data[i]).max(j[2].data[i]);
            r.min(1.0 - m).max(0.0)
        })
        .collect();
    let streaks = Plane {
        data: streaks_data,
        ..rain
    };
    let transmission = transmission(&depth, beta);
    let mut s = RainySample {
        input: PlanarRgb::zeros(background.width(), background.height()),
        streaks,
        transmission,
        atmosphere,
        depth,
        background,
    };
    s.recompose();
    Ok(s)
}

fn q8(v: f32) -> f32 {
    (v.clamp(0.0, 1.0) * 255.0).round() / 255.0
}

impl RainySample {
    /// Recomputes `input` from the layers: I = T(J + S) + (1 − T)A, clamped to [0, 1].
    pub fn recompose(&mut self) {
        let t = &self.transmission.data;
        let s = &self.streaks.data;
        for c in 0..3 {
            let a = self.atmosphere[c];
            let j = &self.background.planes[c].data;
            self.input.planes[c]
                .data
                .par_iter_mut()
                .enumerate()
                .for_each(|(i, o)| {
                    *o = (t[i] * (j[i] + s[i]) + (1.0 - t[i]) * a).clamp(0.0, 1.0);
                });
        }
    }

    /// Rounds J, S, T, A and D to the 8-bit grid, recomposes I from the rounded layers and
    /// rounds it too. Afterwards the layers as saved in 8-bit PNGs satisfy
    /// I = T(J + S) + (1 − T)A to within half a grey level (the rounding of I), and J + S ≤ 1
    /// still holds.
    pub fn quantize(&mut self) {
        self.background.quantize();
        for p in [&mut self.streaks, &mut self.transmission, &mut self.depth] {
            p.data.par_iter_mut().for_each(|v| *v = q8(*v));
        }
        // Rounding J and S separately can break J + S ≤ 1 by one level: clip S again
        // (1 − max_c J is on the grid, so S stays on it).
        let j = &self.background.planes;
        self.streaks
            .data
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, s)| {
                let m = j[0].data[i].max(j[1].data[i]).max(j[2].data[i]);
                *s = s.min(q8(1.0 - m));
            });
        self.atmosphere = self.atmosphere.map(q8);
        self.recompose();
        self.input.quantize();
    }

    /// Image width.
    pub fn width(&self) -> usize {
        self.input.width()
    }

    /// Image height.
    pub fn height(&self) -> usize {
        self.input.height()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn gradient(w: usize, h: usize) -> PlanarRgb {
        let mut img = PlanarRgb::zeros(w, h);
        for (c, p) in img.planes.iter_mut().enumerate() {
            for y in 0..h {
                for x in 0..w {
                    p.data[y * w + x] = ((x + 2 * y + 17 * c) % 97) as f32 / 100.0;
                }
            }
        }
        img
    }

    #[test]
    fn layers_satisfy_the_model_and_streaks_never_push_past_white() {
        let clean = gradient(80, 60);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        let s = render(&clean, &p).unwrap();
        for i in 0..80 * 60 {
            let t = s.transmission.data[i];
            assert!(t > 0.0 && t <= 1.0);
            for c in 0..3 {
                let j = s.background.planes[c].data[i];
                let st = s.streaks.data[i];
                assert!(st >= 0.0 && j + st <= 1.0 + 1e-6);
                let want = t * (j + st) + (1.0 - t) * s.atmosphere[c];
                assert!((s.input.planes[c].data[i] - want).abs() < 1e-6);
            }
        }
        assert_eq!(s.background, clean);
    }

    #[test]
    fn quantized_layers_recompose_within_half_a_level() {
        let clean = gradient(40, 30);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        let mut s = render(&clean, &p).unwrap();
        s.quantize();
        for i in 0..40 * 30 {
            let t = s.transmission.data[i];
            for c in 0..3 {
                let j = s.background.planes[c].data[i];
                let want = t * (j + s.streaks.data[i]) + (1.0 - t) * s.atmosphere[c];
                assert!((s.input.planes[c].data[i] - want).abs() <= 0.5 / 255.0 + 1e-6);
                assert!(j + s.streaks.data[i] <= 1.0 + 1e-6);
            }
        }
    }

    #[test]
    fn tiny_images_render_without_panicking() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for (w, h) in [(1, 1), (2, 3), (3, 2), (1, 40), (40, 1)] {
            let p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
            let s = render(&gradient(w, h), &p).unwrap();
            assert!(
                s.input
                    .planes
                    .iter()
                    .all(|p| p.data.iter().all(|v| v.is_finite()))
            );
        }
    }

    #[test]
    fn empty_and_mismatched_inputs_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        assert!(render(&PlanarRgb::zeros(0, 4), &p).is_err());
        let bad = compose(
            gradient(4, 4),
            Plane::zeros(4, 4),
            Plane::zeros(5, 4),
            1.0,
            [0.5; 3],
        );
        assert!(bad.is_err());
    }
}
