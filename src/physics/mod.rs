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
//!    the normalised dark channel, so clear and mildly hazy scenes keep T ≈ 1 (no colour casts
//!    or darkening on light rain).
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
    /// Half-width k of the horizontal opening that finds narrow bright structures.
    pub streak_width: usize,
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
            streak_width: ((3.0 * k).round() as usize).max(2),
        }
    }
}

/// Veil score in [0,1] from the median of the A-normalised dark channel: below `LO` the scene
/// is taken as clear (T ≈ 1), above `HI` as fully veiled, smoothstep between. The thresholds
/// were chosen on Rain12 (light rain over often hazy scenes, whose haze belongs to the ground
/// truth: must stay) against rendered heavy rain with veil (must go); see BENCHMARKS.md.
fn veil_score(dark: &Plane) -> f32 {
    const LO: f32 = 0.4;
    const HI: f32 = 0.8;
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
    Plane {
        width: img.width(),
        height: img.height(),
        data,
    }
}

#[inline(always)]
fn luma_of(r: f32, g: f32, b: f32) -> f32 {
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

fn estimate_low_res(
    img: &PlanarRgb,
    sc: &Scales,
    params: &PhysicsParams,
    tracker: Option<&mut AtmosphereTracker>,
) -> Result<LowRes> {
    let s = sc.estimation_subsample;
    let img_lo: Vec<Plane> = img.planes.par_iter().map(|p| downsample(p, s)).collect();
    // The guide at low resolution must be the downsampled full-resolution guide (not the
    // residue of the downsampled image) for q = up(a)·res + up(b) to be the fast guided filter.
    let res_lo = residue::downsampled_residue(img, s);
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
/// upsampling. ω_eff = ω · veil (see [`veil_score`]).
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

/// Full-resolution buffers reused from frame to frame (a video stream allocates nothing per
/// frame once its size is known).
#[derive(Debug, Default)]
pub struct Workspace {
    achromatic: Vec<f32>,
    lf_luma: Vec<f32>,
}

impl Components {
    /// Empty components, to be filled by [`derain_physics_into`].
    pub fn empty() -> Self {
        Self {
            background: PlanarRgb::zeros(0, 0),
            streaks: Plane::zeros(0, 0),
            transmission: Plane::zeros(0, 0),
            atmosphere: [1.0; 3],
        }
    }
    fn resize(&mut self, w: usize, h: usize) {
        if self.background.width() != w || self.background.height() != h {
            self.background = PlanarRgb::zeros(w, h);
            self.streaks = Plane::zeros(w, h);
            self.transmission = Plane::zeros(w, h);
        }
    }
}

/// Runs the training-free stage 1 and the inversion on `img`. `tracker` smooths A over frames
/// (pass `None` for single images).
pub fn derain_physics(
    img: &PlanarRgb,
    params: &PhysicsParams,
    tracker: Option<&mut AtmosphereTracker>,
) -> Result<Components> {
    let mut out = Components::empty();
    derain_physics_into(img, params, tracker, &mut Workspace::default(), &mut out)?;
    Ok(out)
}

/// [`derain_physics`] into reused buffers.
///
/// Cost: the estimation runs at 1/`Scales::estimation_subsample` resolution; at full
/// resolution there are two fused, row-parallel passes: (1) residue, LF = up(a)·res + up(b)
/// (guided upsampling), achromatic HF that is also narrow in x, LF luma; (2) the streak
/// orientation test, T by guided upsampling, the inversion and S.
pub fn derain_physics_into(
    img: &PlanarRgb,
    params: &PhysicsParams,
    tracker: Option<&mut AtmosphereTracker>,
    ws: &mut Workspace,
    out: &mut Components,
) -> Result<()> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::param("input", "empty image"));
    }
    let sc = Scales::new(w, h, params);
    let t0 = params.min_transmission;
    let s = sc.estimation_subsample;

    let lo = estimate_low_res(img, &sc, params, tracker)?;
    let a = lo.atmosphere;
    let veil = veil_score(&lo.dark);
    let omega = params.veil_removal * veil;
    log::trace!("veil score {veil:.3}, omega {omega:.3}, A {a:?}");
    let t_coefs = transmission_coefficients(&lo, omega, &sc)?;
    let (lw, lh) = (lo.decomposition[0].width, lo.decomposition[0].height);
    let up = Upsampler::new(lw, lh, s, w);
    ws.achromatic.resize(w * h, 0.0);
    ws.lf_luma.resize(w * h, 0.0);
    out.resize(w, h);
    out.atmosphere = a;
    let k = sc.streak_width;

    // Pass 1.
    ws.achromatic
        .par_chunks_mut(w)
        .zip(ws.lf_luma.par_chunks_mut(w))
        .enumerate()
        .for_each_init(
            || {
                let row = || vec![0f32; w];
                (
                    vec![0f32; 6 * lw],
                    [row(), row(), row()],
                    [row(), row(), row()],
                    [row(), row(), row()],
                )
            },
            |(tmp, [g, er, nb], lf, ups), (y, (achro, luma_row))| {
                let i = [
                    &img.planes[0].row(y)[..w],
                    &img.planes[1].row(y)[..w],
                    &img.planes[2].row(y)[..w],
                ];
                let g = &mut g[..w];
                for x in 0..w {
                    let (r, gg, b) = (i[0][x], i[1][x], i[2][x]);
                    g[x] = r.max(gg).max(b) - r.min(gg).min(b);
                }
                {
                    let d = &lo.decomposition;
                    let [l0, l1, l2] = lf;
                    let [u0, u1, u2] = ups;
                    up.rows(
                        [&d[0], &d[1], &d[2], &d[3], &d[4], &d[5]],
                        y,
                        tmp,
                        [l0, u0, l1, u1, l2, u2],
                    );
                    for c in 0..3 {
                        let (l, u) = (&mut lf[c], &ups[c]);
                        for ((l, &b), &g) in l.iter_mut().zip(u.iter()).zip(g.iter()) {
                            *l = l.mul_add(g, b);
                        }
                    }
                }
                // Narrow bright structures, achromatic: min over channels (into `achro`).
                streaks::narrow_bright_row(i[0], k, er, achro);
                for c in 1..3 {
                    streaks::narrow_bright_row(i[c], k, er, nb);
                    for (o, &v) in achro.iter_mut().zip(nb.iter()) {
                        *o = o.min(v);
                    }
                }
                let (l0, l1, l2) = (&lf[0][..w], &lf[1][..w], &lf[2][..w]);
                let (achro, luma_row) = (&mut achro[..w], &mut luma_row[..w]);
                for x in 0..w {
                    let (lr, lg, lb) = (l0[x], l1[x], l2[x]);
                    // Achromatic part of HF = I − LF, and narrow in x: the streak candidates.
                    let hf = (i[0][x] - lr).min(i[1][x] - lg).min(i[2][x] - lb);
                    achro[x] = hf.min(achro[x]).max(0.0);
                    luma_row[x] = luma_of(lr, lg, lb);
                }
            },
        );

    // Pass 2.
    let achro = &ws.achromatic;
    let lf_luma = &ws.lf_luma;
    let (l, gain) = (sc.streak_half_length, params.streak_gain);
    let [jr, jg, jb] = &mut out.background.planes;
    jr.data
        .par_chunks_mut(w)
        .zip(jg.data.par_chunks_mut(w))
        .zip(jb.data.par_chunks_mut(w))
        .zip(
            out.transmission
                .data
                .par_chunks_mut(w)
                .zip(out.streaks.data.par_chunks_mut(w)),
        )
        .enumerate()
        .for_each_init(
            || {
                (
                    vec![0f32; 2 * lw],
                    vec![0f32; w],
                    vec![0f32; w],
                    vec![0f32; w],
                    vec![0f32; w],
                )
            },
            |(tmp, ua, ub, vm, hm), (y, (((jr, jg), jb), (t_row, s_row)))| {
                // Orientation test: means of the candidates along y and along x over ±L.
                let (y0, y1) = (y.saturating_sub(l), (y + l + 1).min(h));
                vm.fill(0.0);
                for yy in y0..y1 {
                    for (v, &a) in vm.iter_mut().zip(&achro[yy * w..(yy + 1) * w]) {
                        *v += a;
                    }
                }
                let inv_n = 1.0 / (y1 - y0) as f32;
                streaks::line_mean_row(&achro[y * w..(y + 1) * w], l, hm);
                up.rows(
                    [&t_coefs[0], &t_coefs[1]],
                    y,
                    tmp,
                    [&mut ua[..], &mut ub[..]],
                );
                // Equal-length slices so the loop below has no bounds checks and vectorises.
                let lum = &lf_luma[y * w..(y + 1) * w];
                let ach = &achro[y * w..(y + 1) * w];
                let i = [
                    &img.planes[0].row(y)[..w],
                    &img.planes[1].row(y)[..w],
                    &img.planes[2].row(y)[..w],
                ];
                let (vm, hm, ua, ub) = (&vm[..w], &hm[..w], &ua[..w], &ub[..w]);
                let (jr, jg, jb, t_row, s_row) = (
                    &mut jr[..w],
                    &mut jg[..w],
                    &mut jb[..w],
                    &mut t_row[..w],
                    &mut s_row[..w],
                );
                for x in 0..w {
                    let v = vm[x] * inv_n;
                    let wgt = (2.0 * (v - hm[x]) / (v + 1e-4)).clamp(0.0, 1.0);
                    let so = ach[x] * wgt * gain;
                    let t = ua[x].mul_add(lum[x], ub[x]);
                    let t = if t.is_finite() { t.clamp(t0, 1.0) } else { 1.0 };
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
    Ok(())
}
