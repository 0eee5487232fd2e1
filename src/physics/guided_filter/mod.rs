//! Box filter and guided filter (He, Sun & Tang, O(1) box-filter form), CPU reference.
//!
//! # Border policy
//! Every box mean is the mean over the **in-image part** of the (2r+1)×(2r+1) window, i.e. the
//! window sum divided by N = box(1) (He et al.; the same in the CUDA kernels and in training/).
//! No padding, clamping or mirroring of pixels.
//!
//! # Filter
//! With guide I (one channel) and input p (one or more channels), per window ω_k:
//! ```text
//!   a_k = cov_k(I, p) / (var_k(I) + eps)        b_k = mean_k(p) − a_k·mean_k(I)
//!   q   = mean(a)·I + mean(b)                    (means over the windows covering the pixel)
//! ```
//!
//! # How it is fast
//! - One streaming pass per row strip, nothing the size of the frame materialised except the
//!   outputs: the statistics (I, I², p_c, I·p_c) are kept as f64 column sums over the 2r+1
//!   rows of the window (one row enters and one leaves per step, in one pass); a row pass
//!   along x turns them into window means, var, cov and the coefficients a, b, which go into a
//!   ring of 2r+2 rows (so the same values can be subtracted when a row leaves); the
//!   coefficients' column sums move down the same way and a second row pass turns them into
//!   q = mean(a)·I + mean(b).
//! - On x86-64 with AVX2 (the project's `target-cpu`) the two row passes are fused kernels:
//!   the window sums along x are an in-register prefix sum of the differences
//!   s[x+r] − s[x−r−1], four columns per step, and the means feed the coefficient or output
//!   arithmetic without being stored. Elsewhere (and for more than 3 inputs or 2 eps) the same
//!   arithmetic runs as scalar running sums.
//! - The guide statistics (mean I, var I and 1/(var+eps)) are shared across channels and eps.
//! - The jobs' rows (one job per radius in the bank) are cut into 2 groups per thread of equal
//!   work; a radius is split into strips (each with a 2r halo) only where a group ends.
//! - `*_into` variants write into caller-owned planes; the coefficient ring is kept per thread.
//! - **8-bit data** (every sample of the guide and inputs a multiple of 1/255, as from a camera
//!   frame and its residue channel) takes an exact integer path on AVX2 builds (`q8`): i32
//!   statistics, fixed-point coefficients with a proven error bound (≤ 8.5e-5 for the paper's
//!   bank), eight columns per instruction. Other data, radii above 90 and eps too small for
//!   the bound take the f64 path below.

//! # Accuracy
//! Window sums come from f64 prefix sums of f32 samples and f64 running sums of exactly the
//! f32 row sums that are later subtracted, so nothing drifts along a row or down the frame.
//! Against an f64 reference the output is within 1e-4 on [0, 1] data for every radius tested
//! (the test suite checks radii 1..=16 exhaustively on small and odd sizes, and 32).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};

#[macro_use]
mod rows;
mod fast;
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
mod q8;
#[cfg(test)]
pub(crate) mod reference;
mod schedule;
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
mod simd;
#[cfg(test)]
pub(crate) mod tests;

pub(crate) use super::resample::reduce_row;
pub use super::resample::{Upsampler, downsample, upsample};
pub use fast::{apply_coefficients, fast_guided_filter_multi, guided_coefficients};
use rows::*;
use schedule::*;

/// Radii of the paper's decomposition bank.
pub const BANK_RADII: [usize; 5] = [2, 4, 8, 16, 32];
/// eps values of the paper's decomposition bank (intensity² on [0, 1]).
pub const BANK_EPS: [f32; 2] = [1e-3, 1e-4];

/// Shape and range checks shared by every guided-filter entry point (and the CUDA ones).
pub(crate) fn check_inputs(guide: &Plane, inputs: &[&Plane], r: usize, eps: &[f32]) -> Result<()> {
    if guide.width == 0 || guide.height == 0 {
        return Err(Error::param("guide", "empty plane"));
    }
    if inputs.is_empty() || eps.is_empty() {
        return Err(Error::param(
            "guided filter",
            "needs at least one input and one eps",
        ));
    }
    for p in inputs {
        guide.ensure_same_dims(p, "guided filter guide vs input")?;
    }
    if r == 0 || r > 1024 {
        return Err(Error::param("radius", format!("{r} is outside 1..=1024")));
    }
    if let Some(e) = eps.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
        return Err(Error::param("eps", format!("{e} must be finite and > 0")));
    }
    Ok(())
}

/// Guided filter of several input channels with one guide, for several eps at once (the guide
/// statistics are shared). Returns planes ordered `[e·inputs.len() + c]`.
pub fn guided_filter_multi(
    guide: &Plane,
    inputs: &[&Plane],
    radius_px: usize,
    eps: &[f32],
) -> Result<Vec<Plane>> {
    check_inputs(guide, inputs, radius_px, eps)?;
    let mut outs = zeroed_like(guide, inputs.len() * eps.len());
    guided_filter_multi_into(guide, inputs, radius_px, eps, &mut outs)?;
    Ok(outs)
}

