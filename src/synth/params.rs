//! Rain parameters and their random sampling (the reference distribution of DESIGN.md §2 and
//! the extended, multi-layer one used by default).

use rand::{Rng, RngCore};

use crate::error::{Error, Result};

use super::streaks::validate_layer;

/// Noise standard deviation σ of the reference streak layer. The reference states the weight
/// but not σ; with σ = 18 and densities of 0.1–0.6 % an isolated streak is ≈ 0.15–0.3 brighter
/// than the background and streaks cover ≈ 5–25 % of the image, which is how heavy rain looks
/// in real photographs (thin, semi-transparent, dense streaks).
pub const REFERENCE_AMPLITUDE: f32 = 18.0;

/// One layer of rain streaks (all drops in a layer share direction, length and focus).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreakLayer {
    /// Fraction of noise cells that seed a drop, P(n > 0), in [0, 0.5]. The Gaussian's mean
    /// is μ = σ·Φ⁻¹(density) (negative for density < 0.5: the reference's "negative mean").
    pub density: f32,
    /// Standard deviation σ of the seed noise (drop brightness before blur and weight), ≥ 0.
    pub amplitude: f32,
    /// Upsampling factor of the noise, [1, 8] (drop size in px; the reference uses 1.01–1.21).
    pub scale: f32,
    /// Fall direction in degrees from +x with y pointing down (90° = vertical), in
    /// [`ANGLE_RANGE_DEG`](super::streaks::ANGLE_RANGE_DEG) (the reference uses 80–100°).
    pub angle_deg: f32,
    /// Streak length in px, [1, 512] (the reference uses 21–60).
    pub length_px: f32,
    /// Gaussian defocus σ in px, [0, 16] (0 = sharp, the reference; near drops are blurred).
    pub defocus_px: f32,
    /// Weight of the blurred noise, ≥ 0 (the reference uses 0.2 + 0.04·L).
    pub weight: f32,
}

impl StreakLayer {
    /// The reference weight 0.2 + 0.04·L for a streak of length `length_px`.
    pub fn reference_weight(length_px: f32) -> f32 {
        0.2 + 0.04 * length_px
    }

    /// A reference layer: σ = [`REFERENCE_AMPLITUDE`], sharp, reference weight.
    pub fn reference(density: f32, scale: f32, angle_deg: f32, length_px: f32) -> Self {
        Self {
            density,
            amplitude: REFERENCE_AMPLITUDE,
            scale,
            angle_deg,
            length_px,
            defocus_px: 0.0,
            weight: Self::reference_weight(length_px),
        }
    }
}

/// The proxy-depth prior (no depth maps are reachable; see [`proxy_depth`](super::proxy_depth)).
///
/// A disparity-like ramp δ runs from 0 at the `horizon` row (and above) to 1 at the bottom
/// row; depth = ε / (δ + ε) with ε = `offset`, which is the reference's "1/(d + 0.1),
/// normalised" applied to that ramp: the sky is at depth 1, the bottom row at ε/(1 + ε).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthPrior {
    /// Row (fraction of the height from the top, [0, 0.95]) at and above which δ = 0 (depth 1).
    pub horizon: f32,
    /// ε in depth = ε/(δ + ε), (0, 1] (the reference uses 0.1): larger is more uniformly far.
    pub offset: f32,
    /// Shape of the ramp below the horizon, (0, 4]: δ = ramp^gamma.
    pub gamma: f32,
    /// Left-to-right slope added to δ, [−0.5, 0.5].
    pub tilt: f32,
    /// Amplitude of a smooth random perturbation added to δ, [0, 0.5].
    pub wobble: f32,
}

impl Default for DepthPrior {
    /// The reference form: horizon at 30 % of the height, ε = 0.1, a linear ramp.
    fn default() -> Self {
        Self {
            horizon: 0.3,
            offset: 0.1,
            gamma: 1.0,
            tilt: 0.0,
            wobble: 0.0,
        }
    }
}

