//! The image operations of the reference generator's MATLAB code (Li, Cheong & Tan 2019,
//! `datagen/render_rain.m`, `generate_dataset.m`, `render_haze.m`), written from their
//! documented definitions so that the `reference` style renders as that code does:
//!
//! | MATLAB | here | what |
//! |---|---|---|
//! | `fspecial('motion', len, theta)` | [`motion_kernel`] | anti-aliased line kernel, 1 px wide |
//! | `imfilter(x, h)` | [`correlate_zero`] | correlation, zero padding, same size |
//! | `imresize(x, s, 'bicubic')`, s > 1 | [`imresize_bicubic`] | Keys cubic (a = −0.5), symmetric borders |
//! | `imgaussfilt(x, sigma)` | [`imgaussfilt`] | Gaussian of size 2⌈2σ⌉+1, replicated borders |
//!
//! Angles follow MATLAB: `theta` in degrees counter-clockwise from +x as the image is shown
//! (y up), so MATLAB's 80° is 100° in the crate's y-down convention. The kernel itself is
//! built in matrix coordinates exactly as `fspecial` builds it, so no conversion is needed
//! when it is applied with [`correlate_zero`].

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::Plane;

/// MATLAB's `eps`: the spacing of f64 at 1.
const EPS: f64 = f64::EPSILON;

/// A dense kernel of `h` rows × `w` columns (row-major), odd sizes, centred.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Row-major taps.
    pub taps: Vec<f32>,
}

/// `fspecial('motion', len, theta)`: the normalised line kernel of length `len` px at
/// `theta_deg` (MATLAB convention, see the module doc), one pixel wide with linearly
/// anti-aliased sides and ends.
pub fn motion_kernel(len: f64, theta_deg: f64) -> Kernel {
    let len = len.max(1.0);
    let half = (len - 1.0) / 2.0;
    let phi = theta_deg.rem_euclid(180.0) / 180.0 * std::f64::consts::PI;
    let (cosphi, sinphi) = (phi.cos(), phi.sin());
    let xsign = if cosphi > 0.0 {
        1.0
    } else if cosphi < 0.0 {
        -1.0
    } else {
        0.0
    };
    let linewdt = 1.0;
    // Half-matrix mesh: x = 0:xsign:sx, y = 0:sy (fix = truncation towards zero).
    let sx = (half * cosphi + linewdt * xsign - len * EPS).trunc();
    let sy = (half * sinphi + linewdt - len * EPS).trunc();
    let xs: Vec<f64> = if xsign == 0.0 {
        vec![0.0]
    } else {
        let n = (sx / xsign).floor().max(0.0) as usize + 1;
        (0..n).map(|i| i as f64 * xsign).collect()
    };
    let ny = sy.max(0.0) as usize + 1;
    let nx = xs.len();
    // dist2line over the half matrix, rows y = 0..sy, columns x in xs.
    let mut d = vec![0f64; ny * nx];
    for yi in 0..ny {
        let y = yi as f64;
        for (xi, &x) in xs.iter().enumerate() {
            let mut dist = y * cosphi - x * sinphi;
            let rad = (x * x + y * y).sqrt();
            if rad >= half && dist.abs() <= linewdt {
                let x2last = half - ((x + dist * sinphi) / cosphi).abs();
                dist = (dist * dist + x2last * x2last).sqrt();
            }
            d[yi * nx + xi] = (linewdt + EPS - dist.abs()).max(0.0);
        }
    }
    // h = rot90(d, 2) in the top-left corner, d in the bottom-right, sharing the centre.
    let (kh, kw) = (2 * ny - 1, 2 * nx - 1);
    let mut k = vec![0f64; kh * kw];
    for yi in 0..ny {
        for xi in 0..nx {
            k[(ny - 1 - yi) * kw + (nx - 1 - xi)] = d[yi * nx + xi];
        }
    }
    for yi in 0..ny {
        for xi in 0..nx {
            k[(ny - 1 + yi) * kw + (nx - 1 + xi)] = d[yi * nx + xi];
        }
    }
    let sum: f64 = k.iter().sum::<f64>() + EPS * len * len;
    let mut taps: Vec<f32> = k.iter().map(|&v| (v / sum) as f32).collect();
    if cosphi > 0.0 {
        // flipud
        let mut flipped = vec![0f32; taps.len()];
        for y in 0..kh {
            flipped[y * kw..(y + 1) * kw].copy_from_slice(&taps[(kh - 1 - y) * kw..(kh - y) * kw]);
        }
        taps = flipped;
    }
    Kernel { h: kh, w: kw, taps }
}

