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
//!    frame size) in its fast form: coefficients at the estimation resolution (≈200 lines),
//!    applied at full resolution with bilinearly upsampled coefficients; HF = I − LF.
//! 2. A from the brightest dark-channel pixels of LF at reduced resolution (median of the
//!    candidates), smoothed over frames with scene-cut reset.
//! 3. T̃ = 1 − ω_eff·dark(LF/A); ω_eff = ω·veil, where `veil` ∈ [0,1] grows with the median of
//!    the normalised dark channel, so clear and mildly hazy scenes keep T ≈ 1 (no colour casts
//!    or darkening on light rain).
//!    T̃ is refined by a guided filter on LF's luminance and upsampled with the full-resolution
//!    guide (guided upsampling), then clamped to [t0, 1].
//! 4. Observed streaks: the achromatic positive part of HF that is also narrow in x (a
//!    horizontal opening of min(R,G,B)), weighted by how much more it extends vertically than
//!    horizontally (rain falls within ±10–20° of vertical); see `streaks.rs`.
//!    S = observed / max(T, t0) in the model's domain.
//! 5. Inversion (2), clamped to [0,1]; never NaN/Inf (inputs are finite, T ≥ t0 > 0).

pub mod atmosphere;
pub mod dark;
pub mod guided_filter;
pub mod resample;
pub mod residue;
pub mod source;
pub mod streaks;

pub use atmosphere::AtmosphereTracker;
pub use source::{FrameSink, Source};

use source::pack_row;

use rayon::prelude::*;

use crate::config::PhysicsParams;
use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};
use guided_filter::{Upsampler, guided_coefficients};

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

/// Wall time (ms) of the steps of [`derain_physics_into`], for `derain bench` and logs.
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

/// Veil score in [0,1] from the median of the A-normalised dark channel: below `LO` the scene
/// is taken as clear (T ≈ 1), above `HI` as fully veiled, smoothstep between. The thresholds
/// were chosen on Rain12 (light rain over often hazy scenes, whose haze belongs to the ground
/// truth: must stay) against rendered heavy rain with veil (must go); see BENCHMARKS.md.
fn veil_score(dark: &Plane) -> f32 {
    smoothstep(dark_median(dark), VEIL_LO, VEIL_HI)
}

/// Thresholds of [`veil_score`] on the median of the A-normalised dark channel.
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
    tracker: Option<&mut AtmosphereTracker>,
) -> Result<Estimate> {
    let lo = estimate_low_res(img_lo, res_lo, sc, params, tracker)?;
    let veil = veil_score(&lo.dark);
    let omega = params.veil_removal * veil;
    log::trace!(
        "veil score {veil:.3}, omega {omega:.3}, A {:?}",
        lo.atmosphere
    );
    let transmission = transmission_coefficients(&lo, omega, sc)?;
    Ok(Estimate {
        decomposition: lo.decomposition,
        transmission,
        atmosphere: lo.atmosphere,
    })
}

/// The physics stage's frame-level veil statistic: the median of the dark channel of LF/A
/// (≈0.15–0.35 on clear and light-rain scenes, 0.45–0.95 under a heavy rain veil; see
/// [`veil_score`]), from a frame box-downsampled by `sc.estimation_subsample`, without a
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
    tracker: Option<&mut AtmosphereTracker>,
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
            timings: StageTimings::default(),
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

/// Where [`derain_physics_into`] puts its result.
#[derive(Debug)]
pub enum Sink<'a, 'b> {
    /// Every component as planes (J unblended).
    Components(&'a mut Components),
    /// Only the derained frame, packed, blended with the input by `strength`.
    Frame(FrameSink<'a, 'b>),
}

/// What a run reports besides its output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunInfo {
    /// A used for this frame.
    pub atmosphere: [f32; 3],
    /// The physics veil gate k used for this frame in `full` mode (after temporal smoothing);
    /// `None` in `physics` mode.
    pub veil_gate: Option<f32>,
    /// Wall time of each step.
    pub timings: StageTimings,
}

/// Runs the training-free stage 1 and the inversion on `img`. `tracker` smooths A over frames
/// (pass `None` for single images).
pub fn derain_physics(
    img: &PlanarRgb,
    params: &PhysicsParams,
    tracker: Option<&mut AtmosphereTracker>,
) -> Result<Components> {
    let mut out = Components::empty();
    let info = derain_physics_into(
        Source::Planar(img),
        params,
        tracker,
        &mut Workspace::default(),
        Sink::Components(&mut out),
    )?;
    out.timings = info.timings;
    Ok(out)
}

