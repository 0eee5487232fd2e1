//! The heavy-rain image model and the training-free (`physics`) estimation of its parts.
//!
//! ```text
//!   I = T ⊙ (J + S) + (1 − T) ⊙ A                      (1)  image model (Li, Cheong & Tan 2019)
//!   J = (I − (1 − T) ⊙ A) / max(T, t0) − S             (2)  inversion
//! ```
//! | symbol | name here | what |
//! |---|---|---|
//! | I | input | rainy image, RGB in [0, 1] |
//! | J | `background` | clean scene |
//! | S | `streaks` | rain streaks, achromatic, ≥ 0 |
//! | T | `transmission` | veil transmission in [t0, 1] |
//! | A | `atmosphere` | global atmospheric light, one RGB value per frame |
//! | res | `residue` | max(R,G,B) − min(R,G,B): the rain-free guide |
//! | LF, HF | low/high-frequency layers | residue-guided guided filter of I, and I − LF |
//!
//! `physics` mode, step by step (the CPU engine's `derain_physics` runs it, src/engine/cpu/):
//! 1. residue channel → guide; LF = guided filter of each RGB channel (radius scaled with the
//!    frame size) in its fast form: coefficients at the estimation resolution (≈200 lines),
//!    applied at full resolution with bilinearly upsampled coefficients; HF = I − LF.
//! 2. A from the brightest dark-channel pixels of LF at reduced resolution (median of the
//!    candidates), smoothed over frames with scene-cut reset.
//! 3. T̃ = 1 − ω_eff·dark(LF/A); ω_eff = ω·veil, where `veil` ∈ [0, 1] grows with the median of
//!    the normalised dark channel, so clear and mildly hazy scenes keep T ≈ 1 (no colour casts
//!    or darkening on light rain).
//!    T̃ is refined by a guided filter on LF's luminance and upsampled with the full-resolution
//!    guide (guided upsampling), then clamped to [t0', 1], where t0' ≥ t0 is the noise
//!    bound of `noise.rs`: the gain 1/T may not turn the camera's grain (σ estimated per
//!    frame) into more than 3 grey levels, within [t0, 0.5], up to 1 for frames of noise.
//! 4. Observed streaks: the achromatic positive part of HF that is also narrow in x (a
//!    horizontal opening of min(R,G,B)), weighted by how much more it extends vertically than
//!    horizontally (rain falls within ±10–20° of vertical); see `streaks.rs`.
//!    S = observed / max(T, t0) in the model's domain.
//! 5. Inversion (2), clamped to [0, 1]; never NaN/Inf (inputs are finite, T ≥ t0 > 0).

pub mod atmosphere;
pub mod dark;
pub mod guided_filter;
pub mod noise;
pub mod resample;
pub mod residue;
pub mod source;
pub mod streaks;

pub use atmosphere::{AtmosphereStep, AtmosphereTracker};
pub use source::{FrameSink, Source};

use rayon::prelude::*;

use crate::config::PhysicsParams;
use crate::error::Result;
use crate::frame::{PlanarRgb, Plane};
use guided_filter::guided_coefficients;

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
    /// Wall time of each step of the last run.
    pub timings: StageTimings,
}

/// Wall time (ms) of the steps of a run, for `derain bench` and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Estimation at reduced resolution: decomposition coefficients, A, dark channel, T
    /// (`full` mode: downsampling and the 10-filter bank).
    pub low_res_ms: f64,
    /// Full-resolution pass 1: residue, LF (guided upsampling), streak candidates, LF luma.
    pub decomposition_ms: f64,
    /// Full-resolution pass 2: streak orientation test, T upsampling, inversion (`full`
    /// mode: both full-resolution passes).
    pub inversion_ms: f64,
    /// `full` mode only: the veil and refinement networks (and the working-resolution copy of
    /// J₁).
    pub networks_ms: f64,
    /// `full` mode only: the full-resolution streak network (with the frame's padded copy and
    /// I_s = I − R).
    pub streak_ms: f64,
}

impl StageTimings {
    /// The engine's time on the frame: the sum of the stage times, ms.
    pub fn total_ms(&self) -> f64 {
        self.low_res_ms
            + self.decomposition_ms
            + self.inversion_ms
            + self.networks_ms
            + self.streak_ms
    }
}

/// Sizes derived from the frame: everything is specified at 720 lines and scaled.
#[derive(Debug, Clone, Copy)]
pub struct Scales {
    /// Radius of the decomposition filter (full-resolution pixels).
    pub decomposition_radius: usize,
    /// Subsampling of every estimation step (decomposition coefficients, A, T).
    pub estimation_subsample: usize,
    /// Dark-channel patch radius at estimation resolution.
    pub dark_radius: usize,
    /// Transmission refinement radius at estimation resolution.
    pub refine_radius: usize,
    /// Half-length of the streak orientation test (full resolution).
    pub streak_half_length: usize,
    /// Half-width k of the horizontal opening that finds narrow bright structures.
    pub streak_width: usize,
}