/// `imfilter(src, k)` with MATLAB's defaults: correlation, zero padding, output the size of
/// `src`, kernel centred at ((h+1)/2, (w+1)/2) (1-based). Only the non-zero taps are visited,
/// so a line kernel costs about 2·len operations per pixel.
pub fn correlate_zero(src: &Plane, k: &Kernel) -> Plane {
    let (w, h) = (src.width, src.height);
    let (cy, cx) = ((k.h - 1) / 2, (k.w - 1) / 2);
    let taps: Vec<(isize, isize, f32)> = (0..k.h)
        .flat_map(|y| (0..k.w).map(move |x| (y, x)))
        .filter_map(|(y, x)| {
            let v = k.taps[y * k.w + x];
            (v != 0.0).then_some((y as isize - cy as isize, x as isize - cx as isize, v))
        })
        .collect();
    let mut out = Plane::zeros(w, h);
    out.data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for &(dy, dx, v) in &taps {
            let yy = y as isize + dy;
            if yy < 0 || yy >= h as isize {
                continue;
            }
            let s = src.row(yy as usize);
            // Output columns x with 0 ≤ x + dx < w.
            let x0 = (-dx).max(0) as usize;
            let x1 = (w as isize - dx).min(w as isize).max(0) as usize;
            if x0 >= x1 {
                continue;
            }
            let sx0 = (x0 as isize + dx) as usize;
            for (o, &si) in row[x0..x1].iter_mut().zip(&s[sx0..sx0 + (x1 - x0)]) {
                *o += v * si;
            }
        }
    });
    out
}

/// Keys' cubic convolution kernel with a = −0.5 (MATLAB's `cubic`).
fn cubic(x: f64) -> f64 {
    let a = x.abs();
    let (a2, a3) = (a * a, a * a * a);
    if a <= 1.0 {
        1.5 * a3 - 2.5 * a2 + 1.0
    } else if a <= 2.0 {
        -0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0
    } else {
        0.0
    }
}

/// MATLAB's resampling weights for one dimension when enlarging `n_in` → `n_out` by `scale`:
/// per output index, the input indices (0-based, borders mirrored with the edge repeated) and
/// normalised weights.
fn contributions(n_in: usize, n_out: usize, scale: f64) -> Vec<Vec<(usize, f32)>> {
    const P: usize = 6; // ceil(kernel width 4) + 2
    let mirror = |i: isize| -> usize {
        // aux = [1:n, n:-1:1]; index = aux(mod(i - 1, 2n) + 1), 1-based.
        let n = n_in as isize;
        let m = (i - 1).rem_euclid(2 * n);
        (if m < n { m } else { 2 * n - 1 - m }) as usize
    };
    (1..=n_out)
        .map(|x| {
            let u = x as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (u - 2.0).floor() as isize;
            let ws: Vec<(isize, f64)> = (0..P as isize)
                .map(|p| (left + p, cubic(u - (left + p) as f64)))
                .collect();
            let sum: f64 = ws.iter().map(|w| w.1).sum();
            ws.into_iter()
                .filter(|w| w.1 != 0.0)
                .map(|(i, wt)| (mirror(i), (wt / sum) as f32))
                .collect()
        })
        .collect()
}

