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
use guided_filter::{Upsampler, downsample, guided_coefficients};

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
}

impl Scales {
    /// Scales for a `w`×`h` frame.
    pub fn new(w: usize, h: usize, params: &PhysicsParams) -> Self {
        let short = w.min(h) as f32;
        let k = short / 720.0;
        let estimation_subsample = ((short / 270.0).round() as usize).clamp(1, 8);
        let s = estimation_subsample as f32;
        Self {
            decomposition_radius: ((params.decomposition_radius_px as f32 * k).round() as usize)
                .clamp(1, 64),
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
        .map(|((&r, &g), &b)| luma_of(r, g, b))
        .collect();
    Plane { width: img.width(), height: img.height(), data }
}

#[inline(always)]
fn luma_of(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// Everything estimated at reduced resolution.
struct LowRes {
    /// Decomposition coefficients [a_R, b_R, a_G, b_G, a_B, b_B] (guide: residue).
    decomposition: Vec<Plane>,
    /// Transmission coefficients [a, b] (guide: luma of LF).
    transmission: Vec<Plane>,
    atmosphere: [f32; 3],
}

fn estimate_low_res(
    img: &PlanarRgb,
    res: &Plane,
    sc: &Scales,
    params: &PhysicsParams,
    tracker: Option<&mut AtmosphereTracker>,
) -> Result<LowRes> {
    let s = sc.estimation_subsample;
    let res_lo = downsample(res, s);
    let img_lo: Vec<Plane> = img.planes.par_iter().map(|p| downsample(p, s)).collect();
    let r_lo = (sc.decomposition_radius / s).max(1);
    let decomposition = guided_coefficients(
        &res_lo,
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
            .map(|((&g, &a), &b)| a.mul_add(g, b).clamp(0.0, 1.0))
            .collect();
        Plane { width: res_lo.width, height: res_lo.height, data }
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

    // Transmission prior with veil-adaptive strength, refined by a guided filter on LF luma.
    let dark_n = dark::dark_channel(&lf_lo, atmosphere, sc.dark_radius);
    let omega = params.veil_removal * veil_score(&dark_n);
    let t_raw = Plane {
        width: dark_n.width,
        height: dark_n.height,
        data: dark_n.data.iter().map(|&d| 1.0 - omega * d.min(1.0)).collect(),
    };
    let transmission = guided_coefficients(&luma_lo, &[&t_raw], sc.refine_radius, &[1e-3])?;
    Ok(LowRes { decomposition, transmission, atmosphere })
}

/// Runs the training-free stage 1 and the inversion on `img`. `tracker` smooths A over frames
/// (pass `None` for single images).
///
/// Cost: the estimation runs at 1/`Scales::estimation_subsample` resolution; at full
/// resolution there are only a few fused, row-parallel passes (residue; LF via guided
/// upsampling + achromatic HF + LF luma; two 1-D line means; T + streaks + inversion).
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
    let s = sc.estimation_subsample;

    let res = residue::residue(img);
    let lo = estimate_low_res(img, &res, &sc, params, tracker)?;
    let a = lo.atmosphere;
    let (lw, lh) = (lo.decomposition[0].width, lo.decomposition[0].height);
    let up = Upsampler::new(lw, lh, s, w);

    // Pass 1: LF = up(a)·res + up(b) per channel; achromatic HF and LF luma.
    let mut achro = Plane::zeros(w, h);
    let mut lf_luma = Plane::zeros(w, h);
    achro
        .data
        .par_chunks_mut(w)
        .zip(lf_luma.data.par_chunks_mut(w))
        .enumerate()
        .for_each_init(
            || (vec![0f32; lw], vec![0f32; w], vec![0f32; w], [vec![0f32; w], vec![0f32; w], vec![0f32; w]]),
            |(tmp, ua, ub, lf), (y, (achro, luma_row))| {
                let g = res.row(y);
                for c in 0..3 {
                    up.row(&lo.decomposition[2 * c], y, tmp, ua);
                    up.row(&lo.decomposition[2 * c + 1], y, tmp, ub);
                    for (((l, &a), &b), &g) in lf[c].iter_mut().zip(ua.iter()).zip(ub.iter()).zip(g) {
                        *l = a.mul_add(g, b);
                    }
                }
                let (ir, ig, ib) = (img.planes[0].row(y), img.planes[1].row(y), img.planes[2].row(y));
                for x in 0..w {
                    let (lr, lg, lb) = (lf[0][x], lf[1][x], lf[2][x]);
                    achro[x] = (ir[x] - lr).min(ig[x] - lg).min(ib[x] - lb).max(0.0);
                    luma_row[x] = luma_of(lr, lg, lb);
                }
            },
        );

    // Streak orientation test.
    let v = streaks::line_mean(&achro, sc.streak_half_length, false);
    let hm = streaks::line_mean(&achro, sc.streak_half_length, true);

    // Pass 2: T (guided upsampling on LF luma), observed streaks, inversion.
    let mut background = PlanarRgb::zeros(w, h);
    let mut transmission = Plane::zeros(w, h);
    let mut streak_model = Plane::zeros(w, h);
    let gain = params.streak_gain;
    let [jr, jg, jb] = &mut background.planes;
    jr.data
        .par_chunks_mut(w)
        .zip(jg.data.par_chunks_mut(w))
        .zip(jb.data.par_chunks_mut(w))
        .zip(transmission.data.par_chunks_mut(w).zip(streak_model.data.par_chunks_mut(w)))
        .enumerate()
        .for_each_init(
            || (vec![0f32; lw], vec![0f32; w], vec![0f32; w]),
            |(tmp, ua, ub), (y, (((jr, jg), jb), (t_row, s_row)))| {
                up.row(&lo.transmission[0], y, tmp, ua);
                up.row(&lo.transmission[1], y, tmp, ub);
                let (l, ach, vv, hh) = (lf_luma.row(y), achro.row(y), v.row(y), hm.row(y));
                let i = [img.planes[0].row(y), img.planes[1].row(y), img.planes[2].row(y)];
                let j: [&mut [f32]; 3] = [jr, jg, jb];
                let [jr, jg, jb] = j;
                for x in 0..w {
                    let t = ua[x].mul_add(l[x], ub[x]);
                    let t = if t.is_finite() { t.clamp(t0, 1.0) } else { 1.0 };
                    let wgt = (2.0 * (vv[x] - hh[x]) / (vv[x] + 1e-4)).clamp(0.0, 1.0);
                    let so = ach[x] * wgt * gain;
                    let inv_t = 1.0 / t;
                    let one_minus_t = 1.0 - t;
                    jr[x] = ((i[0][x] - so - one_minus_t * a[0]) * inv_t).clamp(0.0, 1.0);
                    jg[x] = ((i[1][x] - so - one_minus_t * a[1]) * inv_t).clamp(0.0, 1.0);
                    jb[x] = ((i[2][x] - so - one_minus_t * a[2]) * inv_t).clamp(0.0, 1.0);
                    t_row[x] = t;
                    s_row[x] = so * inv_t;
                }
            },
        );
    Ok(Components { background, streaks: streak_model, transmission, atmosphere: a })
}