impl Scales {
    /// Scales for a `w`×`h` frame.
    pub fn new(w: usize, h: usize, params: &PhysicsParams) -> Self {
        let short = w.min(h) as f32;
        let estimation_subsample = ((short / 200.0).round() as usize).clamp(1, 8);
        Self::with_subsample(w, h, params, estimation_subsample)
    }

    /// Scales for a `w`×`h` frame estimated at `1/estimation_subsample` resolution (`full`
    /// mode reuses its own working resolution).
    pub fn with_subsample(
        w: usize,
        h: usize,
        params: &PhysicsParams,
        estimation_subsample: usize,
    ) -> Self {
        let short = w.min(h) as f32;
        let k = short / 720.0;
        let estimation_subsample = estimation_subsample.max(1);
        let s = estimation_subsample as f32;
        Self {
            decomposition_radius: ((params.decomposition_radius_px as f32 * k).round() as usize)
                .clamp(1, 64),
            estimation_subsample,
            dark_radius: ((7.0 * k / s).round() as usize).max(1),
            refine_radius: ((28.0 * k / s).round() as usize).max(2),
            streak_half_length: ((6.0 * k).round() as usize).max(2),
            streak_width: ((3.0 * k).round() as usize).max(2),
        }
    }
}

/// Veil score in [0, 1] from the median of the A-normalised dark channel: below `LO` the scene
/// is taken as clear (T ≈ 1), above `HI` as fully veiled, smoothstep between. The thresholds
/// were chosen on Rain12 (light rain over often hazy scenes, whose haze belongs to the ground
/// truth: must stay) against rendered heavy rain with veil (must go); see BENCHMARKS.md.
fn veil_score(dark: &Plane) -> f32 {
    smoothstep(dark_median(dark), VEIL_LO, VEIL_HI)
}

/// Thresholds of `veil_score` on the median of the A-normalised dark channel.
const VEIL_LO: f32 = 0.4;
const VEIL_HI: f32 = 0.8;

/// Median of a dark channel (0 for an empty plane).
fn dark_median(dark: &Plane) -> f32 {
    let mut v = dark.data.clone();
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    *m
}

/// 0 below `lo`, 1 above `hi`, the cubic smoothstep between.
pub fn smoothstep(x: f32, lo: f32, hi: f32) -> f32 {
    let t = ((x - lo) / (hi - lo)).clamp(0.0, 1.0);
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
        .map(|((&r, &g), &b)| luma_of(r, g, b))
        .collect();
    Plane {
        width: img.width(),
        height: img.height(),
        data,
    }
}

#[inline(always)]
pub(crate) fn luma_of(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Everything estimated at reduced resolution.
struct LowRes {
    /// Decomposition coefficients [a_R, b_R, a_G, b_G, a_B, b_B] (guide: residue).
    decomposition: Vec<Plane>,
    /// Dark channel of LF/A.
    dark: Plane,
    /// Luma of LF (the guide of the transmission refinement).
    luma: Plane,
    atmosphere: [f32; 3],
}

/// What the full-resolution passes need from the estimation at reduced resolution.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// Decomposition coefficients [a_R, b_R, a_G, b_G, a_B, b_B] (guide: residue), at
    /// estimation resolution.
    pub decomposition: Vec<Plane>,
    /// Coefficients [a, b] of the refined transmission (guide: luma of LF), same resolution.
    pub transmission: Vec<Plane>,
    /// A for this frame (after temporal smoothing when a tracker is given).
    pub atmosphere: [f32; 3],
    /// Mean of the (unrefined) transmission T̃ over the frame, in [0, 1].
    pub mean_transmission: f32,
    /// The frame's veil score ([0, 1], 0 = clear; see [`veil_median_from_downsampled`]).
    pub veil: f32,
}

/// The whole estimation at reduced resolution (decomposition coefficients, A, veil score, T
/// refinement) from the frame's channels and residue box-downsampled by
/// `sc.estimation_subsample` ([`Source::downsample_with_residue`]). The CPU path and the CUDA
/// engine (which downsamples on the device, bit-identically) both call this.
pub fn estimate_from_downsampled(
    img_lo: &[Plane; 3],
    res_lo: &Plane,
    sc: &Scales,
    params: &PhysicsParams,
    tracker: Option<&mut dyn AtmosphereStep>,
) -> Result<Estimate> {
    let lo = estimate_low_res(img_lo, res_lo, sc, params, tracker)?;
    let veil = veil_score(&lo.dark);
    let omega = params.veil_removal * veil;
    log::trace!(
        "veil score {veil:.3}, omega {omega:.3}, A {:?}",
        lo.atmosphere
    );
    let transmission = transmission_coefficients(&lo, omega, sc)?;
    let n = lo.dark.data.len().max(1) as f64;
    let mean_dark = lo
        .dark
        .data
        .iter()
        .map(|&d| f64::from(d.min(1.0)))
        .sum::<f64>()
        / n;
    Ok(Estimate {
        decomposition: lo.decomposition,
        transmission,
        atmosphere: lo.atmosphere,
        mean_transmission: (1.0 - f64::from(omega) * mean_dark) as f32,
        veil,
    })
}

