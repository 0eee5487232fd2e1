//! `full` mode: the streak network at full resolution, the veil networks on the rain-free
//! image, physics inversion, stage-2 depth-guided refinement.
//!
//! ```text
//!   R = streak(I)   (full resolution, padded to a multiple of 16)   the visible rain layer
//!   I_s = clamp(I − R, 0, 1)                              rain-free, still veiled: T·J + (1 − T)·A
//!   f = max(1, round(short side / WORK_LINES))           working factor (≈180 lines)
//!   I_lo = down_f(I_s), res_lo = down_f(max(R,G,B) − min(R,G,B) of I_s)
//!   LF = bank(res_lo, I_lo)  (radii {2,4,8,16,32} × eps {1e-3,1e-4} × RGB)
//!   T_lo, A = stage1([I_lo, LF])                           (padded to a multiple of 4)
//!   k = smoothstep(median dark(LF_phys/A_phys), 0.3, 0.5)  physics veil gate on I
//!   T_lo ← 1 − k·(1 − T_lo)         no veil removal on clear frames (k smoothed in video)
//!   T_lo ← max(T_lo, 1 − min_c I_lo,c / A_c)   the floor: no block's J₁ below zero
//!   full resolution, per row:  T = up_f(T_lo);  J₁ = clamp((I_s − (1 − T)·A) / max(T, t0), 0, 1)
//!   ΔJ_lo = stage2([down_f(J₁), −ln max(T_lo, t0)])
//!   J = clamp(J₁ + up_f(ΔJ_lo), 0, 1)                   then blend and pack
//! ```
//! `up_f` is the bilinear [`Upsampler`] and `down_f` box averaging, exactly as
//! `training/derain_train/model.py` (`FullModelV2`) computes them, so the trained networks see
//! here what they saw in training. The model's streak layer S relates to R by R = T·S; the
//! components sink gets S = mean_c R / max(T, t0).
//!
//! Removing the streaks first, at full resolution, is what removes them: estimated at the
//! ≈180-line working resolution and upsampled (the first version of this mode), thin streaks
//! are below the resolution and survive. The veil, smooth by nature, stays at the working
//! resolution, estimated on I_s so that bright streaks are not mistaken for veil.
//!
//! The veil gate k and the working factor are in [`crate::nets::full`].

use rayon::prelude::*;

use super::invert;
use crate::config::PhysicsParams;
use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};
use crate::nets::STREAK_MULTIPLE as MULTIPLE;
use crate::nets::full::{BANK_EPS, BANK_RADII, physics_gate_from_downsampled, work_factor};
use crate::nets::{FullNets, PAD_MULTIPLE};
use crate::physics::guided_filter::{Upsampler, downsample, guided_bank};
use crate::physics::source::pack_row;
use crate::physics::{AtmosphereStep, RunInfo, Sink, Source, StageTimings};

/// Buffers reused from frame to frame.
#[derive(Debug, Default)]
pub(crate) struct FullWorkspace {
    /// The frame padded to a multiple of [`MULTIPLE`], NCHW.
    x_full: Vec<f32>,
    /// I_s, the rain-free image.
    i_s: Option<PlanarRgb>,
    j1: [Vec<f32>; 3],
    x_lf: Vec<f32>,
    x2: Vec<f32>,
}

