//! Rain parameters: streak layers, the blend, the veil, and which family they are drawn from
//! (the samplers are in `styles.rs`).

use rand::{Rng, RngCore};

use crate::error::{Error, Result};

use super::streaks::validate_layer;
use super::styles;

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
    /// Upper clip of the seed noise (the reference's `imnoise` clips its output to [0, 1]);
    /// `f32::INFINITY` for none.
    pub seed_max: f32,
    /// Gaussian σ in px applied to the drop image before the motion blur, [0, 16] (the
    /// photographic recipe's slight blur; 0 = none).
    pub seed_blur_px: f32,
    /// Photographic "levels" after the motion blur: b ← clamp((b − lo)/(hi − lo), 0, 1) with
    /// lo = mean + k_lo·std and hi = mean + k_hi·std of the blurred layer, given as
    /// `(k_lo, k_hi)` with k_lo < k_hi; `None` keeps b.
    pub levels: Option<(f32, f32)>,
    /// How the layer is drawn.
    pub method: LayerMethod,
}

/// How a streak layer is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerMethod {
    /// O(1)-per-pixel sheared line blur on a canvas padded by the streak reach, bilinear
    /// seed upsampling, any length and angle in
    /// [`ANGLE_RANGE_DEG`](super::streaks::ANGLE_RANGE_DEG).
    #[default]
    Fast,
    /// Exactly as the reference MATLAB code: seeds on the image grid, `imresize` bicubic by
    /// `scale`, a random crop back to the image size, `imfilter` with `fspecial('motion')`
    /// (zero padding, so streaks thin out at the borders), negative values clipped. The
    /// angle is converted to MATLAB's convention (`180° − angle_deg`); `defocus_px`,
    /// `seed_blur_px` and `levels` must be 0/None.
    Matlab,
}

impl StreakLayer {
    /// The reference weight 0.2 + 0.04·L for a streak of length `length_px`.
    pub fn reference_weight(length_px: f32) -> f32 {
        0.2 + 0.04 * length_px
    }

    /// A sharp layer drawn with the fast method: σ = [`REFERENCE_AMPLITUDE`], the reference
    /// weight 0.2 + 0.04·L, no seed clip, blur or levels.
    pub fn reference(density: f32, scale: f32, angle_deg: f32, length_px: f32) -> Self {
        Self {
            density,
            amplitude: REFERENCE_AMPLITUDE,
            scale,
            angle_deg,
            length_px,
            defocus_px: 0.0,
            weight: Self::reference_weight(length_px),
            seed_max: f32::INFINITY,
            seed_blur_px: 0.0,
            levels: None,
            method: LayerMethod::Fast,
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

/// How the rain layer R is put over the background (before the veil). Each rule defines the
/// streak layer S of the model so that I = T ⊙ (J + S) + (1 − T) ⊙ A holds exactly, with J the
/// sharp ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Blend {
    /// S = min(R, 1 − max_c J): achromatic and J + S ≤ 1 (the layered and light styles).
    #[default]
    Achromatic,
    /// Additive with clipping per channel, J′ + R ≤ 1 (the reference generator and the dense
    /// style): S_c = min(J′_c + R, 1) − J_c, where J′ is the background the rain falls on
    /// (J itself, or J pre-blurred by the reference style).
    AddClip,
    /// Photographic "screen" blend 1 − (1 − J′_c)(1 − R): S_c = that − J_c.
    Screen,
}

/// Everything that determines one rendered sample besides the clean image. Rendering is a
/// pure function of (clean image, `RainParams`): the same parameters give bit-identical
/// output on every run and thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct RainParams {
    /// Streak layers, combined into one rain layer R before the blend (summed, or screened
    /// together for [`Blend::Screen`]).
    pub layers: Vec<StreakLayer>,
    /// How R meets the background.
    pub blend: Blend,
    /// σ in px of a Gaussian pre-blur (`imgaussfilt`) of the background the rain falls on,
    /// [0, 8]; the ground truth J stays sharp (the reference generator: min(1, |N(0.5, 0.5)|)).
    pub background_blur_px: f32,
    /// Veil density β ≥ 0: T = exp(−β·depth) (the reference uses 2.6–4.6).
    pub beta: f32,
    /// Atmospheric light A (RGB in [0, 1]; the reference uses grey 0.25–0.95).
    pub atmosphere: [f32; 3],
    /// Proxy-depth prior.
    pub depth: DepthPrior,
    /// σ in px of a Gaussian blur (`imgaussfilt`) of the depth before T, [0, 64] (the
    /// reference: 5; 0 = none). The saved depth is the blurred one.
    pub depth_blur_px: f32,
    /// Seed of the streak noise and the depth perturbation.
    pub seed: u64,
    /// Rain intensity in [0, 1] these parameters were drawn for (informational: 0 light,
    /// 1 the heaviest of the reference).
    pub intensity: f32,
    /// The family these parameters were drawn from (informational).
    pub style: Style,
}

/// Which distribution [`RainParams::sample`] draws from: the rain families of the renderer
/// (documented with their parameters in `styles.rs` and `docs/RAIN_STYLES.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// (a) Exactly the reference generator's MATLAB code: one `imnoise` layer at 80–100°,
    /// background pre-blur, additive with clipping, grey A, β ∈ [2.6, 4.6], depth blur σ 5.
    Reference,
    /// (b) Dense, bright, multi-direction streaks: 1–5 layers within ±30° of vertical (one
    /// sample in five ±60°), 1–9 px wide, 25–60 px long, additive with clipping, half of the
    /// samples with a veil.
    Dense,
    /// (c) Photographic rain: noise, slight blur, motion blur, levels, screen blend; many
    /// magnitudes and orientations, a veil on one sample in three.
    Screen,
    /// (d) Depth-layered: short faint far drops, the reference layer, long soft defocused near
    /// drops, sharing a wind angle, a light-to-heavy intensity range, tinted A.
    #[default]
    Layered,
    /// (e) Light rain (the layered family at intensity 0–0.25) and clear frames (one in four:
    /// no rain, no veil), which a derainer must leave unharmed.
    Light,
    /// (f) Grainy: heavy rain as a compressed web photo shows it (real photo 1): short (4–20
    /// px), soft, thin drops of uneven brightness over the whole frame, 1–3 layers within ±6°
    /// of one angle, any of the three blends, a veil on half of the samples.
    Grainy,
    /// A mixture for training renders: each sample draws one family (a 20 %, b 25 %, c 20 %,
    /// d 20 %, e 15 %; not (f), so that mixtures render as they did before it).
    Mixed,
}

