//! Sensor noise, and how much of it the inversion may amplify.
//!
//! The inversion J = A + (I − A)/T multiplies everything that is not veil by 1/T, the sensor
//! grain included: on a flat grey frame (which the dark-channel prior reads as dense fog) or
//! a dark night frame, a camera's grain came out 3–5× stronger, and pure noise saturated 60 %
//! of the samples. The noise level σ is estimated per frame ([`sigma`]: the flattest blocks'
//! finest diagonal detail, which smooth structure and near-vertical streaks barely excite),
//! and T is kept at or above
//! σ / `max_output_noise` (3 grey levels by default,
//! [`PhysicsParams::max_output_noise`]): the inversion never makes the grain stronger than that. On clean
//! or rendered frames σ is well under a grey level and the bound stays below t0.

use super::Source;
use crate::config::PhysicsParams;

/// Block size of the estimator, in pixels.
const BLOCK: usize = 8;
/// The estimate is the variance of the flattest 10 % of blocks...
const PERCENTILE: f64 = 0.10;
/// ...divided by the 10th percentile of χ²₁₆ / 16 (16 diagonal differences per block), which
/// a frame of pure Gaussian noise gives.
const CHI2_16_P10: f32 = 0.582;

/// σ of the sensor noise of a frame (on \[0,1\]): per 8×8 block of the luma, the mean square
/// of the 16 diagonal differences (a − b − c + d)/2 of its 2×2 cells; the flattest 10 % of
/// the blocks are taken as noise alone. Reads about 4000 blocks, whole rows of blocks spread
/// over the frame (an eighth of a 1080p frame), in parallel.
pub fn sigma(src: &Source<'_>) -> f32 {
    use rayon::prelude::*;
    let (w, h) = (src.width(), src.height());
    let (bw, bh) = (w / BLOCK, h / BLOCK);
    if bw == 0 || bh == 0 {
        return 0.0;
    }
    // About 4000 blocks are plenty for a 10th percentile: every `step`-th row of blocks.
    let step = (bw * bh / 4000).clamp(1, bh);
    let rows: Vec<usize> = (0..bh).step_by(step).collect();
    let mut vars: Vec<f32> = rows
        .par_iter()
        .flat_map_iter(|&by| {
            let mut rgb = [vec![0f32; w], vec![0f32; w], vec![0f32; w]];
            let mut luma = vec![0f32; BLOCK * w];
            for k in 0..BLOCK {
                src.row(by * BLOCK + k, &mut rgb);
                for (x, l) in luma[k * w..(k + 1) * w].iter_mut().enumerate() {
                    *l = super::luma_of(rgb[0][x], rgb[1][x], rgb[2][x]);
                }
            }
            (0..bw).map(move |bx| {
                let mut sum = 0f32;
                for j in (0..BLOCK).step_by(2) {
                    let (r0, r1) = (&luma[j * w..], &luma[(j + 1) * w..]);
                    for i in (bx * BLOCK..(bx + 1) * BLOCK).step_by(2) {
                        let d = (r0[i] - r0[i + 1] - r1[i] + r1[i + 1]) * 0.5;
                        sum += d * d;
                    }
                }
                sum / 16.0
            })
        })
        .collect();
    let k = ((vars.len() as f64 * PERCENTILE) as usize).min(vars.len() - 1);
    let (_, &mut v, _) = vars.select_nth_unstable_by(k, f32::total_cmp);
    (v / CHI2_16_P10).sqrt()
}

/// The highest the noise bound raises T: dense rain has fine texture that reads as noise
/// (real heavy-rain photos measure 5–18 grey levels), and its veil must still be lifted, at a
/// gain of up to 1 / MAX_FLOOR.
pub const MAX_FLOOR: f32 = 0.5;

/// No rain measures this much ([`sigma`] of 24 grey levels): from here the bound rises from
/// [`MAX_FLOOR`] to 1 (no inversion) at twice this, for frames that are mostly noise.
pub const NOISE_ONLY: f32 = 24.0 / 255.0;

/// The lower bound of T for a frame with noise `sigma`: σ / `max_output_noise`, at least
/// `t0`, at most [`MAX_FLOOR`] (or `t0` when that is higher) up to [`NOISE_ONLY`], then
/// rising to 1. `max_output_noise` ≤ 0: `t0` (no bound).
pub fn min_transmission(sigma: f32, t0: f32, max_output_noise: f32) -> f32 {
    if max_output_noise <= 0.0 {
        return t0;
    }
    let noise_only = ((sigma - NOISE_ONLY) / NOISE_ONLY).clamp(0.0, 1.0);
    let cap = MAX_FLOOR + (1.0 - MAX_FLOOR) * noise_only;
    (sigma / max_output_noise).min(cap).max(t0)
}

/// [`min_transmission`] for the frame `src` (its estimated [`sigma`]) and `params`; the frame
/// is not read when the bound is off.
pub fn min_transmission_for(src: &Source<'_>, params: &PhysicsParams) -> f32 {
    let t0 = params.min_transmission;
    if params.max_output_noise <= 0.0 {
        return t0;
    }
    min_transmission(sigma(src), t0, params.max_output_noise)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{PlanarRgb, Plane};
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// A smooth two-way gradient plus Gaussian noise of `sigma` grey levels, 8-bit.
    fn frame(w: usize, h: usize, sigma: f32, seed: u64) -> PlanarRgb {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = Normal::new(0.0f32, sigma.max(1e-6) / 255.0).unwrap();
        PlanarRgb::from_planes([0.2f32, 0.5, 0.7].map(|base| {
            let data = (0..w * h)
                .map(|i| {
                    let (x, y) = ((i % w) as f32 / w as f32, (i / w) as f32 / h as f32);
                    let v = base + 0.2 * x - 0.1 * y
                        + if sigma > 0.0 { n.sample(&mut rng) } else { 0.0 };
                    (v.clamp(0.0, 1.0) * 255.0).round() / 255.0
                })
                .collect();
            Plane::from_vec(w, h, data).unwrap()
        }))
        .unwrap()
    }

    #[test]
    fn sigma_of_gaussian_noise_is_found() {
        for (k, want) in [1.0f32, 2.0, 4.0, 8.0].into_iter().enumerate() {
            let img = frame(320, 240, want, k as u64);
            let got = sigma(&Source::Planar(&img)) * 255.0;
            // The luma of three independent channels has σ·0.67; the estimate is of the luma.
            let luma = want * (0.299f32.powi(2) + 0.587f32.powi(2) + 0.114f32.powi(2)).sqrt();
            assert!(
                (got - luma).abs() < 0.35 * luma + 0.3,
                "σ {want}: luma noise {luma:.2}, estimated {got:.2}"
            );
        }
    }

    #[test]
    fn a_clean_frame_keeps_t0_and_noise_only_gets_no_inversion() {
        let img = frame(320, 240, 0.0, 0);
        let s = sigma(&Source::Planar(&img));
        assert!(s * 255.0 < 0.3, "{}", s * 255.0);
        let m = crate::config::DEFAULT_MAX_OUTPUT_NOISE;
        assert_eq!(min_transmission(s, 0.1, m), 0.1);
        assert_eq!(min_transmission(3.0 / 255.0, 0.1, m), MAX_FLOOR);
        assert_eq!(min_transmission(2.0 * NOISE_ONLY, 0.1, m), 1.0);
        assert!(min_transmission(1.0 / 255.0, 0.1, m) > 0.3);
        assert_eq!(min_transmission(2.0 * NOISE_ONLY, 0.1, 0.0), 0.1);
    }
}