/// Everything that determines one rendered sample besides the clean image. Rendering is a
/// pure function of (clean image, `RainParams`): the same parameters give bit-identical
/// output on every run and thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct RainParams {
    /// Streak layers, summed before the clip against the background.
    pub layers: Vec<StreakLayer>,
    /// Veil density β ≥ 0: T = exp(−β·depth) (the reference uses 2.6–4.6).
    pub beta: f32,
    /// Atmospheric light A (RGB in [0, 1]; the reference uses grey 0.25–0.95).
    pub atmosphere: [f32; 3],
    /// Proxy-depth prior.
    pub depth: DepthPrior,
    /// Seed of the streak noise and the depth perturbation.
    pub seed: u64,
    /// Rain intensity in [0, 1] these parameters were drawn for (informational: 0 light,
    /// 1 the heaviest of the reference).
    pub intensity: f32,
}

/// Which distribution [`RainParams::sample`] draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Exactly the reference generator's ranges (one sharp layer, grey A, β ∈ [2.6, 4.6]).
    Reference,
    /// Up to three layers (fine far drops, the reference layer, large defocused near drops),
    /// a light-to-heavy intensity range, wind-blown rain in one sample of four (65–115°),
    /// a slightly tinted A with a grey level drawn from a triangular law on [0.25, 0.95], and
    /// a perturbed depth prior.
    #[default]
    Extended,
}

/// The range [`RainParams::sample`] draws from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RainRange {
    /// Distribution family.
    pub style: Style,
    /// Intensity range within [0, 1] (only for [`Style::Extended`]): 0 is light rain with a
    /// thin veil, 1 the heaviest reference rain.
    pub intensity: (f32, f32),
}

impl Default for RainRange {
    /// Heavy rain: extended style, intensity in [0.45, 1].
    fn default() -> Self {
        Self {
            style: Style::Extended,
            intensity: (0.45, 1.0),
        }
    }
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

impl RainParams {
    /// Checks every parameter against its documented range.
    pub fn validate(&self) -> Result<()> {
        if self.layers.len() > 16 {
            return Err(Error::param("layers", "at most 16 streak layers"));
        }
        for l in &self.layers {
            validate_layer(l)?;
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::param("beta", format!("{} must be ≥ 0", self.beta)));
        }
        if !self
            .atmosphere
            .iter()
            .all(|a| a.is_finite() && (0.0..=1.0).contains(a))
        {
            return Err(Error::param("atmosphere", "each channel must be in [0, 1]"));
        }
        let d = &self.depth;
        let ok = (0.0..=0.95).contains(&d.horizon)
            && d.offset > 0.0
            && d.offset <= 1.0
            && d.gamma > 0.0
            && d.gamma <= 4.0
            && (-0.5..=0.5).contains(&d.tilt)
            && (0.0..=0.5).contains(&d.wobble);
        if !ok {
            return Err(Error::param("depth", format!("prior out of range: {d:?}")));
        }
        Ok(())
    }

    /// Draws parameters from `range` with `rng`.
    pub fn sample<R: RngCore + ?Sized>(rng: &mut R, range: &RainRange) -> Result<Self> {
        let (lo, hi) = range.intensity;
        if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo > hi {
            return Err(Error::param(
                "intensity",
                format!("range {lo}..{hi} must lie within [0, 1] with lo ≤ hi"),
            ));
        }
        Ok(match range.style {
            Style::Reference => Self::sample_reference(rng),
            Style::Extended => {
                let k = if hi > lo {
                    rng.random_range(lo..=hi)
                } else {
                    lo
                };
                Self::sample_extended(rng, k)
            }
        })
    }