/// Copies the frame into `out` as three planes of `pw`×`ph` (NCHW, batch 1), repeating the last
/// row and column into the padding.
pub(crate) fn pack_frame(src: &Source<'_>, pw: usize, ph: usize, out: &mut Vec<f32>) {
    let (w, h) = (src.width(), src.height());
    out.resize(3 * pw * ph, 0.0);
    let (r, rest) = out.split_at_mut(pw * ph);
    let (g, b) = rest.split_at_mut(pw * ph);
    r.par_chunks_mut(pw)
        .zip(g.par_chunks_mut(pw))
        .zip(b.par_chunks_mut(pw))
        .enumerate()
        .for_each_init(
            || [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
            |rgb, (y, ((ro, go), bo))| {
                src.row(y.min(h - 1), rgb);
                for (o, s) in [ro, go, bo].into_iter().zip(rgb.iter()) {
                    o[..w].copy_from_slice(&s[..w]);
                    let last = s[w - 1];
                    o[w..].fill(last);
                }
            },
        );
}

/// Reverses every row of `pw` values of `x` (planes of `pw`×ph back to back): the padded frame
/// mirrored left to right, padding included; twice is the identity.
pub(crate) fn mirror_rows(x: &mut [f32], pw: usize) {
    x.par_chunks_mut(pw).for_each(|row| row.reverse());
}

/// r = 0.5·(r + mirror(m)): the rain layer of the mirrored frame, mirrored back, averaged in
/// (rows of `pw` values).
pub(crate) fn mean_mirrored(r: &mut [f32], m: &[f32], pw: usize) {
    r.par_chunks_mut(pw)
        .zip(m.par_chunks(pw))
        .for_each(|(rr, mr)| {
            for (o, &v) in rr.iter_mut().zip(mr.iter().rev()) {
                *o = 0.5 * (*o + v);
            }
        });
}

/// Copies `planes` (each `lw`×`lh`) into a `[planes.len(), ph, pw]` tensor, repeating the last
/// column and row into the padding.
pub(crate) fn pack_padded<'a>(
    planes: impl IntoIterator<Item = &'a Plane>,
    ph: usize,
    pw: usize,
    out: &mut Vec<f32>,
) {
    out.clear();
    for p in planes {
        let (lw, lh) = (p.width, p.height);
        for y in 0..ph {
            let row = p.row(y.min(lh - 1));
            out.extend_from_slice(row);
            let last = row[lw - 1];
            out.extend(std::iter::repeat_n(last, pw - lw));
        }
    }
}

/// Channel `c` of a `[C, ph, pw]` tensor, cropped to `lw`×`lh`.
fn crop(t: &[f32], c: usize, ph: usize, pw: usize, lw: usize, lh: usize) -> Plane {
    let base = c * ph * pw;
    let mut data = Vec::with_capacity(lw * lh);
    for y in 0..lh {
        data.extend_from_slice(&t[base + y * pw..base + y * pw + lw]);
    }
    Plane {
        width: lw,
        height: lh,
        data,
    }
}

fn lerp_rows(
    up: &Upsampler,
    planes: [&Plane; 3],
    y: usize,
    tmp: &mut [f32],
    rows: &mut [Vec<f32>; 3],
) {
    let [r0, r1, r2] = rows;
    up.rows(planes, y, tmp, [&mut r0[..], &mut r1[..], &mut r2[..]]);
}

/// What the working-resolution stage 1 gives the full-resolution inversion.
#[derive(Debug)]
pub(crate) struct Stage1 {
    /// T at the working resolution, the veil gate applied.
    pub t_lo: Plane,
    /// A (after the tracker, if any).
    pub atmosphere: [f32; 3],
    /// The veil gate k.
    pub veil: f32,
    /// Mean of T (clamped to [0, 1]).
    pub mean_transmission: f32,
    /// Milliseconds of the guided-filter bank (the rest is the network and the gate).
    pub bank_ms: f64,
}

/// Stage 1 at the working resolution on the host (the CPU engine's, and the CUDA engine's for
/// a veil network it cannot run on the device): the guided-filter bank of the downsampled
/// rain-free image (`img_lo`, `res_lo`), the veil network (T, A), then [`stage1_tail`] (the
/// physics gate from the downsampled input `raw`, the tracker, T ← 1 − k·(1 − T), the floor).
/// `x_lf` is the network input's buffer.
pub(crate) fn working_stage1(
    nets: &mut FullNets,
    raw: (&[Plane; 3], &Plane),
    img_lo: [Plane; 3],
    res_lo: &Plane,
    wh: (usize, usize),
    tracker: Option<&mut dyn AtmosphereStep>,
    x_lf: &mut Vec<f32>,
) -> Result<Stage1> {
    let (lw, lh) = (res_lo.width, res_lo.height);
    let (pw, ph) = (
        lw.next_multiple_of(PAD_MULTIPLE),
        lh.next_multiple_of(PAD_MULTIPLE),
    );
    let t_bank = std::time::Instant::now();
    let rgb_lo = PlanarRgb::from_planes(img_lo)?;
    let lf = guided_bank(res_lo, &rgb_lo, &BANK_RADII, &BANK_EPS)?;
    pack_padded(rgb_lo.planes.iter().chain(&lf), ph, pw, x_lf);
    let bank_ms = t_bank.elapsed().as_secs_f64() * 1e3;
    let outs = nets.stage1.run(ph, pw, &[x_lf])?;
    let t_lo = crop(&outs[0], 0, ph, pw, lw, lh);
    let a_net: [f32; 3] = std::array::from_fn(|c| outs[1][c]);
    let mut st = stage1_tail(raw, &rgb_lo, t_lo, a_net, wh, tracker)?;
    st.bank_ms = bank_ms;
    Ok(st)
}

