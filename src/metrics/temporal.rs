//! Temporal consistency of derained frame sequences (flicker where the ground truth is static).
//!
//! A derainer that removes each frame's rain well can still flicker: residual streaks, a
//! transmission or an atmospheric light that jump from frame to frame. Frame-wise PSNR does
//! not see that; the flicker metric does. With Y the BT.601 luma of
//! [`y_channel`] (studio range, 0–255 scale) and Δ_t X = X_t − X_{t−1}:
//!
//! ```text
//!   flicker = mean over t = 1..N−1 of  mean over p ∈ M_t of |Δ_t Y(out)(p) − Δ_t Y(gt)(p)|
//!   M_t     = all pixels, or { p : |Δ_t Y(gt)(p)| ≤ static_threshold } when one is given
//! ```
//!
//! Real changes of the scene (the ground truth's own Δ) are subtracted, so a perfect output
//! scores 0 whatever the camera does; restricted to static pixels, the metric measures pure
//! flicker. It is in Y levels (0–255): 1.0 means the output's frame-to-frame change is off by
//! one grey level on average. Steps with no pixel in M_t are skipped.

use crate::error::{Error, Result};
use crate::frame::PlanarRgb;

use super::y_channel;

/// The flicker of an output sequence against its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Flicker {
    /// Mean over the counted steps (Y levels, 0–255 scale).
    pub mean: f64,
    /// Value per step t = 1..N−1 (`None` where no pixel was static).
    pub per_step: Vec<Option<f64>>,
    /// Fraction of (step, pixel) pairs counted.
    pub counted_fraction: f64,
}

/// Flicker of `output` against `ground_truth` (equal lengths ≥ 2, all frames of one size).
/// With `static_threshold` (Y levels), only pixels whose ground truth changes by at most that
/// much between the two frames count. Errors on mismatched or too short sequences and when
/// no pixel counts at all.
pub fn flicker(
    output: &[PlanarRgb],
    ground_truth: &[PlanarRgb],
    static_threshold: Option<f64>,
) -> Result<Flicker> {
    if output.len() != ground_truth.len() {
        return Err(Error::param(
            "flicker",
            format!(
                "{} output frames vs {} ground-truth frames",
                output.len(),
                ground_truth.len()
            ),
        ));
    }
    if output.len() < 2 {
        return Err(Error::param("flicker", "needs at least two frames"));
    }
    if let Some(th) = static_threshold
        && !(th.is_finite() && th >= 0.0)
    {
        return Err(Error::param("static_threshold", "must be finite and ≥ 0"));
    }
    let (w, h) = (output[0].width(), output[0].height());
    if w == 0 || h == 0 {
        return Err(Error::param("flicker", "empty frames"));
    }
    for f in output.iter().chain(ground_truth) {
        if f.width() != w || f.height() != h {
            return Err(Error::SizeMismatch {
                what: "frames of a sequence".into(),
                a_width: w,
                a_height: h,
                b_width: f.width(),
                b_height: f.height(),
            });
        }
    }
    let mut prev = (y_channel(&output[0]), y_channel(&ground_truth[0]));
    let mut per_step = Vec::with_capacity(output.len() - 1);
    let (mut total, mut steps, mut counted) = (0.0, 0usize, 0usize);
    for (o, g) in output.iter().zip(ground_truth).skip(1) {
        let cur = (y_channel(o), y_channel(g));
        let (mut sum, mut n) = (0.0, 0usize);
        for i in 0..w * h {
            let dg = cur.1[i] - prev.1[i];
            if static_threshold.is_some_and(|th| dg.abs() > th) {
                continue;
            }
            sum += ((cur.0[i] - prev.0[i]) - dg).abs();
            n += 1;
        }
        if n > 0 {
            let v = sum / n as f64;
            per_step.push(Some(v));
            total += v;
            steps += 1;
            counted += n;
        } else {
            per_step.push(None);
        }
        prev = cur;
    }
    if steps == 0 {
        return Err(Error::param(
            "flicker",
            "no pixel of the ground truth is static under the threshold",
        ));
    }
    Ok(Flicker {
        mean: total / steps as f64,
        per_step,
        counted_fraction: counted as f64 / ((output.len() - 1) * w * h) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: usize, h: usize, v: f32) -> PlanarRgb {
        let mut img = PlanarRgb::zeros(w, h);
        for p in &mut img.planes {
            p.data.fill(v);
        }
        img
    }

    /// Y of an all-grey image: 16 + 219·v.
    const Y_PER_UNIT: f64 = 65.481 + 128.553 + 24.966;

    #[test]
    fn a_perfect_output_does_not_flicker_even_when_the_scene_moves() {
        let gt: Vec<_> = (0..5).map(|t| grey(6, 4, 0.1 * t as f32)).collect();
        let f = flicker(&gt, &gt, None).unwrap();
        assert_eq!(f.mean, 0.0);
        assert_eq!(f.per_step.len(), 4);
        // A constant offset (a biased but stable output) does not flicker either.
        let biased: Vec<_> = (0..5).map(|t| grey(6, 4, 0.05 + 0.1 * t as f32)).collect();
        assert!(flicker(&biased, &gt, None).unwrap().mean < 1e-4);
    }

    #[test]
    fn alternating_brightness_on_a_static_scene_is_measured_in_y_levels() {
        let gt: Vec<_> = (0..4).map(|_| grey(5, 5, 0.5)).collect();
        let out: Vec<_> = (0..4)
            .map(|t| grey(5, 5, if t % 2 == 0 { 0.5 } else { 0.52 }))
            .collect();
        let f = flicker(&out, &gt, Some(0.5)).unwrap();
        let want = 0.02 * Y_PER_UNIT;
        assert!((f.mean - want).abs() < 1e-3, "{} vs {want}", f.mean);
        assert_eq!(f.counted_fraction, 1.0);
    }

    #[test]
    fn the_threshold_keeps_only_static_pixels() {
        // Left half static, right half changing; the output flickers only on the left.
        let mk = |t: usize, flick: f32| {
            let mut img = grey(4, 2, 0.5);
            for p in &mut img.planes {
                for y in 0..2 {
                    p.data[y * 4] += flick * (t % 2) as f32;
                    p.data[y * 4 + 1] += flick * (t % 2) as f32;
                    p.data[y * 4 + 2] = 0.1 * t as f32;
                    p.data[y * 4 + 3] = 0.1 * t as f32;
                }
            }
            img
        };
        let gt: Vec<_> = (0..3).map(|t| mk(t, 0.0)).collect();
        let out: Vec<_> = (0..3).map(|t| mk(t, 0.1)).collect();
        let all = flicker(&out, &gt, None).unwrap();
        let stat = flicker(&out, &gt, Some(1.0)).unwrap();
        assert!((stat.mean - 0.1 * Y_PER_UNIT).abs() < 1e-3);
        assert!((all.mean - 0.05 * Y_PER_UNIT).abs() < 1e-3);
        assert!((stat.counted_fraction - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bad_sequences_are_errors() {
        let a = vec![grey(2, 2, 0.0); 3];
        assert!(flicker(&a[..1], &a[..1], None).is_err());
        assert!(flicker(&a, &a[..2], None).is_err());
        let mut b = a.clone();
        b[1] = grey(3, 2, 0.0);
        assert!(flicker(&b, &a, None).is_err());
        assert!(flicker(&a, &a, Some(-1.0)).is_err());
        let moving: Vec<_> = (0..3).map(|t| grey(2, 2, 0.3 * t as f32)).collect();
        assert!(flicker(&moving, &moving, Some(1.0)).is_err());
    }
}
