//! The heavy-rain image model and the training-free (`physics`) estimation of its parts.
//!
//! ```text
//!   I = T ⊙ (J + S) + (1 − T) ⊙ A                      (1)  image model (Li, Cheong & Tan 2019)
//!   J = (I − (1 − T) ⊙ A) / max(T, t0) − S             (2)  inversion
//! ```
//! | symbol | name here | what |
//! |---|---|---|
//! | I | input | rainy image, RGB in [0,1] |
//! | J | `background` | clean scene |
//! | S | `streaks` | rain streaks, achromatic, ≥ 0 |
//! | T | `transmission` | veil transmission in [t0, 1] |
//! | A | `atmosphere` | global atmospheric light, one RGB value per frame |
//! | res | `residue` | max(R,G,B) − min(R,G,B): the rain-free guide |
//! | LF, HF | low/high-frequency layers | residue-guided guided filter of I, and I − LF |
//!
//! `physics` mode, step by step ([`derain_physics`]):
//! 1. residue channel → guide; LF = guided filter of each RGB channel (radius scaled with the
//!    frame size; the fast variant at 1/2 resolution above 480 lines), HF = I − LF.
//! 2. A from the brightest dark-channel pixels of LF at reduced resolution (median of the
//!    candidates), smoothed over frames with scene-cut reset.
//! 3. T̃ = 1 − ω_eff·dark(LF/A); ω_eff = ω·veil, where `veil` ∈ [0,1] grows with the median of
//!    the normalised dark channel, so clear scenes keep T ≈ 1 (no colour casts on light rain).
//!    T̃ is refined by a guided filter on LF's luminance and upsampled with the full-resolution
//!    guide (guided upsampling), then clamped to [t0, 1].
//! 4. Observed streaks: the achromatic positive part of HF, min_c HF_c ≥ 0, weighted by how
//!    much more it extends vertically than horizontally (rain falls within ±10–20° of
//!    vertical); S = observed / max(T, t0) in the model's domain.
//! 5. Inversion (2), clamped to [0,1]; never NaN/Inf (inputs are finite, T ≥ t0 > 0).

pub mod atmosphere;
pub mod dark;
pub mod guided_filter;
pub mod residue;
pub mod streaks;

pub use atmosphere::AtmosphereTracker;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};
use crate::pipeline::PhysicsParams;
use guided_filter::{
    apply_coefficients, downsample, fast_guided_filter_multi, guided_coefficients,
};

/// Everything stage 1 estimates for one frame.
#[derive(Debug, Clone)]
pub struct Components {
    /// J, the derained image.
    pub background: PlanarRgb,
    /// S, rain streaks (achromatic), in the model's domain (before attenuation by T).
    pub streaks: Plane,
    /// T, veil transmission in [t0, 1].
    pub transmission: Plane,
    /// A, atmospheric light (RGB).
    pub atmosphere: [f32; 3],
}

/// Sizes derived from the frame: everything is specified at 720 lines and scaled.
#[derive(Debug, Clone, Copy)]
pub struct Scales {
    /// Radius of the decomposition filter.
    pub decomposition_radius: usize,
    /// Subsampling of the decomposition filter's coefficients.
    pub decomposition_subsample: usize,
    /// Subsampling of the A/T estimation.
    pub estimation_subsample: usize,
    /// Dark-channel patch radius at estimation resolution.
    pub dark_radius: usize,
    /// Transmission refinement radius at estimation resolution.
    pub refine_radius: usize,
    /// Half-length of the streak orientation test.
    pub streak_half_length: usize,
}

impl Scales {
    /// Scales for a `w`×`h` frame.
    pub fn new(w: usize, h: usize, params: &PhysicsParams) -> Self {
        let short = w.min(h) as f32;
        let k = short / 720.0;
        let estimation_subsample = ((short / 240.0).floor() as usize).clamp(1, 8);
        let s = estimation_subsample as f32;
        Self {
            decomposition_radius: ((params.decomposition_radius_px as f32 * k).round() as usize)
                .clamp(1, 64),
            decomposition_subsample: if short >= 480.0 { 2 } else { 1 },
            estimation_subsample,
            dark_radius: ((7.0 * k / s).round() as usize).max(1),
            refine_radius: ((28.0 * k / s).round() as usize).max(2),
            streak_half_length: ((6.0 * k).round() as usize).max(2),
        }
    }
}