/// `imresize(src, scale, 'bicubic')` for `scale` ≥ 1: output ⌈scale·h⌉ × ⌈scale·w⌉, rows
/// first, then columns, as MATLAB orders the passes for an enlargement by the same factor on
/// both sides.
pub fn imresize_bicubic(src: &Plane, scale: f64) -> Result<Plane> {
    if !(scale.is_finite() && scale >= 1.0) || src.width == 0 || src.height == 0 {
        return Err(Error::param(
            "imresize",
            format!("scale {scale} must be ≥ 1 on a non-empty plane"),
        ));
    }
    let (w, h) = (src.width, src.height);
    let (ow, oh) = (
        (w as f64 * scale).ceil() as usize,
        (h as f64 * scale).ceil() as usize,
    );
    let cy = contributions(h, oh, scale);
    let cx = contributions(w, ow, scale);
    // Along the rows' direction (dimension 1 = y) first.
    let mut tmp = Plane::zeros(w, oh);
    tmp.data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for &(i, wt) in &cy[y] {
            for (o, &s) in row.iter_mut().zip(src.row(i)) {
                *o += wt * s;
            }
        }
    });
    let mut out = Plane::zeros(ow, oh);
    out.data
        .par_chunks_mut(ow)
        .enumerate()
        .for_each(|(y, row)| {
            let s = tmp.row(y);
            for (o, c) in row.iter_mut().zip(&cx) {
                *o = c.iter().map(|&(i, wt)| wt * s[i]).sum();
            }
        });
    Ok(out)
}

/// `imgaussfilt(src, sigma)`: separable Gaussian of size 2⌈2σ⌉ + 1, normalised, borders
/// replicated. σ ≤ 0 (or NaN) returns the plane unchanged.
pub fn imgaussfilt(src: &Plane, sigma: f64) -> Plane {
    if sigma.is_nan() || sigma <= 0.0 || src.width == 0 || src.height == 0 {
        return src.clone();
    }
    // MATLAB's 2·ceil(2σ) + 1 taps; beyond twice the image's larger side every further tap
    // reads the replicated border, so the kernel is bounded there (a σ of 1e300 or ∞ would
    // otherwise ask for more taps than memory holds).
    let r = (2.0 * sigma)
        .ceil()
        .clamp(0.0, 2.0 * src.width.max(src.height) as f64) as isize;
    let mut k: Vec<f64> = (-r..=r)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let k: Vec<f32> = k.into_iter().map(|v| v as f32).collect();
    let (w, h) = (src.width, src.height);
    let clampi = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut tmp = Plane::zeros(w, h);
    tmp.data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        for (i, &kv) in k.iter().enumerate() {
            let s = src.row(clampi(y as isize + i as isize - r, h));
            row.iter_mut().zip(s).for_each(|(o, &v)| *o += kv * v);
        }
    });
    let mut out = Plane::zeros(w, h);
    out.data.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
        let s = tmp.row(y);
        for (x, o) in row.iter_mut().enumerate() {
            *o = k
                .iter()
                .enumerate()
                .map(|(i, &kv)| kv * s[clampi(x as isize + i as isize - r, w)])
                .sum();
        }
    });
    out
}