/// The end of stage 1 from the veil network's T (`t_lo`, working resolution) and A: the
/// physics gate from the downsampled input `raw` (image, residue) of a `w`×`h` frame, the mean
/// luma of the downsampled rain-free image `rgb_lo`, A and the gate through `tracker`, and
/// T ← 1 − k·(1 − T), then T ← max(T, [`transmission_floor`]). Shared by the CPU engine and the
/// CUDA engine's veil network on the device.
pub(crate) fn stage1_tail(
    raw: (&[Plane; 3], &Plane),
    rgb_lo: &PlanarRgb,
    mut t_lo: Plane,
    a_net: [f32; 3],
    (w, h): (usize, usize),
    tracker: Option<&mut dyn AtmosphereStep>,
) -> Result<Stage1> {
    let raw_veil = physics_gate_from_downsampled(raw.0, raw.1, w, h)?.1;
    let a_net: [f32; 3] = std::array::from_fn(|c| a_net[c].clamp(0.0, 1.0));
    let mean_luma = {
        let y = crate::physics::luma(rgb_lo);
        (y.data.iter().map(|&v| v as f64).sum::<f64>() / y.data.len() as f64) as f32
    };
    let (atmosphere, veil) = match tracker {
        Some(t) => t.update_with_gate(a_net, mean_luma, raw_veil),
        None => (a_net, raw_veil),
    };
    for t in &mut t_lo.data {
        *t = 1.0 - veil * (1.0 - *t);
    }
    floor_transmission(&mut t_lo, rgb_lo, atmosphere);
    let mean_transmission = (t_lo
        .data
        .iter()
        .map(|&t| f64::from(t.clamp(0.0, 1.0)))
        .sum::<f64>()
        / t_lo.data.len().max(1) as f64) as f32;
    Ok(Stage1 {
        t_lo,
        atmosphere,
        veil,
        mean_transmission,
        bank_ms: 0.0,
    })
}

/// The smallest T at which a block of the working resolution keeps J₁ ≥ 0 in every channel:
/// I = T·J + (1 − T)·A with J ≥ 0 gives T ≥ 1 − I_c / A_c. Where the veil network says less
/// (a grey road close to A taken for dense fog), the inversion would clip the whole block to
/// black and the refinement paint it one flat colour; T is raised to the floor instead. A
/// consistent estimate is never changed (the floor is ≤ the true T for the true A).
fn transmission_floor(rgb: [f32; 3], a: [f32; 3]) -> f32 {
    let m = (0..3)
        .map(|c| rgb[c] / a[c].max(1e-3))
        .fold(f32::INFINITY, f32::min);
    (1.0 - m).clamp(0.0, 1.0)
}

/// T_lo ← max(T_lo, [`transmission_floor`]) per block of the downsampled rain-free image.
fn floor_transmission(t_lo: &mut Plane, rgb_lo: &PlanarRgb, a: [f32; 3]) {
    let [r, g, b] = &rgb_lo.planes;
    for (i, t) in t_lo.data.iter_mut().enumerate() {
        *t = t.max(transmission_floor([r.data[i], g.data[i], b.data[i]], a));
    }
}

/// The refinement network's depth input: −ln max(T, t0) of the working-resolution T.
pub(crate) fn refine_depth(t_lo: &Plane, t0: f32) -> Plane {
    Plane {
        width: t_lo.width,
        height: t_lo.height,
        data: t_lo.data.iter().map(|&t| -(t.max(t0)).ln()).collect(),
    }
}

