//! Image-quality metrics as the deraining literature computes them.
//!
//! - **PSNR on Y**: Y = 16 + 65.481·R + 128.553·G + 24.966·B (R,G,B in [0, 1]; ITU-R BT.601
//!   studio range as MATLAB's `rgb2ycbcr`), peak 255.
//! - **SSIM on Y** (Wang et al. 2004): Gaussian window σ = 1.5 truncated at 3.5σ (11×11),
//!   K1 = 0.01, K2 = 0.03, L = 255, population (not sample) covariances, borders: the filtered
//!   maps use mirror padding (`d c b a | a b c d`) and the mean skips the 5-pixel border —
//!   exactly scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
//!   use_sample_covariance=False, data_range=255)`, which the committed fixtures check.
//! - **PSNR on RGB**: all three channels, peak 1 on [0, 1].

pub mod temporal;

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};

/// Y (BT.601, studio range, [16, 235]) of an RGB image in [0, 1].
pub fn y_channel(img: &PlanarRgb) -> Vec<f64> {
    let [r, g, b] = &img.planes;
    r.data
        .iter()
        .zip(&g.data)
        .zip(&b.data)
        .map(|((&r, &g), &b)| 16.0 + 65.481 * r as f64 + 128.553 * g as f64 + 24.966 * b as f64)
        .collect()
}

fn ensure_same(a: &PlanarRgb, b: &PlanarRgb) -> Result<()> {
    if a.width() != b.width() || a.height() != b.height() {
        return Err(Error::SizeMismatch {
            what: "images compared by a metric".into(),
            a_width: a.width(),
            a_height: a.height(),
            b_width: b.width(),
            b_height: b.height(),
        });
    }
    if a.width() == 0 || a.height() == 0 {
        return Err(Error::param("metric", "empty image"));
    }
    Ok(())
}

/// PSNR (dB) from a mean squared error and a peak value; `inf` for identical images.
pub fn psnr_from_mse(mse: f64, peak: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        10.0 * (peak * peak / mse).log10()
    }
}

/// PSNR of the Y channel, peak 255.
pub fn psnr_y(a: &PlanarRgb, b: &PlanarRgb) -> Result<f64> {
    ensure_same(a, b)?;
    let (ya, yb) = (y_channel(a), y_channel(b));
    let mse = ya
        .iter()
        .zip(&yb)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        / ya.len() as f64;
    Ok(psnr_from_mse(mse, 255.0))
}

/// PSNR over the RGB channels, peak 1.
pub fn psnr_rgb(a: &PlanarRgb, b: &PlanarRgb) -> Result<f64> {
    ensure_same(a, b)?;
    let mut se = 0f64;
    for c in 0..3 {
        for (&x, &y) in a.planes[c].data.iter().zip(&b.planes[c].data) {
            se += ((x - y) as f64).powi(2);
        }
    }
    Ok(psnr_from_mse(se / (3 * a.width() * a.height()) as f64, 1.0))
}

/// PSNR of a single plane (e.g. T or S against ground truth), peak 1.
pub fn psnr_plane(a: &Plane, b: &Plane) -> Result<f64> {
    a.ensure_same_dims(b, "planes compared by PSNR")?;
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.data.len().max(1) as f64;
    Ok(psnr_from_mse(mse, 1.0))
}

fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as i64;
    let k: Vec<f64> = (-r..=r)
        .map(|i| (-0.5 * (i * i) as f64 / (sigma * sigma)).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// Index into [0, n) with half-sample symmetric reflection (scipy's `reflect`).
fn reflect(i: i64, n: i64) -> usize {
    let period = 2 * n;
    let mut m = i.rem_euclid(period);
    if m >= n {
        m = period - 1 - m;
    }
    m as usize
}

/// Separable Gaussian filter with scipy `reflect` borders.
fn gauss_filter(src: &[f64], w: usize, h: usize, k: &[f64]) -> Vec<f64> {
    let r = (k.len() / 2) as i64;
    let mut tmp = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (j, &kv) in k.iter().enumerate() {
                s += kv * src[y * w + reflect(x as i64 + j as i64 - r, w as i64)];
            }
            tmp[y * w + x] = s;
        }
    }
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut s = 0.0;
            for (j, &kv) in k.iter().enumerate() {
                s += kv * tmp[reflect(y as i64 + j as i64 - r, h as i64) * w + x];
            }
            out[y * w + x] = s;
        }
    }
    out
}