/// Per-row scratch of the full-resolution passes.
struct RowScratch {
    rgb: [Vec<f32>; 3],
    lf: [Vec<f32>; 3],
    ups: [Vec<f32>; 3],
    g: Vec<f32>,
    er: [Vec<f32>; 3],
    nb: Vec<f32>,
    tmp: Vec<f32>,
    vm: Vec<f32>,
    vm_row: Option<usize>,
    hm: Vec<f32>,
    j: [Vec<f32>; 3],
    t: Vec<f32>,
    s: Vec<f32>,
}

impl RowScratch {
    fn new(w: usize, lw: usize) -> Self {
        let row = || vec![0f32; w];
        Self {
            rgb: [row(), row(), row()],
            lf: [row(), row(), row()],
            ups: [row(), row(), row()],
            g: row(),
            er: [row(), row(), row()],
            nb: row(),
            tmp: vec![0f32; 6 * lw],
            vm: row(),
            vm_row: None,
            hm: row(),
            j: [row(), row(), row()],
            t: row(),
            s: row(),
        }
    }
}

/// Everything the row passes share.
struct RowContext<'a> {
    src: Source<'a>,
    w: usize,
    h: usize,
    up: Upsampler,
    est: &'a Estimate,
    streak_width: usize,
    streak_half_length: usize,
    gain: f32,
    t0: f32,
}

impl RowContext<'_> {
    /// Pass 1 for row y: residue, LF = up(a)·res + up(b), streak candidates, LF luma.
    fn pass1(&self, y: usize, sc: &mut RowScratch, achro: &mut [f32], luma_row: &mut [f32]) {
        let w = self.w;
        self.src.row(y, &mut sc.rgb);
        let i = [&sc.rgb[0][..w], &sc.rgb[1][..w], &sc.rgb[2][..w]];
        let g = &mut sc.g[..w];
        for x in 0..w {
            let (r, gg, b) = (i[0][x], i[1][x], i[2][x]);
            g[x] = r.max(gg).max(b) - r.min(gg).min(b);
        }
        {
            let d = &self.est.decomposition;
            let [l0, l1, l2] = &mut sc.lf;
            let [u0, u1, u2] = &mut sc.ups;
            self.up.rows(
                [&d[0], &d[1], &d[2], &d[3], &d[4], &d[5]],
                y,
                &mut sc.tmp,
                [l0, u0, l1, u1, l2, u2],
            );
            for c in 0..3 {
                for ((l, &b), &g) in sc.lf[c][..w].iter_mut().zip(&sc.ups[c][..w]).zip(g.iter()) {
                    *l = l.mul_add(g, b);
                }
            }
        }
        // Narrow bright structures of the achromatic floor min(R,G,B) (into `achro`): rain
        // raises all three channels, so it raises their minimum; a thin chromatic structure
        // does not.
        let m = &mut sc.nb[..w];
        for x in 0..w {
            m[x] = i[0][x].min(i[1][x]).min(i[2][x]);
        }
        streaks::narrow_bright_row(m, self.streak_width, &mut sc.er, achro);
        let (l0, l1, l2) = (&sc.lf[0][..w], &sc.lf[1][..w], &sc.lf[2][..w]);
        let (achro, luma_row) = (&mut achro[..w], &mut luma_row[..w]);
        for x in 0..w {
            let (lr, lg, lb) = (l0[x], l1[x], l2[x]);
            // Achromatic part of HF = I − LF, and narrow in x: the streak candidates.
            let hf = (i[0][x] - lr).min(i[1][x] - lg).min(i[2][x] - lb);
            achro[x] = hf.min(achro[x]).max(0.0);
            luma_row[x] = luma_of(lr, lg, lb);
        }
    }

    /// Pass 2 for row y into `sc.j`, `sc.t`, `sc.s` (and `sc.rgb` holds the input row).
    fn pass2(&self, y: usize, sc: &mut RowScratch, achro: &[f32], lf_luma: &[f32]) {
        let (w, h, l) = (self.w, self.h, self.streak_half_length);
        let a = self.est.atmosphere;
        // Orientation test: means of the candidates along y and along x over ±L.
        // The vertical sum is kept running while a thread walks down consecutive rows
        // (rayon hands each task a contiguous range), and rebuilt every 64 rows.
        let (y0, y1) = (y.saturating_sub(l), (y + l + 1).min(h));
        let vm = &mut sc.vm[..w];
        let row = |yy: usize| &achro[yy * w..(yy + 1) * w];
        if sc.vm_row == Some(y.wrapping_sub(1)) && !y.is_multiple_of(64) {
            if y + l < h {
                for (v, &c) in vm.iter_mut().zip(row(y + l)) {
                    *v += c;
                }
            }
            if y > l {
                for (v, &c) in vm.iter_mut().zip(row(y - l - 1)) {
                    *v -= c;
                }
            }
        } else {
            vm.fill(0.0);
            for yy in y0..y1 {
                for (v, &c) in vm.iter_mut().zip(row(yy)) {
                    *v += c;
                }
            }
        }
        sc.vm_row = Some(y);
        let inv_n = 1.0 / (y1 - y0) as f32;
        streaks::line_mean_row(&achro[y * w..(y + 1) * w], l, &mut sc.hm);
        {
            let [ua, ub, _] = &mut sc.ups;
            self.up.rows(
                [&self.est.transmission[0], &self.est.transmission[1]],
                y,
                &mut sc.tmp,
                [&mut ua[..], &mut ub[..]],
            );
        }
        self.src.row(y, &mut sc.rgb);
        // Equal-length slices so the loop below has no bounds checks and vectorises.
        let lum = &lf_luma[y * w..(y + 1) * w];
        let ach = &achro[y * w..(y + 1) * w];
        let i = [&sc.rgb[0][..w], &sc.rgb[1][..w], &sc.rgb[2][..w]];
        let (vm, hm, ua, ub) = (&sc.vm[..w], &sc.hm[..w], &sc.ups[0][..w], &sc.ups[1][..w]);
        let [jr, jg, jb] = &mut sc.j;
        let (jr, jg, jb, t_row, s_row) = (
            &mut jr[..w],
            &mut jg[..w],
            &mut jb[..w],
            &mut sc.t[..w],
            &mut sc.s[..w],
        );
        let (gain, t0) = (self.gain, self.t0);
        // max/min rather than clamp: branch-free and vectorised (a NaN can only come from
        // non-finite input and is mapped into range by max/min).
        for x in 0..w {
            let v = vm[x] * inv_n;
            let wgt = (2.0 * (v - hm[x]) / (v + 1e-4)).max(0.0).min(1.0);
            let so = ach[x] * wgt * gain;
            let t = ua[x].mul_add(lum[x], ub[x]).max(t0).min(1.0);
            let inv_t = 1.0 / t;
            let one_minus_t = 1.0 - t;
            jr[x] = ((i[0][x] - so - one_minus_t * a[0]) * inv_t)
                .max(0.0)
                .min(1.0);
            jg[x] = ((i[1][x] - so - one_minus_t * a[1]) * inv_t)
                .max(0.0)
                .min(1.0);
            jb[x] = ((i[2][x] - so - one_minus_t * a[2]) * inv_t)
                .max(0.0)
                .min(1.0);
            t_row[x] = t;
            s_row[x] = so * inv_t;
        }
    }
}