/// The physics stage's frame-level veil statistic: the median of the dark channel of LF/A
/// (≈0.15–0.35 on clear and light-rain scenes, 0.45–0.95 under a heavy rain veil; see
/// `veil_score`), from a frame box-downsampled by `sc.estimation_subsample`, without a
/// temporal tracker. `full` mode multiplies its learned veil gate by a ramp of it.
pub fn veil_median_from_downsampled(
    img_lo: &[Plane; 3],
    res_lo: &Plane,
    sc: &Scales,
    params: &PhysicsParams,
) -> Result<f32> {
    let lo = estimate_low_res(img_lo, res_lo, sc, params, None)?;
    Ok(dark_median(&lo.dark))
}

fn estimate_low_res(
    img_lo: &[Plane; 3],
    res_lo: &Plane,
    sc: &Scales,
    params: &PhysicsParams,
    tracker: Option<&mut dyn AtmosphereStep>,
) -> Result<LowRes> {
    let s = sc.estimation_subsample;
    let r_lo = (sc.decomposition_radius / s).max(1);
    let decomposition = guided_coefficients(
        res_lo,
        &[&img_lo[0], &img_lo[1], &img_lo[2]],
        r_lo,
        &[params.decomposition_eps],
    )?;
    let lf_lo = PlanarRgb::from_planes(std::array::from_fn(|c| {
        let (a, b) = (&decomposition[2 * c], &decomposition[2 * c + 1]);
        let data = res_lo
            .data
            .iter()
            .zip(&a.data)
            .zip(&b.data)
            .map(|((&g, &a), &b)| a.mul_add(g, b).max(0.0).min(1.0))
            .collect();
        Plane {
            width: res_lo.width,
            height: res_lo.height,
            data,
        }
    }))?;

    // Atmospheric light.
    let dark_raw = dark::dark_channel(&lf_lo, [1.0; 3], sc.dark_radius);
    let a_raw = atmosphere::estimate(&lf_lo, &dark_raw);
    let luma_lo = luma(&lf_lo);
    let mean_luma = luma_lo.data.iter().sum::<f32>() / luma_lo.data.len() as f32;
    let atmosphere = match tracker {
        Some(t) => t.update(a_raw, mean_luma),
        None => a_raw,
    };

    let dark = dark::dark_channel(&lf_lo, atmosphere, sc.dark_radius);
    Ok(LowRes {
        decomposition,
        dark,
        luma: luma_lo,
        atmosphere,
    })
}

/// Transmission at estimation resolution: the dark-channel prior T̃ = 1 − ω_eff·dark(LF/A),
/// refined by a guided filter on LF's luma; returns its coefficients [a, b] for guided
/// upsampling. ω_eff = ω · veil (see `veil_score`).
fn transmission_coefficients(lo: &LowRes, omega: f32, sc: &Scales) -> Result<Vec<Plane>> {
    let t_raw = Plane {
        width: lo.dark.width,
        height: lo.dark.height,
        data: lo
            .dark
            .data
            .iter()
            .map(|&d| 1.0 - omega * d.min(1.0))
            .collect(),
    };
    guided_coefficients(&lo.luma, &[&t_raw], sc.refine_radius, &[1e-3])
}

impl Components {
    /// Empty components, to be filled by a run of either mode.
    pub fn empty() -> Self {
        Self {
            background: PlanarRgb::zeros(0, 0),
            streaks: Plane::zeros(0, 0),
            transmission: Plane::zeros(0, 0),
            atmosphere: [1.0; 3],
            timings: StageTimings::default(),
        }
    }
    pub(crate) fn resize(&mut self, w: usize, h: usize) {
        if self.background.width() != w || self.background.height() != h {
            self.background = PlanarRgb::zeros(w, h);
            self.streaks = Plane::zeros(w, h);
            self.transmission = Plane::zeros(w, h);
        }
    }
}

/// Where a run puts its result.
#[derive(Debug)]
pub enum Sink<'a, 'b> {
    /// Every component as planes (J unblended).
    Components(&'a mut Components),
    /// Only the derained frame, packed, blended with the input by `strength`.
    Frame(FrameSink<'a, 'b>),
}

impl<'b> Sink<'_, 'b> {
    /// The same sink, borrowed for a shorter time (so that it can be looked at again after
    /// a run that consumed the borrow).
    pub fn reborrow(&mut self) -> Sink<'_, 'b> {
        match self {
            Sink::Components(c) => Sink::Components(c),
            Sink::Frame(f) => Sink::Frame(FrameSink {
                frame: f.frame,
                input: f.input,
                strength: f.strength,
            }),
        }
    }
}

/// What a run reports besides its output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunInfo {
    /// A used for this frame.
    pub atmosphere: [f32; 3],
    /// The physics veil gate k used for this frame in `full` mode (after temporal smoothing);
    /// `None` in `physics` mode.
    pub veil_gate: Option<f32>,
    /// Mean veil transmission T over the frame (estimation resolution), in [0, 1]: 1 = no
    /// veil. A frame-level rain-intensity measure for monitoring.
    pub mean_transmission: f32,
    /// The veil score in [0, 1] (physics: the dark-channel score; full: the gate k).
    pub veil: f32,
    /// Wall time of each step.
    pub timings: StageTimings,
}