impl Style {
    /// The families that are not mixtures, in the order (a)–(f).
    pub const FAMILIES: [Style; 6] = [
        Style::Reference,
        Style::Dense,
        Style::Screen,
        Style::Layered,
        Style::Light,
        Style::Grainy,
    ];

    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Style::Reference => "reference",
            Style::Dense => "dense",
            Style::Screen => "screen",
            Style::Layered => "layered",
            Style::Light => "light",
            Style::Grainy => "grainy",
            Style::Mixed => "mixed",
        }
    }
}

impl std::str::FromStr for Style {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase();
        Ok(match s.as_str() {
            "reference" | "a" => Style::Reference,
            "dense" | "b" => Style::Dense,
            "screen" | "photo" | "c" => Style::Screen,
            // `extended` is the name this family had before there were several.
            "layered" | "extended" | "d" => Style::Layered,
            "light" | "e" => Style::Light,
            "grainy" | "f" => Style::Grainy,
            "mixed" => Style::Mixed,
            _ => {
                return Err(Error::param(
                    "style",
                    format!(
                        "`{s}` is not one of reference, dense, screen, layered, light, grainy, mixed"
                    ),
                ));
            }
        })
    }
}

/// The range [`RainParams::sample`] draws from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RainRange {
    /// Distribution family.
    pub style: Style,
    /// Intensity range within [0, 1] for [`Style::Layered`] (and the layered samples of
    /// [`Style::Mixed`]): 0 is light rain with a thin veil, 1 the heaviest reference rain.
    pub intensity: (f32, f32),
}

impl Default for RainRange {
    /// Heavy rain: the layered style, intensity in [0.45, 1].
    fn default() -> Self {
        Self {
            style: Style::Layered,
            intensity: (0.45, 1.0),
        }
    }
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
        if !(0.0..=8.0).contains(&self.background_blur_px) {
            return Err(Error::param(
                "background_blur_px",
                format!("{} is outside [0, 8]", self.background_blur_px),
            ));
        }
        if !(0.0..=64.0).contains(&self.depth_blur_px) {
            return Err(Error::param(
                "depth_blur_px",
                format!("{} is outside [0, 64]", self.depth_blur_px),
            ));
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
        let style = match range.style {
            Style::Mixed => {
                let u: f32 = rng.random_range(0.0..1.0);
                match u {
                    u if u < 0.20 => Style::Reference,
                    u if u < 0.45 => Style::Dense,
                    u if u < 0.65 => Style::Screen,
                    u if u < 0.85 => Style::Layered,
                    _ => Style::Light,
                }
            }
            s => s,
        };
        Ok(match style {
            Style::Reference => styles::reference(rng),
            Style::Dense => styles::dense(rng),
            Style::Screen => styles::screen(rng),
            Style::Layered => {
                let k = if hi > lo {
                    rng.random_range(lo..=hi)
                } else {
                    lo
                };
                styles::layered(rng, k)
            }
            Style::Light => styles::light(rng),
            Style::Grainy => styles::grainy(rng),
            Style::Mixed => unreachable!("resolved above"),
        })
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
        for style in [Style::Reference, Style::Layered] {
            for _ in 0..200 {
                let range = RainRange {
                    style,
                    intensity: (0.0, 1.0),
                };
                let p = RainParams::sample(&mut rng, &range).unwrap();
                p.validate().unwrap();
                assert!(!p.layers.is_empty() && p.layers.len() <= 3);
                assert!(p.beta <= 4.6 && p.atmosphere.iter().all(|&a| a <= 1.0));
                if style == Style::Layered && p.intensity < 0.3 {
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
            style: Style::Layered,
            intensity: (0.8, 0.2),
        };
        assert!(RainParams::sample(&mut rng, &range).is_err());
        let mut p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        p.beta = f32::NAN;
        assert!(p.validate().is_err());
        let mut p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        p.background_blur_px = -1.0;
        assert!(p.validate().is_err());
        let mut p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        p.layers[0].levels = Some((2.0, 1.0));
        assert!(p.validate().is_err());
        let mut p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        p.layers[0].method = LayerMethod::Matlab;
        p.layers[0].defocus_px = 1.0;
        assert!(p.validate().is_err(), "the MATLAB method has no defocus");
    }

    #[test]
    fn style_names_round_trip() {
        for s in Style::FAMILIES.into_iter().chain([Style::Mixed]) {
            assert_eq!(s.name().parse::<Style>().unwrap(), s);
        }
        assert_eq!("extended".parse::<Style>().unwrap(), Style::Layered);
        assert!("drizzle".parse::<Style>().is_err());
    }
}