/// Stage 2 at the working resolution: ΔJ (three planes of `t_lo`'s size) from the
/// downsampled J₁ and the depth −ln max(T, t0). `x2` is the network input's buffer.
pub(crate) fn working_stage2(
    nets: &mut FullNets,
    j1_lo: &[Plane],
    t_lo: &Plane,
    t0: f32,
    x2: &mut Vec<f32>,
) -> Result<[Plane; 3]> {
    let (lw, lh) = (t_lo.width, t_lo.height);
    let (pw, ph) = (
        lw.next_multiple_of(PAD_MULTIPLE),
        lh.next_multiple_of(PAD_MULTIPLE),
    );
    let depth = refine_depth(t_lo, t0);
    pack_padded(j1_lo.iter().take(3).chain([&depth]), ph, pw, x2);
    let dj = nets.stage2.run(ph, pw, &[x2])?.remove(0);
    Ok(std::array::from_fn(|c| crop(&dj, c, ph, pw, lw, lh)))
}

/// R, the streak network's rain layer of the padded frame in `ws.x_full` (pw×ph); with
/// `ensemble`, R = ½(streak(x) + mirror(streak(mirror(x)))), which mirrors exactly with its
/// input (the network alone does not).
fn rain_layer(
    nets: &mut FullNets,
    ws: &mut FullWorkspace,
    (pw, ph): (usize, usize),
    ensemble: bool,
) -> Result<Vec<f32>> {
    let check = |r: Vec<f32>| {
        if r.len() == 3 * pw * ph {
            Ok(r)
        } else {
            Err(Error::Inference {
                net: "streak.onnx",
                reason: format!("{} values of R for a {pw}x{ph} frame", r.len()),
            })
        }
    };
    let mut rain = check(nets.streak.run(ph, pw, &[&ws.x_full])?.remove(0))?;
    if ensemble {
        // Mirrored in place and back (the frame is read again for I_s): no second copy.
        mirror_rows(&mut ws.x_full, pw);
        let mirrored = nets.streak.run(ph, pw, &[&ws.x_full]);
        mirror_rows(&mut ws.x_full, pw);
        mean_mirrored(&mut rain, &check(mirrored?.remove(0))?, pw);
    }
    Ok(rain)
}