    /// The reference generator: one sharp layer (density 0.1–0.6 %, ×1.01–1.21, 80–100°,
    /// 21–60 px, weight 0.2 + 0.04·L), grey A ∈ [0.25, 0.95], β ∈ [2.6, 4.6], the default
    /// depth prior.
    fn sample_reference<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        let layer = StreakLayer::reference(
            rng.random_range(0.001..=0.006),
            rng.random_range(1.01..=1.21),
            rng.random_range(80.0..=100.0),
            rng.random_range(21.0..=60.0),
        );
        let a = rng.random_range(0.25..=0.95);
        Self {
            layers: vec![layer],
            beta: rng.random_range(2.6..=4.6),
            atmosphere: [a; 3],
            depth: DepthPrior::default(),
            seed: rng.next_u64(),
            intensity: 1.0,
        }
    }

    /// The extended generator at intensity `k` ∈ [0, 1].
    fn sample_extended<R: RngCore + ?Sized>(rng: &mut R, k: f32) -> Self {
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
                weight: StreakLayer::reference_weight(len),
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
            weight: StreakLayer::reference_weight(len),
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
                weight: StreakLayer::reference_weight(len),
            });
        }
        // Veil: the reference β range at k = 1, thinning towards light rain, and fading out
        // below k = 0.3 so that the lightest renders have no veil (T = 1), as light real rain
        // often has none; above 0.3 (and so the default heavy range 0.45..1) the draw is as it
        // was. Without veil-free pairs the networks learned to dehaze every scene.
        let beta = rng.random_range(2.6..=4.6f32) * lerp(0.25, 1.0, k) * (k / 0.3).min(1.0);
        // Grey level: triangular on the reference's [0.25, 0.95] (mode 0.6), so the extremes
        // (a near-black or a blinding veil) are rarer than with the reference's uniform draw.
        let grey = 0.25 + 0.35 * (rng.random_range(0.0..=1.0f32) + rng.random_range(0.0..=1.0f32));
        // Slight tint: ±3 % per channel with a small bias towards blue (overcast daylight).
        let blue = rng.random_range(0.0..=0.04f32);
        let tint = [
            rng.random_range(-0.03..=0.03f32) - 0.5 * blue,
            rng.random_range(-0.03..=0.03f32),
            rng.random_range(-0.03..=0.03f32) + blue,
        ];
        let atmosphere = tint.map(|t| (grey * (1.0 + t)).clamp(0.0, 1.0));
        let depth = DepthPrior {
            horizon: rng.random_range(0.05..=0.5),
            offset: rng.random_range(0.06..=0.16),
            gamma: rng.random_range(0.7..=1.6),
            tilt: rng.random_range(-0.25..=0.25),
            wobble: rng.random_range(0.0..=0.15),
        };
        Self {
            layers,
            beta,
            atmosphere,
            depth,
            seed: rng.next_u64(),
            intensity: k,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn sampled_parameters_are_valid_and_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for style in [Style::Reference, Style::Extended] {
            for _ in 0..200 {
                let range = RainRange {
                    style,
                    intensity: (0.0, 1.0),
                };
                let p = RainParams::sample(&mut rng, &range).unwrap();
                p.validate().unwrap();
                assert!(!p.layers.is_empty() && p.layers.len() <= 3);
                assert!(p.beta <= 4.6 && p.atmosphere.iter().all(|&a| a <= 1.0));
                if style == Style::Extended && p.intensity < 0.3 {
                    // The veil fades out towards the lightest rain.
                    assert!(p.beta <= 4.6 * p.intensity / 0.3 + 1e-6);
                }
                if style == Style::Reference {
                    let l = &p.layers[0];
                    assert!((80.0..=100.0).contains(&l.angle_deg));
                    assert!((21.0..=60.0).contains(&l.length_px));
                    assert!((1.01..=1.21).contains(&l.scale));
                    assert!((2.6..=4.6).contains(&p.beta));
                    assert!(p.atmosphere[0] == p.atmosphere[2]);
                }
            }
        }
    }

    #[test]
    fn bad_ranges_are_errors() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let range = RainRange {
            style: Style::Extended,
            intensity: (0.8, 0.2),
        };
        assert!(RainParams::sample(&mut rng, &range).is_err());
        let mut p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        p.beta = f32::NAN;
        assert!(p.validate().is_err());
    }
}