/// The standard normal CDF Φ(x) (via erfc, W. J. Cody's rational approximations as in
/// Numerical Recipes' `erfcc`, relative error < 1.2e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = (x / std::f64::consts::SQRT_2).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    let erfc = if x >= 0.0 { 2.0 - r } else { r };
    0.5 * erfc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vertical_motion_kernel_is_a_normalised_column() {
        // fspecial('motion', 5, 90) is a 5×1 column of 0.2.
        let k = motion_kernel(5.0, 90.0);
        assert_eq!((k.h, k.w), (5, 1));
        for v in &k.taps {
            assert!((v - 0.2).abs() < 1e-6, "{:?}", k.taps);
        }
        // Even lengths get half-weight end taps: fspecial('motion', 4, 90) = [.5 1 1 1 .5]/4.
        let k = motion_kernel(4.0, 90.0);
        assert_eq!((k.h, k.w), (5, 1));
        let want = [0.125, 0.25, 0.25, 0.25, 0.125];
        for (v, w) in k.taps.iter().zip(want) {
            assert!((v - w).abs() < 1e-6, "{:?}", k.taps);
        }
    }

    #[test]
    fn horizontal_and_slanted_motion_kernels() {
        // fspecial('motion', 3, 0) = [1 1 1]/3.
        let k = motion_kernel(3.0, 0.0);
        assert_eq!((k.h, k.w), (1, 3));
        assert!(k.taps.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6));
        // fspecial('motion', 3, 45) is 3×3 with the anti-diagonal carrying most of the mass
        // (theta counter-clockwise as displayed: the line rises to the right).
        let k = motion_kernel(3.0, 45.0);
        assert_eq!((k.h, k.w), (3, 3));
        let sum: f32 = k.taps.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        let anti = k.taps[2] + k.taps[4] + k.taps[6];
        let main = k.taps[0] + k.taps[8];
        assert!(anti > 0.6 && main < 0.01, "{:?}", k.taps);
        // Every kernel sums to 1 and is symmetric under a half turn.
        for &(l, t) in &[(21.0, 80.0), (60.0, 100.0), (33.0, 85.0), (47.0, 95.0)] {
            let k = motion_kernel(l, t);
            let s: f32 = k.taps.iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
            let n = k.taps.len();
            for i in 0..n {
                assert!((k.taps[i] - k.taps[n - 1 - i]).abs() < 1e-7);
            }
            assert!(k.h >= l as usize - 1, "{l} {t}: {}x{}", k.h, k.w);
        }
    }

    #[test]
    fn correlation_shifts_like_matlab() {
        // A kernel with its only tap right of centre reads the right neighbour.
        let k = Kernel {
            h: 1,
            w: 3,
            taps: vec![0.0, 0.0, 1.0],
        };
        let p = Plane::from_vec(4, 1, vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let o = correlate_zero(&p, &k);
        assert_eq!(o.data, vec![2.0, 3.0, 4.0, 0.0]);
    }

    #[test]
    fn bicubic_enlargement_sizes_and_preserves_constants() {
        let p = Plane::filled(7, 5, 0.4);
        let o = imresize_bicubic(&p, 1.21).unwrap();
        assert_eq!((o.width, o.height), (9, 7));
        assert!(o.data.iter().all(|v| (v - 0.4).abs() < 1e-6));
        // A ramp stays a ramp inside (cubic interpolation reproduces linear functions).
        let ramp = Plane::from_vec(16, 1, (0..16).map(|i| i as f32).collect()).unwrap();
        let o = imresize_bicubic(&ramp, 2.0).unwrap();
        for x in 4..28 {
            let u = (x + 1) as f32 / 2.0 + 0.25 - 1.0; // 0-based source coordinate
            assert!((o.data[x] - u).abs() < 1e-4, "x={x}: {} vs {u}", o.data[x]);
        }
        assert!(imresize_bicubic(&p, 0.5).is_err());
    }

    #[test]
    fn gaussian_filter_size_and_constants() {
        let p = Plane::filled(9, 9, 0.7);
        let o = imgaussfilt(&p, 5.0);
        assert!(o.data.iter().all(|v| (v - 0.7).abs() < 1e-6));
        let mut d = Plane::zeros(31, 1);
        d.data[15] = 1.0;
        let o = imgaussfilt(&d, 1.0);
        // Size 2·⌈2⌉ + 1 = 5: taps reach ±2 and no further.
        assert!(o.data[13] > 0.0 && o.data[12] == 0.0);
    }

    #[test]
    fn normal_cdf_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-7);
    }
}