/// Runs `full` mode from any [`Source`] into any [`Sink`] (the `Components` sink gets S and T
/// at full resolution and J after stage 2).
pub(crate) fn derain_full_into(
    src: Source<'_>,
    nets: &mut FullNets,
    params: &PhysicsParams,
    ensemble: bool,
    tracker: Option<&mut dyn AtmosphereStep>,
    ws: &mut FullWorkspace,
    sink: Sink<'_, '_>,
) -> Result<RunInfo> {
    let (w, h) = (src.width(), src.height());
    if w == 0 || h == 0 {
        return Err(Error::param("input", "empty image"));
    }
    let t0 = params.min_transmission;
    // The bound on the gain 1/T that keeps sensor noise in check (physics::noise), in the
    // inversion only: stage 2 sees the estimated T, as in training.
    let t_inv = crate::physics::noise::min_transmission_for(&src, params);
    let t_start = std::time::Instant::now();

    // The streak network at full resolution: R, then I_s = clamp(I − R, 0, 1).
    let (pw_full, ph_full) = (w.next_multiple_of(MULTIPLE), h.next_multiple_of(MULTIPLE));
    pack_frame(&src, pw_full, ph_full, &mut ws.x_full);
    let rain = rain_layer(nets, ws, (pw_full, ph_full), ensemble)?;
    let t_streak = std::time::Instant::now();
    let mut i_s = match ws.i_s.take() {
        Some(p) if p.width() == w && p.height() == h => p,
        _ => PlanarRgb::zeros(w, h),
    };
    let plane_full = pw_full * ph_full;
    for (c, p) in i_s.planes.iter_mut().enumerate() {
        let (x, r) = (
            &ws.x_full[c * plane_full..(c + 1) * plane_full],
            &rain[c * plane_full..(c + 1) * plane_full],
        );
        p.data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
            let (xr, rr) = (
                &x[y * pw_full..y * pw_full + w],
                &r[y * pw_full..y * pw_full + w],
            );
            for ((o, &xv), &rv) in row.iter_mut().zip(xr).zip(rr) {
                *o = (xv - rv).max(0.0).min(1.0);
            }
        });
    }
    let i_s_src = Source::Planar(&i_s);

    let f = work_factor(w, h);
    // The physics veil gate reads the input, as its ramp was calibrated (on I, streaks
    // included); the networks read I_s.
    let raw_lo = src.downsample_with_residue(f);
    let (img_lo, res_lo) = i_s_src.downsample_with_residue(f);
    let t_bank = std::time::Instant::now();
    let st1 = working_stage1(
        nets,
        (&raw_lo.0, &raw_lo.1),
        img_lo,
        &res_lo,
        (w, h),
        tracker,
        &mut ws.x_lf,
    )?;
    let Stage1 {
        t_lo,
        atmosphere: a,
        veil,
        mean_transmission,
        bank_ms,
    } = st1;
    let (lw, lh) = (t_lo.width, t_lo.height);
    let t_stage1 = std::time::Instant::now();

    // Full-resolution pass 1: T, inversion of I_s → J₁ (and S, T into a Components sink).
    let up = Upsampler::new(lw, lh, f, w);
    for p in ws.j1.iter_mut() {
        p.resize(w * h, 0.0);
    }
    let mut comp_st = match &sink {
        Sink::Components(_) => Some((vec![0f32; w * h], vec![0f32; w * h])),
        Sink::Frame(_) => None,
    };
    {
        let [j0, j1, j2] = &mut ws.j1;
        let mut st_rows: Vec<Option<(&mut [f32], &mut [f32])>> = match &mut comp_st {
            Some((s, t)) => s.chunks_mut(w).zip(t.chunks_mut(w)).map(Some).collect(),
            None => (0..h).map(|_| None).collect(),
        };
        j0.par_chunks_mut(w)
            .zip(j1.par_chunks_mut(w))
            .zip(j2.par_chunks_mut(w))
            .zip(st_rows.par_iter_mut())
            .enumerate()
            .for_each_init(
                || {
                    (
                        [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
                        [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
                        vec![0f32; 3 * lw],
                    )
                },
                |(rgb, ups, tmp), (y, (((o0, o1), o2), st))| {
                    i_s_src.row(y, rgb);
                    lerp_rows(&up, [&t_lo, &t_lo, &t_lo], y, tmp, ups);
                    let (ir, ig, ib) = (&rgb[0][..w], &rgb[1][..w], &rgb[2][..w]);
                    let tu = &ups[0][..w];
                    for x in 0..w {
                        let (r, g, b) = (ir[x], ig[x], ib[x]);
                        // Below the noise bound, T is raised to it (both terms): less veil
                        // is removed rather than the grain amplified. Without it, the
                        // trained pipeline's (I − (1 − T)·A) / max(T, t0).
                        let t = if t_inv > t0 { tu[x].max(t_inv) } else { tu[x] };
                        let inv_t = 1.0 / t.max(t0);
                        let omt = 1.0 - t;
                        o0[x] = invert(r, omt, a[0], inv_t);
                        o1[x] = invert(g, omt, a[1], inv_t);
                        o2[x] = invert(b, omt, a[2], inv_t);
                        if let Some((srow, trow)) = st.as_mut() {
                            let k = y * pw_full + x;
                            let mean_r =
                                (rain[k] + rain[plane_full + k] + rain[2 * plane_full + k]) / 3.0;
                            srow[x] = (mean_r * inv_t).max(0.0);
                            trow[x] = t;
                        }
                    }
                },
            );
    }
    let t_pass1 = std::time::Instant::now();

    // Stage 2 on the working resolution.
    // Box-downsample J₁ in place of a copy: the buffers are lent to `Plane`s and taken back.
    let j1_lo: Vec<Plane> = ws
        .j1
        .iter_mut()
        .map(|d| {
            let full = Plane {
                width: w,
                height: h,
                data: std::mem::take(d),
            };
            let lo = downsample(&full, f);
            *d = full.data;
            lo
        })
        .collect();
    let dj = working_stage2(nets, &j1_lo, &t_lo, t0, &mut ws.x2)?;
    let t_stage2 = std::time::Instant::now();

    // Pass 2: J = clamp(J₁ + up(ΔJ)), into the sink.
    let finish_row = |y: usize, ups: &mut [Vec<f32>; 3], tmp: &mut [f32], j: &mut [Vec<f32>; 3]| {
        lerp_rows(&up, [&dj[0], &dj[1], &dj[2]], y, tmp, ups);
        for c in 0..3 {
            let src_row = &ws.j1[c][y * w..(y + 1) * w];
            for ((o, &v), &d) in j[c][..w].iter_mut().zip(src_row).zip(&ups[c][..w]) {
                *o = (v + d).max(0.0).min(1.0);
            }
        }
    };
    let scratch = || {
        (
            [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
            vec![0f32; 3 * lw],
            [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
            [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
        )
    };
    match sink {
        Sink::Components(out) => {
            let mut bg = PlanarRgb::zeros(w, h);
            {
                let [br, bgp, bb] = &mut bg.planes;
                br.data
                    .par_chunks_mut(w)
                    .zip(bgp.data.par_chunks_mut(w))
                    .zip(bb.data.par_chunks_mut(w))
                    .enumerate()
                    .for_each_init(scratch, |(ups, tmp, j, _), (y, ((r, g), b))| {
                        finish_row(y, ups, tmp, j);
                        r.copy_from_slice(&j[0][..w]);
                        g.copy_from_slice(&j[1][..w]);
                        b.copy_from_slice(&j[2][..w]);
                    });
            }
            let (s, t) = comp_st.expect("components sink has S and T buffers");
            out.background = bg;
            out.streaks = Plane {
                width: w,
                height: h,
                data: s,
            };
            out.transmission = Plane {
                width: w,
                height: h,
                data: t,
            };
            out.atmosphere = a;
        }
        Sink::Frame(fs) => {
            let (input, strength) = (fs.input, fs.strength);
            let format = fs.frame.format();
            fs.frame.par_rows_mut().enumerate().for_each_init(
                scratch,
                |(ups, tmp, j, rgb), (y, row)| {
                    finish_row(y, ups, tmp, j);
                    if strength < 1.0 {
                        src.row(y, rgb);
                        for c in 0..3 {
                            crate::frame::blend(&mut j[c][..w], &rgb[c][..w], strength);
                        }
                    }
                    pack_row(
                        format,
                        row,
                        [&j[0][..w], &j[1][..w], &j[2][..w]],
                        Some(input.row(y)),
                    );
                },
            );
        }
    }
    let t_end = std::time::Instant::now();
    ws.i_s = Some(i_s);
    let ms = |a: std::time::Instant, b: std::time::Instant| (b - a).as_secs_f64() * 1e3;
    Ok(RunInfo {
        atmosphere: a,
        veil_gate: Some(veil),
        mean_transmission,
        veil,
        timings: StageTimings {
            low_res_ms: ms(t_streak, t_bank) + bank_ms,
            decomposition_ms: 0.0,
            inversion_ms: ms(t_stage1, t_pass1) + ms(t_stage2, t_end),
            networks_ms: ms(t_bank, t_stage1) - bank_ms + ms(t_pass1, t_stage2),
            streak_ms: ms(t_start, t_streak),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::ModelSize;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The mirror ensemble's rain layer of a mirrored frame is the mirrored rain layer, to the
    /// bit; the network alone is not mirror-symmetric (else the ensemble would change nothing).
    #[test]
    fn the_mirror_ensemble_mirrors_with_its_input() {
        let mut nets = FullNets::embedded(ModelSize::Fast).expect("shipped networks load");
        let (pw, ph) = (48, 32);
        let mut rng = ChaCha8Rng::seed_from_u64(41);
        let x: Vec<f32> = (0..3 * pw * ph)
            .map(|i| {
                // A slanted bright streak every 9 columns over a textured background.
                let (y, c) = ((i / pw) % ph, i % pw);
                let streak = if (c + y / 3) % 9 == 0 { 0.4 } else { 0.0 };
                (0.2 + 0.3 * rng.random::<f32>() + streak).min(1.0)
            })
            .collect();
        let mut ws = FullWorkspace::default();
        // R of `x`, and whether the frame in the workspace was left as it was.
        let mut run = |x: &[f32], ensemble: bool| {
            ws.x_full.clear();
            ws.x_full.extend_from_slice(x);
            let r = rain_layer(&mut nets, &mut ws, (pw, ph), ensemble).unwrap();
            assert_eq!(ws.x_full, x, "the frame is left as it was");
            r
        };
        let mirror = |v: &[f32]| {
            let mut m = v.to_vec();
            mirror_rows(&mut m, pw);
            m
        };
        let mirrored = mirror(&x);
        let (r, r_of_mirrored) = (run(&x, true), run(&mirrored, true));
        assert_eq!(
            r,
            mirror(&r_of_mirrored),
            "the ensemble's R mirrors with the frame"
        );
        assert!(r.iter().any(|&v| v.abs() > 1e-3), "some rain found");
        let (plain, plain_of_mirrored) = (run(&x, false), run(&mirrored, false));
        assert_ne!(
            plain,
            mirror(&plain_of_mirrored),
            "the network alone is not mirror-symmetric"
        );
        assert_ne!(plain, r, "the ensemble changes R");
    }

    /// The floor keeps every block's J₁ ≥ 0 where the veil network's T is too low (a grey
    /// surface close to A taken for dense fog), leaves a consistent T as it was, and is never
    /// above the true T of a frame made by I = T·J + (1 − T)·A.
    #[test]
    fn the_transmission_floor_keeps_j1_non_negative_and_a_consistent_t_unchanged() {
        let (lw, lh) = (24, 16);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let a_net = [0.62, 0.64, 0.68];
        // A hazy frame: J in [0, 0.5], T in [0.2, 0.6] (the physics gate sees the veil).
        let n = lw * lh;
        let t_true: Vec<f32> = (0..n).map(|_| rng.random_range(0.2..0.6)).collect();
        let planes: [Plane; 3] = std::array::from_fn(|c| Plane {
            width: lw,
            height: lh,
            data: t_true
                .iter()
                .map(|&t| t * rng.random_range(0.0..0.5) + (1.0 - t) * a_net[c])
                .collect(),
        });
        for (i, &t) in t_true.iter().enumerate() {
            let rgb = [0, 1, 2].map(|c| planes[c].data[i]);
            assert!(
                transmission_floor(rgb, a_net) <= t + 1e-5,
                "floor above the true T"
            );
        }
        // The network's T: the true one on the left half, far too low (0.02) on the right.
        let t_net = Plane {
            width: lw,
            height: lh,
            data: (0..n)
                .map(|i| if i % lw < lw / 2 { t_true[i] } else { 0.02 })
                .collect(),
        };
        let rgb_lo = PlanarRgb::from_planes(planes.clone()).unwrap();
        let residue = crate::physics::residue::residue(&rgb_lo);
        let st = stage1_tail(
            (&planes, &residue),
            &rgb_lo,
            t_net.clone(),
            a_net,
            (4 * lw, 4 * lh),
            None,
        )
        .unwrap();
        assert_eq!(st.veil, 1.0, "the gate sees the veil");
        assert_eq!(st.atmosphere, a_net);
        let mut raised = 0;
        for i in 0..n {
            let (t, gated) = (st.t_lo.data[i], 1.0 - st.veil * (1.0 - t_net.data[i]));
            for c in 0..3 {
                let j1 = planes[c].data[i] - (1.0 - t) * a_net[c];
                assert!(j1 >= -1e-6, "block {i} channel {c}: J₁·T = {j1}");
            }
            if i % lw < lw / 2 {
                assert_eq!(t, gated, "a consistent T is left as it was");
            } else if t > gated {
                raised += 1;
            }
        }
        assert_eq!(raised, n / 2, "every block of the too-low half is raised");
    }
}
