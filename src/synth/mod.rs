//! Heavy-rain renderer: training pairs, rain-layer banks, synthetic rainy video with ground
//! truth, and the built-in demo's rain. This is the one place that knows how rain looks.
//!
//! ```text
//!   R  = combine_layers(weight·line_blur(up_s(clip(N(μ,σ²))), θ, L))   rain layer (streaks.rs)
//!   J′ = imgaussfilt(J, σ_bg)              the background the rain falls on (J if σ_bg = 0)
//!   K  = blend(J′, R)                       achromatic clip, additive clip, or screen
//!   S  = K − J                              the model's streak layer, per channel
//!   D  = proxy depth (vertical prior, edge-aware by a luma-guided filter, blurred σ_D)
//!   T  = exp(−β·D)
//!   I  = T ⊙ (J + S) + (1 − T) ⊙ A         the model of physics/
//! ```
//!
//! Six families ([`Style`], samplers and their parameter table in `styles.rs`): (a) the
//! reference generator exactly as its MATLAB code runs, (b) dense bright multi-direction
//! streaks, (c) photographic screen-blended rain, (d) depth-layered streaks, (e) light rain
//! and clear frames, (f) short, soft, uneven drops (heavy rain in a compressed web photo);
//! [`Style::Mixed`] draws one of (a)–(e) per sample. [`camera`] adds camera effects
//! on top (rescale, gamma, sensor noise, JPEG).
//!
//! S is defined as K − J with J the sharp ground truth, so the model holds exactly for every
//! family: S is achromatic for [`Blend::Achromatic`], per channel for the others, and where the
//! reference family pre-blurs the background it also carries the (small, signed) difference
//! between the blurred and the sharp background.
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

pub mod camera;
mod files;
pub mod matlab;
pub mod movers;
mod params;
mod resize;
pub mod streaks;
mod styles;
pub mod veil;
pub mod video;

pub use files::{LAYER_DIRS, encode_png, sample_seed};
pub use params::{
    Blend, DepthPrior, LayerMethod, REFERENCE_AMPLITUDE, RainParams, RainRange, StreakLayer, Style,
};
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
    /// S, the streak layer in the model's domain (before attenuation by T), per channel: K − J
    /// for the blended background K (see the module doc).
    pub streaks: PlanarRgb,
    /// T, the veil transmission in (0, 1].
    pub transmission: Plane,
    /// A, the atmospheric light (RGB).
    pub atmosphere: [f32; 3],
    /// The proxy depth D in [0, 1] (1 = far), after its blur; T = exp(−β·D).
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

/// Renders rain over `clean` (J, RGB in [0, 1]) with `params`. Deterministic: the same
/// inputs give the same output, bit for bit.
pub fn render(clean: &PlanarRgb, params: &RainParams) -> Result<RainySample> {
    params.validate()?;
    check_image(clean)?;
    let (w, h) = (clean.width(), clean.height());
    let mut depth = proxy_depth(clean, &params.depth, params.seed)?;
    if params.depth_blur_px > 0.0 {
        depth = matlab::imgaussfilt(&depth, params.depth_blur_px as f64);
    }
    let rain = rain_layer(w, h, params)?;
    compose(clean.clone(), rain, depth, params)
}

/// The combined rain layer R of a `w`×`h` image (layer `i` uses seed `layer_seed(seed, i)`):
/// the sum of the layers, or for [`Blend::Screen`] their screen combination
/// 1 − Π(1 − min(R_i, 1)).
pub fn rain_layer(w: usize, h: usize, params: &RainParams) -> Result<Plane> {
    let screen = params.blend == Blend::Screen;
    let mut sum = Plane::zeros(w, h);
    for (i, layer) in params.layers.iter().enumerate() {
        let r = render_layer(w, h, layer, layer_seed(params.seed, i))?;
        sum.data.par_iter_mut().zip(&r.data).for_each(|(s, &v)| {
            *s = if screen {
                *s + v.min(1.0) * (1.0 - *s)
            } else {
                *s + v
            }
        });
    }
    Ok(sum)
}

/// [`rain_layer`] with only the streak layers and the seed given (the sum of the layers).
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