/// [`derain_physics`] from any [`Source`] into any [`Sink`], with reused buffers.
///
/// Cost: the estimation runs at 1/`Scales::estimation_subsample` resolution; at full
/// resolution there are three row-parallel passes over the input: (0) downsampling with the
/// residue; (1) residue, LF = up(a)·res + up(b) (guided upsampling), streak candidates, LF
/// luma; (2) the streak orientation test, T by guided upsampling, the inversion, written
/// straight into the sink. The passes are memory-bound, so a packed frame is read as bytes and
/// the output frame written directly.
pub fn derain_physics_into(
    src: Source<'_>,
    params: &PhysicsParams,
    tracker: Option<&mut AtmosphereTracker>,
    ws: &mut Workspace,
    sink: Sink<'_, '_>,
) -> Result<RunInfo> {
    let (w, h) = (src.width(), src.height());
    if w == 0 || h == 0 {
        return Err(Error::param("input", "empty image"));
    }
    let sc = Scales::new(w, h, params);
    let s = sc.estimation_subsample;

    let t_start = std::time::Instant::now();
    // The guide at low resolution must be the downsampled full-resolution guide (not the
    // residue of the downsampled image) for q = up(a)·res + up(b) to be the fast guided filter.
    let (img_lo, res_lo) = src.downsample_with_residue(s);
    let est = estimate_from_downsampled(&img_lo, &res_lo, &sc, params, tracker)?;
    let a = est.atmosphere;
    let (lw, lh) = (est.decomposition[0].width, est.decomposition[0].height);
    let ctx = RowContext {
        src,
        w,
        h,
        up: Upsampler::new(lw, lh, s, w),
        est: &est,
        streak_width: sc.streak_width,
        streak_half_length: sc.streak_half_length,
        gain: params.streak_gain,
        t0: params.min_transmission,
    };
    ws.achromatic.resize(w * h, 0.0);
    ws.lf_luma.resize(w * h, 0.0);

    let t_low = std::time::Instant::now();
    ws.achromatic
        .par_chunks_mut(w)
        .zip(ws.lf_luma.par_chunks_mut(w))
        .enumerate()
        .for_each_init(
            || RowScratch::new(w, lw),
            |sc, (y, (achro, luma))| ctx.pass1(y, sc, achro, luma),
        );

    let t_pass1 = std::time::Instant::now();
    let (achro, lf_luma) = (&ws.achromatic[..], &ws.lf_luma[..]);
    match sink {
        Sink::Components(out) => {
            out.resize(w, h);
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
                    || RowScratch::new(w, lw),
                    |sc, (y, (((jr, jg), jb), (t_row, s_row)))| {
                        ctx.pass2(y, sc, achro, lf_luma);
                        jr.copy_from_slice(&sc.j[0][..w]);
                        jg.copy_from_slice(&sc.j[1][..w]);
                        jb.copy_from_slice(&sc.j[2][..w]);
                        t_row.copy_from_slice(&sc.t[..w]);
                        s_row.copy_from_slice(&sc.s[..w]);
                    },
                );
            out.atmosphere = a;
        }
        Sink::Frame(fs) => {
            let (input, strength) = (fs.input, fs.strength);
            let format = fs.frame.format();
            fs.frame.par_rows_mut().enumerate().for_each_init(
                || RowScratch::new(w, lw),
                |sc, (y, row)| {
                    ctx.pass2(y, sc, achro, lf_luma);
                    for c in 0..3 {
                        crate::frame::blend(&mut sc.j[c][..w], &sc.rgb[c][..w], strength);
                    }
                    pack_row(
                        format,
                        row,
                        [&sc.j[0][..w], &sc.j[1][..w], &sc.j[2][..w]],
                        Some(input.row(y)),
                    );
                },
            );
        }
    }
    let t_end = std::time::Instant::now();
    let timings = StageTimings {
        low_res_ms: (t_low - t_start).as_secs_f64() * 1e3,
        decomposition_ms: (t_pass1 - t_low).as_secs_f64() * 1e3,
        inversion_ms: (t_end - t_pass1).as_secs_f64() * 1e3,
        networks_ms: 0.0,
        streak_ms: 0.0,
    };
    Ok(RunInfo {
        atmosphere: a,
        veil_gate: None,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> PhysicsParams {
        PhysicsParams::default()
    }

    /// A grey textured background with one bright vertical streak (x = 20) and one bright
    /// horizontal line (y = 45), no veil.
    fn scene(streak: [f32; 3]) -> PlanarRgb {
        let (w, h) = (64, 64);
        let mut img = PlanarRgb::zeros(w, h);
        for y in 0..h {
            for x in 0..w {
                let base = 0.35 + 0.1 * (((x / 8 + y / 8) % 2) as f32);
                for (plane, s) in img.planes.iter_mut().zip(streak) {
                    let mut v = base;
                    if x == 20 && (8..40).contains(&y) {
                        v += s;
                    }
                    if y == 45 {
                        v += 0.3;
                    }
                    plane.data[y * w + x] = v;
                }
            }
        }
        img
    }

    #[test]
    fn vertical_achromatic_streak_is_removed_horizontal_line_is_kept() {
        let img = scene([0.3; 3]);
        let c = derain_physics(&img, &params(), None).unwrap();
        let at = |p: &Plane, x: usize, y: usize| p.data[y * 64 + x];
        assert!(
            at(&c.streaks, 20, 24) > 0.15,
            "streak S = {}",
            at(&c.streaks, 20, 24)
        );
        assert!(
            at(&c.streaks, 30, 45) < 0.02,
            "line S = {}",
            at(&c.streaks, 30, 45)
        );
        // The streak's excess over its neighbour (0.3 in the input) at least halves (part of
        // it is in LF at this tiny decomposition radius); the line stays bright.
        let j = &c.background.planes[1];
        let excess = at(j, 20, 24) - at(j, 21, 24);
        assert!(excess < 0.15, "streak excess after deraining: {excess}");
        assert!(at(j, 30, 45) > at(j, 30, 44) + 0.2);
    }

    #[test]
    fn chromatic_vertical_line_is_not_a_streak() {
        let img = scene([0.3, 0.0, 0.0]);
        let c = derain_physics(&img, &params(), None).unwrap();
        assert!(
            c.streaks.data[24 * 64 + 20] < 0.01,
            "S = {}",
            c.streaks.data[24 * 64 + 20]
        );
    }
}
