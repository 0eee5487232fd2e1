//! `physics` mode on the CPU: the estimation of `physics` at reduced resolution, then two
//! row-parallel passes at full resolution that read the input (packed 8-bit rows or planes)
//! and write the sink directly (module doc of [`crate::physics`] for the method).

use rayon::prelude::*;

use super::invert;
use crate::config::PhysicsParams;
use crate::error::{Error, Result};
use crate::frame::PlanarRgb;
use crate::physics::guided_filter::Upsampler;
use crate::physics::source::pack_row;
use crate::physics::{
    AtmosphereStep, Components, Estimate, RunInfo, Scales, Sink, Source, StageTimings,
    estimate_from_downsampled, luma_of, streaks,
};

/// Full-resolution buffers reused from frame to frame (a video stream allocates nothing per
/// frame once its size is known).
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    achromatic: Vec<f32>,
    lf_luma: Vec<f32>,
}

/// Runs the training-free stage 1 and the inversion on `img`. `tracker` smooths A over frames
/// (pass `None` for single images).
pub fn derain_physics(
    img: &PlanarRgb,
    params: &PhysicsParams,
    tracker: Option<&mut dyn AtmosphereStep>,
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
        // The vertical sum is kept running while a thread walks down consecutive rows and
        // rebuilt at every 64th row. A thread that starts mid-block rebuilds at the block's
        // first row and runs down to y: every row's sum takes the same additions in the same
        // order whatever the scheduling, so the output does not depend on the thread count.
        let vm = &mut sc.vm[..w];
        let row = |yy: usize| &achro[yy * w..(yy + 1) * w];
        let step = |vm: &mut [f32], yy: usize| {
            if yy + l < h {
                for (v, &c) in vm.iter_mut().zip(row(yy + l)) {
                    *v += c;
                }
            }
            if yy > l {
                for (v, &c) in vm.iter_mut().zip(row(yy - l - 1)) {
                    *v -= c;
                }
            }
        };
        if sc.vm_row == Some(y.wrapping_sub(1)) && !y.is_multiple_of(64) {
            step(vm, y);
        } else {
            let yb = y - y % 64;
            vm.fill(0.0);
            for yy in yb.saturating_sub(l)..(yb + l + 1).min(h) {
                for (v, &c) in vm.iter_mut().zip(row(yy)) {
                    *v += c;
                }
            }
            for yy in yb + 1..=y {
                step(vm, yy);
            }
        }
        let (y0, y1) = (y.saturating_sub(l), (y + l + 1).min(h));
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
            jr[x] = invert(i[0][x] - so, one_minus_t, a[0], inv_t);
            jg[x] = invert(i[1][x] - so, one_minus_t, a[1], inv_t);
            jb[x] = invert(i[2][x] - so, one_minus_t, a[2], inv_t);
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
pub(crate) fn derain_physics_into(
    src: Source<'_>,
    params: &PhysicsParams,
    tracker: Option<&mut dyn AtmosphereStep>,
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
        // The bound on the gain 1/T that keeps sensor noise in check (physics::noise).
        t0: crate::physics::noise::min_transmission_for(&src, params),
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
        mean_transmission: est.mean_transmission,
        veil: est.veil,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Plane;

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