/// The background after the rain: K = blend(J′, R) per channel (see [`Blend`]), where J′ is
/// `rained_on` and R ≥ 0.
pub fn blend_rain(rained_on: &PlanarRgb, rain: &Plane, blend: Blend) -> Result<PlanarRgb> {
    let j = &rained_on.planes;
    j[0].ensure_same_dims(rain, "background and rain")?;
    let planes: [Plane; 3] = std::array::from_fn(|c| {
        let data = j[c]
            .data
            .par_iter()
            .enumerate()
            .map(|(i, &v)| {
                let r = rain.data[i].max(0.0);
                match blend {
                    Blend::Achromatic => {
                        let m = j[0].data[i].max(j[1].data[i]).max(j[2].data[i]);
                        v + r.min(1.0 - m).max(0.0)
                    }
                    Blend::AddClip => (v + r).min(1.0),
                    // 1 − (1 − J′)(1 − R), written so that R = 0 gives J′ exactly.
                    Blend::Screen => v + r.min(1.0) * (1.0 - v),
                }
            })
            .collect();
        Plane {
            width: rain.width,
            height: rain.height,
            data,
        }
    });
    PlanarRgb::from_planes(planes)
}

/// Puts the model together from its parts: J′ (J pre-blurred when
/// `params.background_blur_px` > 0), K = blend(J′, R), S = K − J, T = exp(−β·D),
/// I = T(J + S) + (1 − T)A, clamped to [0, 1] (a no-op for inputs in range). `depth` is used
/// as given (blur it first if the family does).
pub fn compose(
    background: PlanarRgb,
    rain: Plane,
    depth: Plane,
    params: &RainParams,
) -> Result<RainySample> {
    params.validate()?;
    background.check()?;
    background.planes[0].ensure_same_dims(&rain, "background and streaks")?;
    background.planes[0].ensure_same_dims(&depth, "background and depth")?;
    let blurred;
    let rained_on = if params.background_blur_px > 0.0 {
        blurred = PlanarRgb::from_planes(
            background
                .planes
                .each_ref()
                .map(|p| matlab::imgaussfilt(p, params.background_blur_px as f64)),
        )?;
        &blurred
    } else {
        &background
    };
    let streaks = if params.blend == Blend::Achromatic && params.background_blur_px == 0.0 {
        // S = min(R, 1 − max_c J) directly (K − J would round differently).
        let j = &background.planes;
        let data: Vec<f32> = rain
            .data
            .par_iter()
            .enumerate()
            .map(|(i, &r)| {
                let m = j[0].data[i].max(j[1].data[i]).max(j[2].data[i]);
                r.min(1.0 - m).max(0.0)
            })
            .collect();
        let plane = Plane {
            width: rain.width,
            height: rain.height,
            data,
        };
        PlanarRgb::from_planes([plane.clone(), plane.clone(), plane])?
    } else {
        let mut k = blend_rain(rained_on, &rain, params.blend)?;
        for (s, j) in k.planes.iter_mut().zip(&background.planes) {
            s.data
                .par_iter_mut()
                .zip(&j.data)
                .for_each(|(s, &j)| *s -= j);
        }
        k
    };
    let transmission = transmission(&depth, params.beta);
    let mut s = RainySample {
        input: PlanarRgb::zeros(background.width(), background.height()),
        streaks,
        transmission,
        atmosphere: params.atmosphere,
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
        for c in 0..3 {
            let a = self.atmosphere[c];
            let j = &self.background.planes[c].data;
            let s = &self.streaks.planes[c].data;
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
    /// rounds it too. S is rounded to multiples of 1/255 within [−J, 1 − J] (so 0 ≤ J + S ≤ 1
    /// still holds). Afterwards the layers satisfy I = T(J + S) + (1 − T)A to within half a
    /// grey level, and so do the saved 8-bit PNGs wherever S ≥ 0: the files hold no negative
    /// values, so the small signed part that the reference family's pre-blur puts into S is
    /// saved as 0 (the input itself keeps it).
    pub fn quantize(&mut self) {
        self.background.quantize();
        for p in [&mut self.transmission, &mut self.depth] {
            p.data.par_iter_mut().for_each(|v| *v = q8(*v));
        }
        // ±k/255 once J is on the grid, so S stays on it.
        for (s, j) in self.streaks.planes.iter_mut().zip(&self.background.planes) {
            s.data.par_iter_mut().zip(&j.data).for_each(|(s, &j)| {
                let q = (s.clamp(-1.0, 1.0) * 255.0).round() / 255.0;
                *s = q.min(q8(1.0 - j)).max(-j);
            });
        }
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

    fn sample(style: Style, seed: u64) -> RainParams {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let range = RainRange {
            style,
            intensity: (0.45, 1.0),
        };
        RainParams::sample(&mut rng, &range).unwrap()
    }

    #[test]
    fn every_family_satisfies_the_model_and_never_pushes_past_white() {
        let clean = gradient(80, 60);
        for style in Style::FAMILIES {
            for seed in 0..4 {
                let p = sample(style, seed);
                let s = render(&clean, &p).unwrap();
                for i in 0..80 * 60 {
                    let t = s.transmission.data[i];
                    assert!(t > 0.0 && t <= 1.0);
                    for c in 0..3 {
                        let j = s.background.planes[c].data[i];
                        let st = s.streaks.planes[c].data[i];
                        assert!(j + st <= 1.0 + 1e-6 && j + st >= -1e-6, "{style:?}");
                        if p.background_blur_px == 0.0 {
                            assert!(st >= 0.0, "{style:?}: rain only adds light");
                        }
                        let want = t * (j + st) + (1.0 - t) * s.atmosphere[c];
                        assert!((s.input.planes[c].data[i] - want).abs() < 1e-6, "{style:?}");
                    }
                }
                assert_eq!(s.background, clean);
                if p.blend == Blend::Achromatic {
                    assert!(s.streaks.planes[0] == s.streaks.planes[2], "{style:?}");
                }
            }
        }
    }

    #[test]
    fn every_family_is_deterministic_per_seed() {
        let clean = gradient(64, 48);
        for style in Style::FAMILIES {
            let a = render(&clean, &sample(style, 9)).unwrap();
            let b = render(&clean, &sample(style, 9)).unwrap();
            assert_eq!(a, b, "{style:?}");
            let c = render(&clean, &sample(style, 10)).unwrap();
            assert_ne!(a.input, c.input, "{style:?}: another seed, another sample");
        }
    }

    #[test]
    fn quantized_layers_recompose_within_half_a_level() {
        let clean = gradient(40, 30);
        for style in [Style::Dense, Style::Screen, Style::Layered] {
            let mut s = render(&clean, &sample(style, 6)).unwrap();
            s.quantize();
            for i in 0..40 * 30 {
                let t = s.transmission.data[i];
                for c in 0..3 {
                    let j = s.background.planes[c].data[i];
                    let st = s.streaks.planes[c].data[i];
                    let want = t * (j + st) + (1.0 - t) * s.atmosphere[c];
                    assert!((s.input.planes[c].data[i] - want).abs() <= 0.5 / 255.0 + 1e-6);
                    assert!(j + st <= 1.0 + 1e-6);
                }
            }
        }
    }

    #[test]
    fn blends_follow_their_formulas() {
        let j = PlanarRgb::from_planes([
            Plane::filled(1, 1, 0.2),
            Plane::filled(1, 1, 0.5),
            Plane::filled(1, 1, 0.9),
        ])
        .unwrap();
        let r = Plane::filled(1, 1, 0.3);
        let px = |k: PlanarRgb| k.planes.map(|p| p.data[0]);
        let add = px(blend_rain(&j, &r, Blend::AddClip).unwrap());
        assert!((add[0] - 0.5).abs() < 1e-6 && (add[1] - 0.8).abs() < 1e-6 && add[2] == 1.0);
        let scr = px(blend_rain(&j, &r, Blend::Screen).unwrap());
        for (c, v) in [0.2f32, 0.5, 0.9].iter().enumerate() {
            assert!((scr[c] - (1.0 - (1.0 - v) * 0.7)).abs() < 1e-6);
        }
        // Achromatic: S = min(R, 1 − max J) = 0.1 in every channel.
        let ach = px(blend_rain(&j, &r, Blend::Achromatic).unwrap());
        for (c, v) in [0.2f32, 0.5, 0.9].iter().enumerate() {
            assert!((ach[c] - (v + 0.1)).abs() < 1e-6);
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
        let bad = compose(gradient(4, 4), Plane::zeros(4, 4), Plane::zeros(5, 4), &p);
        assert!(bad.is_err());
    }
}