/// SSIM of two single-channel images (peak `data_range`), as described in the module docs.
/// Images smaller than the 11×11 window are an error (as in scikit-image).
pub fn ssim_gray(a: &[f64], b: &[f64], w: usize, h: usize, data_range: f64) -> Result<f64> {
    let k = gaussian_kernel(1.5, 3.5);
    let win = k.len();
    if w < win || h < win {
        return Err(Error::param(
            "ssim",
            format!("image {w}x{h} is smaller than the {win}x{win} window"),
        ));
    }
    if w.checked_mul(h)
        .is_none_or(|n| a.len() != n || b.len() != n)
    {
        return Err(Error::param(
            "ssim",
            format!("{} and {} samples for a {w}x{h} image", a.len(), b.len()),
        ));
    }
    let (c1, c2) = ((0.01 * data_range).powi(2), (0.03 * data_range).powi(2));
    let aa: Vec<f64> = a.iter().map(|v| v * v).collect();
    let bb: Vec<f64> = b.iter().map(|v| v * v).collect();
    let ab: Vec<f64> = a.iter().zip(b).map(|(x, y)| x * y).collect();
    let (ma, mb) = (gauss_filter(a, w, h, &k), gauss_filter(b, w, h, &k));
    let (maa, mbb, mab) = (
        gauss_filter(&aa, w, h, &k),
        gauss_filter(&bb, w, h, &k),
        gauss_filter(&ab, w, h, &k),
    );
    let pad = (win - 1) / 2;
    let mut sum = 0.0;
    let mut n = 0usize;
    for y in pad..h - pad {
        for x in pad..w - pad {
            let i = y * w + x;
            let (va, vb, cov) = (
                maa[i] - ma[i] * ma[i],
                mbb[i] - mb[i] * mb[i],
                mab[i] - ma[i] * mb[i],
            );
            let s = ((2.0 * ma[i] * mb[i] + c1) * (2.0 * cov + c2))
                / ((ma[i] * ma[i] + mb[i] * mb[i] + c1) * (va + vb + c2));
            sum += s;
            n += 1;
        }
    }
    Ok(sum / n as f64)
}

/// SSIM on the Y channel (peak 255).
pub fn ssim_y(a: &PlanarRgb, b: &PlanarRgb) -> Result<f64> {
    ensure_same(a, b)?;
    ssim_gray(&y_channel(a), &y_channel(b), a.width(), a.height(), 255.0)
}

/// The three numbers `derain eval` reports per image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// PSNR on Y (dB).
    pub psnr_y: f64,
    /// SSIM on Y.
    pub ssim_y: f64,
    /// PSNR on RGB (dB).
    pub psnr_rgb: f64,
}

impl Scores {
    /// All three metrics of `a` against the reference `b`.
    pub fn compute(a: &PlanarRgb, b: &PlanarRgb) -> Result<Self> {
        Ok(Self {
            psnr_y: psnr_y(a, b)?,
            ssim_y: ssim_y(a, b)?,
            psnr_rgb: psnr_rgb(a, b)?,
        })
    }
    /// Mean of a list (PSNR averaged in dB, as papers do).
    pub fn mean(list: &[Scores]) -> Option<Self> {
        if list.is_empty() {
            return None;
        }
        let n = list.len() as f64;
        Some(Self {
            psnr_y: list.iter().map(|s| s.psnr_y).sum::<f64>() / n,
            ssim_y: list.iter().map(|s| s.ssim_y).sum::<f64>() / n,
            psnr_rgb: list.iter().map(|s| s.psnr_rgb).sum::<f64>() / n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_are_infinite_psnr_and_unit_ssim() {
        let mut img = PlanarRgb::zeros(16, 16);
        for (k, v) in img.planes[1].data.iter_mut().enumerate() {
            *v = (k % 7) as f32 / 7.0;
        }
        let s = Scores::compute(&img, &img).unwrap();
        assert!(s.psnr_y.is_infinite() && (s.ssim_y - 1.0).abs() < 1e-12);
    }

    #[test]
    fn reflect_matches_scipy_convention() {
        let idx: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(idx, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn too_small_for_ssim_is_an_error() {
        let img = PlanarRgb::zeros(5, 5);
        assert!(ssim_y(&img, &img).is_err());
        assert!(psnr_y(&img, &PlanarRgb::zeros(5, 6)).is_err());
    }
}
