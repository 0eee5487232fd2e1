//! Bringing clean images to the size a data set is rendered at.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::frame::{MAX_DIMENSION, PlanarRgb, Plane};

/// The output size of rendered samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Keep every image as it is (`orig`).
    Original,
    /// Scale down (never up) so that the longer side is at most this many pixels (`512`).
    MaxSide(usize),
    /// Exactly `W`×`H` (`640x360`): scaled to cover, then centre-cropped.
    Exact(usize, usize),
}

impl FromStr for Size {
    type Err = Error;
    /// Parses `orig`, `N` (max side) or `WxH`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::param("size", format!("`{s}`: expected `orig`, `N` or `WxH`"));
        let s = s.trim();
        let check = |v: usize| {
            if (1..=MAX_DIMENSION as usize).contains(&v) {
                Ok(v)
            } else {
                Err(bad())
            }
        };
        if s.eq_ignore_ascii_case("orig") || s.eq_ignore_ascii_case("original") {
            return Ok(Size::Original);
        }
        if let Some((w, h)) = s.split_once(['x', 'X']) {
            let w = check(w.trim().parse().map_err(|_| bad())?)?;
            let h = check(h.trim().parse().map_err(|_| bad())?)?;
            return Ok(Size::Exact(w, h));
        }
        Ok(Size::MaxSide(check(s.parse().map_err(|_| bad())?)?))
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Original => write!(f, "orig"),
            Size::MaxSide(n) => write!(f, "{n}"),
            Size::Exact(w, h) => write!(f, "{w}x{h}"),
        }
    }
}

/// Resamples `img` to `w`×`h` with a triangle (bilinear, area-widened when shrinking) filter.
pub fn resize(img: &PlanarRgb, w: usize, h: usize) -> Result<PlanarRgb> {
    if img.width() == 0 || img.height() == 0 || w == 0 || h == 0 {
        return Err(Error::param("resize", "empty image or target size"));
    }
    if w > MAX_DIMENSION as usize || h > MAX_DIMENSION as usize {
        return Err(Error::param("resize", format!("{w}x{h} is too large")));
    }
    if (w, h) == (img.width(), img.height()) {
        return Ok(img.clone());
    }
    let n = img.width() * img.height();
    let mut packed = Vec::with_capacity(3 * n);
    for i in 0..n {
        packed.extend(img.planes.iter().map(|p| p.data[i]));
    }
    let src = image::Rgb32FImage::from_raw(img.width() as u32, img.height() as u32, packed)
        .ok_or_else(|| Error::param("resize", "buffer size"))?;
    let out = image::imageops::resize(
        &src,
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    );
    let raw = out.into_raw();
    let planes = [0, 1, 2].map(|c| Plane {
        width: w,
        height: h,
        data: raw
            .iter()
            .skip(c)
            .step_by(3)
            .map(|v| v.clamp(0.0, 1.0))
            .collect(),
    });
    PlanarRgb::from_planes(planes)
}

/// Brings `img` to `size` (see [`Size`]).
pub fn fit(img: &PlanarRgb, size: Size) -> Result<PlanarRgb> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::param("image", "empty image"));
    }
    match size {
        Size::Original => Ok(img.clone()),
        Size::MaxSide(m) => {
            let long = w.max(h);
            if long <= m {
                return Ok(img.clone());
            }
            let k = m as f64 / long as f64;
            let nw = ((w as f64 * k).round() as usize).max(1);
            let nh = ((h as f64 * k).round() as usize).max(1);
            resize(img, nw, nh)
        }
        Size::Exact(tw, th) => {
            let k = (tw as f64 / w as f64).max(th as f64 / h as f64);
            let nw = ((w as f64 * k).ceil() as usize).max(tw);
            let nh = ((h as f64 * k).ceil() as usize).max(th);
            let scaled = resize(img, nw, nh)?;
            let (x0, y0) = ((nw - tw) / 2, (nh - th) / 2);
            let planes = scaled.planes.map(|p| {
                let mut out = Plane::zeros(tw, th);
                for y in 0..th {
                    out.row_mut(y).copy_from_slice(&p.row(y0 + y)[x0..x0 + tw]);
                }
                out
            });
            PlanarRgb::from_planes(planes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("orig".parse::<Size>().unwrap(), Size::Original);
        assert_eq!("512".parse::<Size>().unwrap(), Size::MaxSide(512));
        assert_eq!("640x360".parse::<Size>().unwrap(), Size::Exact(640, 360));
        for bad in ["", "0", "x3", "12x", "-4", "big", "99999"] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
        assert_eq!(Size::Exact(3, 4).to_string(), "3x4");
    }

    #[test]
    fn fit_keeps_aspect_and_never_upscales() {
        let img = PlanarRgb::zeros(100, 50);
        let a = fit(&img, Size::MaxSide(40)).unwrap();
        assert_eq!((a.width(), a.height()), (40, 20));
        let b = fit(&img, Size::MaxSide(400)).unwrap();
        assert_eq!((b.width(), b.height()), (100, 50));
        let c = fit(&img, Size::Exact(30, 30)).unwrap();
        assert_eq!((c.width(), c.height()), (30, 30));
    }

    #[test]
    fn resize_keeps_a_constant_image_constant() {
        let mut img = PlanarRgb::zeros(37, 23);
        img.planes[2].data.fill(0.25);
        let r = resize(&img, 16, 9).unwrap();
        assert!(r.planes[2].data.iter().all(|&v| (v - 0.25).abs() < 1e-5));
        assert!(r.planes[0].data.iter().all(|&v| v.abs() < 1e-6));
    }
}