/// Veil score in [0,1] from the median of the A-normalised dark channel: below `LO` the scene
/// is taken as clear (T ≈ 1), above `HI` as fully veiled.
fn veil_score(dark: &Plane) -> f32 {
    const LO: f32 = 0.25;
    const HI: f32 = 0.55;
    let mut v = dark.data.clone();
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    let t = ((*m - LO) / (HI - LO)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// BT.601 luma of an RGB image, as a plane.
pub fn luma(img: &PlanarRgb) -> Plane {
    let [r, g, b] = &img.planes;
    let data = r
        .data
        .par_iter()
        .zip(&g.data)
        .zip(&b.data)
        .map(|((&r, &g), &b)| 0.299 * r + 0.587 * g + 0.114 * b)
        .collect();
    Plane {
        width: img.width(),
        height: img.height(),
        data,
    }
}

/// Runs the training-free stage 1 and the inversion on `img`. `tracker` smooths A over frames
/// (pass `None` for single images).
pub fn derain_physics(
    img: &PlanarRgb,
    params: &PhysicsParams,
    tracker: Option<&mut AtmosphereTracker>,
) -> Result<Components> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::param("input", "empty image"));
    }
    let sc = Scales::new(w, h, params);
    let t0 = params.min_transmission;

    // 1. Residue-guided decomposition.
    let res = residue::residue(img);
    let [r, g, b] = &img.planes;
    let mut lf_planes = fast_guided_filter_multi(
        &res,
        &[r, g, b],
        sc.decomposition_radius,
        &[params.decomposition_eps],
        sc.decomposition_subsample,
    )?
    .into_iter();
    let lf = PlanarRgb::from_planes(std::array::from_fn(|_| lf_planes.next().expect("3 planes")))?;

    // 2. Atmospheric light at estimation resolution.
    let s = sc.estimation_subsample;
    let lf_lo = PlanarRgb::from_planes(std::array::from_fn(|c| downsample(&lf.planes[c], s)))?;
    let dark_raw = dark::dark_channel(&lf_lo, [1.0; 3], sc.dark_radius);
    let a_raw = atmosphere::estimate(&lf_lo, &dark_raw);
    let luma_lo = luma(&lf_lo);
    let mean_luma = luma_lo.data.iter().sum::<f32>() / luma_lo.data.len() as f32;
    let a = match tracker {
        Some(t) => t.update(a_raw, mean_luma),
        None => a_raw,
    };

    // 3. Transmission: prior, veil-adaptive strength, guided refinement + guided upsampling.
    let dark_n = dark::dark_channel(&lf_lo, a, sc.dark_radius);
    let omega = params.veil_removal * veil_score(&dark_n);
    let t_raw = Plane {
        width: dark_n.width,
        height: dark_n.height,
        data: dark_n
            .data
            .iter()
            .map(|&d| 1.0 - omega * d.min(1.0))
            .collect(),
    };
    let coefs = guided_coefficients(&luma_lo, &[&t_raw], sc.refine_radius, &[1e-3])?;
    let luma_full = luma(&lf);
    let mut transmission = apply_coefficients(&luma_full, &coefs, s).remove(0);
    for v in &mut transmission.data {
        *v = if v.is_finite() { v.clamp(t0, 1.0) } else { 1.0 };
    }

    // 4. Streaks (observed, i.e. attenuated by T) from the achromatic part of HF.
    let observed = streaks::observed_streaks(img, &lf, sc.streak_half_length, params.streak_gain);

    // 5. Inversion.
    let mut background = PlanarRgb::zeros(w, h);
    let mut streak_model = Plane::zeros(w, h);
    for c in 0..3 {
        let (i, out) = (&img.planes[c].data, &mut background.planes[c].data);
        out.par_iter_mut()
            .zip(i.par_iter())
            .zip(observed.data.par_iter().zip(transmission.data.par_iter()))
            .for_each(|((o, &i), (&so, &t))| {
                let v = (i - so - (1.0 - t) * a[c]) / t;
                *o = if v.is_finite() { v.clamp(0.0, 1.0) } else { i };
            });
    }
    streak_model
        .data
        .par_iter_mut()
        .zip(observed.data.par_iter().zip(transmission.data.par_iter()))
        .for_each(|(o, (&so, &t))| *o = so / t);
    Ok(Components {
        background,
        streaks: streak_model,
        transmission,
        atmosphere: a,
    })
}