/// [`guided_filter_multi`] into caller-owned planes (`outs[e·inputs.len() + c]`, each the size
/// of the guide), so a caller that filters every frame allocates nothing.
pub fn guided_filter_multi_into(
    guide: &Plane,
    inputs: &[&Plane],
    radius_px: usize,
    eps: &[f32],
    outs: &mut [Plane],
) -> Result<()> {
    check_inputs(guide, inputs, radius_px, eps)?;
    check_outputs(guide, outs, inputs.len() * eps.len())?;
    run_jobs(
        guide,
        inputs,
        vec![Job {
            r: radius_px,
            eps,
            outs: outs.iter_mut().collect(),
        }],
    );
    Ok(())
}

fn zeroed_like(guide: &Plane, n: usize) -> Vec<Plane> {
    (0..n)
        .map(|_| Plane::zeros(guide.width, guide.height))
        .collect()
}

/// Output planes must be `n`, each the size of the guide.
fn check_outputs(guide: &Plane, outs: &[Plane], n: usize) -> Result<()> {
    if outs.len() != n {
        return Err(Error::param(
            "guided filter outputs",
            format!("{} planes given, {n} needed", outs.len()),
        ));
    }
    for o in outs {
        guide.ensure_same_dims(o, "guided filter guide vs output")?;
    }
    Ok(())
}

/// Guided filter of one plane.
pub fn guided_filter(guide: &Plane, input: &Plane, radius_px: usize, eps: f32) -> Result<Plane> {
    Ok(guided_filter_multi(guide, &[input], radius_px, &[eps])?.remove(0))
}

/// Guided filter of an RGB image with a one-channel guide.
pub fn guided_filter_rgb(
    guide: &Plane,
    input: &PlanarRgb,
    radius_px: usize,
    eps: f32,
) -> Result<PlanarRgb> {
    let [r, g, b] = &input.planes;
    let mut v = guided_filter_multi(guide, &[r, g, b], radius_px, &[eps])?.into_iter();
    let planes = std::array::from_fn(|_| v.next().expect("three planes"));
    PlanarRgb::from_planes(planes)
}

/// The decomposition bank: every radius × every eps × every RGB channel, guided by `guide`.
/// Returns `radii.len() · eps.len() · 3` low-frequency planes ordered `[radius][eps][channel]`;
/// the high-frequency layer of plane k is `input − LF_k`.
pub fn guided_bank(
    guide: &Plane,
    input: &PlanarRgb,
    radii: &[usize],
    eps: &[f32],
) -> Result<Vec<Plane>> {
    let mut outs = zeroed_like(guide, radii.len() * eps.len() * 3);
    guided_bank_into(guide, input, radii, eps, &mut outs)?;
    Ok(outs)
}

/// [`guided_bank`] into caller-owned planes (same order, each the size of the guide).
pub fn guided_bank_into(
    guide: &Plane,
    input: &PlanarRgb,
    radii: &[usize],
    eps: &[f32],
    outs: &mut [Plane],
) -> Result<()> {
    guided_bank_into_with(guide, input, radii, eps, outs, Arithmetic::Auto)
}

/// Which arithmetic the guided filter runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arithmetic {
    /// The exact integer path where every sample is an 8-bit one (a multiple of 1/255) and the
    /// build has AVX2, the f64 path otherwise (module docs).
    #[default]
    Auto,
    /// Always the f64 path: the reference the integer path is checked and timed against.
    F64,
}

/// [`guided_bank_into`] in the given [`Arithmetic`].
pub fn guided_bank_into_with(
    guide: &Plane,
    input: &PlanarRgb,
    radii: &[usize],
    eps: &[f32],
    outs: &mut [Plane],
    arithmetic: Arithmetic,
) -> Result<()> {
    let [r, g, b] = &input.planes;
    let inputs = [r, g, b];
    for &rad in radii {
        check_inputs(guide, &inputs, rad, eps)?;
    }
    let per_radius = 3 * eps.len();
    check_outputs(guide, outs, radii.len() * per_radius)?;
    let mut it = outs.iter_mut();
    let jobs = radii
        .iter()
        .map(|&rad| Job {
            r: rad,
            eps,
            outs: it.by_ref().take(per_radius).collect(),
        })
        .collect();
    run_jobs_on(guide, &inputs, jobs, arithmetic == Arithmetic::Auto);
    Ok(())
}

/// Box mean with radius `r` (border policy above).
pub fn box_mean(src: &Plane, r: usize) -> Result<Plane> {
    if src.width == 0 || src.height == 0 {
        return Err(Error::param("box filter", "empty plane"));
    }
    let (w, h) = (src.width, src.height);
    let inv_nx = inv_counts(w, r);
    let mut out = Plane::zeros(w, h);
    let st = strips(h, r, 2 * rayon::current_num_threads());
    let per = split_strips(vec![&mut out], &st, w);
    st.into_par_iter().zip(per).for_each(|((y0, y1), mut dst)| {
        let dst = &mut *dst[0];
        let mut cols = ColumnSums::new(w, h, r, 1, y0.saturating_sub(r));
        let mut mean = vec![vec![0f64; w]];
        let mut inv = vec![0f64; w];
        for y in y0..y1 {
            cols.advance(y, |yi, yo, acc| {
                let row = |y: Option<usize>| y.map(|y| src.row(y));
                dispatch_step!(row(yi), row(yo), vstep(&mut acc[0]))
            });
            fill_inv(&mut inv, &inv_nx, cols.inv_ny());
            hmeans_rows(&cols.acc, &mut mean, r, &inv);
            for (o, &m) in dst[(y - y0) * w..(y - y0 + 1) * w].iter_mut().zip(&mean[0]) {
                *o = m as f32;
            }
        }
    });
    Ok(out)
}
