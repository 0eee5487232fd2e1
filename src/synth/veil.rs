//! The veil: an edge-aware proxy depth and the transmission T = exp(−β·depth).
//!
//! No depth maps are reachable for our clean images, and the reference method only uses a
//! heavily smoothed depth anyway, so the depth is a documented proxy:
//! 1. **Near-to-far vertical prior.** A disparity-like ramp δ is 0 at and above the `horizon`
//!    row and rises to 1 at the bottom row along ramp^gamma, plus a left-to-right `tilt` and a
//!    smooth random `wobble` (a 4×4 grid of uniform values, bilinearly upsampled), clamped to
//!    [0, 1.5]: outdoor photographs look down on the ground and up at the sky. Depth is
//!    ε/(δ + ε) (ε = `offset`): the reference's "1/(d + 0.1), normalised" applied to δ, so
//!    most of the ground is fairly near and depth rises steeply towards the horizon.
//! 2. **Edge-aware.** The prior is passed through a guided filter (radius max(w,h)/12,
//!    eps 1e-2) guided by the image's BT.601 luma. Where luma changes across a window in step
//!    with the prior (a bright sky over a dark skyline), the depth takes the luma's edge, so
//!    the veil hugs object boundaries instead of cutting straight across them; flat regions
//!    keep the prior.
//! 3. Clamped to [ε/(1.5 + ε), 1]. 1 is far.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};
use crate::physics::{guided_filter::guided_filter, luma};

use super::DepthPrior;

/// The guided filter's eps for the edge-aware depth (intensity² on [0, 1]).
pub const DEPTH_GUIDE_EPS: f32 = 1e-2;

/// Stream of the depth-wobble RNG, kept apart from the streak streams.
const WOBBLE_STREAM: u64 = 0xD3_97;

/// The vertical prior (step 1) for a `w`×`h` image, before the guided filter.
pub fn depth_prior(w: usize, h: usize, prior: &DepthPrior, seed: u64) -> Plane {
    if w == 0 || h == 0 {
        return Plane::zeros(w, h);
    }
    const G: usize = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(WOBBLE_STREAM);
    let grid: Vec<f32> = (0..(G + 1) * (G + 1))
        .map(|_| rng.random_range(-1.0..=1.0f32))
        .collect();
    let mut out = Plane::zeros(w, h);
    let hor = prior.horizon;
    let eps = prior.offset;
    out.data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let v = if h > 1 {
            y as f32 / (h - 1) as f32
        } else {
            1.0
        };
        let ramp = if v <= hor {
            0.0
        } else {
            ((v - hor) / (1.0 - hor).max(1e-3))
                .clamp(0.0, 1.0)
                .powf(prior.gamma)
        };
        let gy = v * G as f32;
        let y0 = (gy.floor() as usize).min(G - 1);
        let fy = gy - y0 as f32;
        for (x, o) in row.iter_mut().enumerate() {
            let u = if w > 1 {
                x as f32 / (w - 1) as f32
            } else {
                0.5
            };
            let gx = u * G as f32;
            let x0 = (gx.floor() as usize).min(G - 1);
            let fx = gx - x0 as f32;
            let at = |i: usize, j: usize| grid[j * (G + 1) + i];
            let top = at(x0, y0) + (at(x0 + 1, y0) - at(x0, y0)) * fx;
            let bot = at(x0, y0 + 1) + (at(x0 + 1, y0 + 1) - at(x0, y0 + 1)) * fx;
            let wob = top + (bot - top) * fy;
            let disparity =
                (ramp + prior.tilt * (u - 0.5) + prior.wobble * wob).clamp(0.0, MAX_DISPARITY);
            *o = eps / (disparity + eps);
        }
    });
    out
}

/// Largest disparity of the ramp after tilt and wobble.
const MAX_DISPARITY: f32 = 1.5;

/// The edge-aware proxy depth of `clean` (steps 1–3 of the module doc), in
/// [ε/(1.5 + ε), 1].
pub fn proxy_depth(clean: &PlanarRgb, prior: &DepthPrior, seed: u64) -> Result<Plane> {
    let (w, h) = (clean.width(), clean.height());
    if w == 0 || h == 0 {
        return Err(Error::param("clean image", "empty image"));
    }
    let base = depth_prior(w, h, prior, seed);
    let radius = (w.max(h) / 12).max(1);
    let mut d = guided_filter(&luma(clean), &base, radius, DEPTH_GUIDE_EPS)?;
    let lo = prior.offset / (MAX_DISPARITY + prior.offset);
    d.data.par_iter_mut().for_each(|v| *v = v.clamp(lo, 1.0));
    Ok(d)
}

/// T = exp(−β·depth).
pub fn transmission(depth: &Plane, beta: f32) -> Plane {
    let data = depth.data.par_iter().map(|&d| (-beta * d).exp()).collect();
    Plane {
        width: depth.width,
        height: depth.height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_runs_from_near_at_the_bottom_to_far_above_the_horizon() {
        let p = DepthPrior {
            horizon: 0.25,
            offset: 0.1,
            gamma: 1.0,
            tilt: 0.0,
            wobble: 0.0,
        };
        let d = depth_prior(8, 41, &p, 0);
        assert!((d.at(3, 0) - 1.0).abs() < 1e-6);
        assert!((d.at(3, 10) - 1.0).abs() < 1e-6);
        assert!((d.at(3, 40) - 0.1 / 1.1).abs() < 1e-6);
        for y in 10..40 {
            assert!(d.at(3, y + 1) < d.at(3, y));
        }
    }

    #[test]
    fn depth_follows_a_skyline_edge() {
        // Bright sky over a dark block whose top edge is at row 20, well below the horizon
        // row of the prior: the edge-aware depth must step up at the block's edge.
        let (w, h) = (48, 64);
        let mut img = PlanarRgb::zeros(w, h);
        for p in &mut img.planes {
            for y in 0..h {
                for x in 0..w {
                    p.data[y * w + x] = if y < 20 { 0.9 } else { 0.2 };
                }
            }
        }
        let prior = DepthPrior {
            horizon: 0.0,
            offset: 0.5,
            ..DepthPrior::default()
        };
        let d = proxy_depth(&img, &prior, 1).unwrap();
        let plain = depth_prior(w, h, &prior, 1);
        // The change of depth concentrates on the edge: one row across it changes depth
        // several times more than one row of the plain ramp.
        let jump_edge = d.at(24, 19) - d.at(24, 20);
        let jump_plain = plain.at(24, 19) - plain.at(24, 20);
        assert!(jump_edge > 3.0 * jump_plain, "{jump_edge} vs {jump_plain}");
        assert!(d.data.iter().all(|&v| (0.5 / 2.0..=1.0).contains(&v)));
    }

    #[test]
    fn transmission_is_exp_of_minus_beta_depth() {
        let d = Plane::from_vec(2, 1, vec![0.0, 0.5]).unwrap();
        let t = transmission(&d, 4.0);
        assert_eq!(t.data[0], 1.0);
        assert!((t.data[1] - (-2.0f32).exp()).abs() < 1e-7);
    }
}
