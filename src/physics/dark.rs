//! Dark channel (per-pixel minimum over colour channels, then a square minimum filter) and the
//! separable min filter behind it.

use crate::frame::{PlanarRgb, Plane};

/// Square minimum filter of radius `r` (window clipped at the borders), separable: rows in
/// parallel with the doubling window minimum, then columns as a vectorised minimum over the
/// 2r+1 rows of each output row.
pub fn min_filter(src: &Plane, r: usize) -> Plane {
    use rayon::prelude::*;
    let (w, h) = (src.width, src.height);
    if r == 0 || w == 0 || h == 0 {
        return src.clone();
    }
    let mut horiz = Plane::zeros(w, h);
    horiz.data.par_chunks_mut(w).enumerate().for_each_init(
        || (vec![0f32; w], vec![0f32; w]),
        |(a, b), (y, o)| crate::physics::streaks::window_min(src.row(y), r, o, a, b),
    );
    let mut out = Plane::zeros(w, h);
    out.data.par_chunks_mut(w).enumerate().for_each(|(y, o)| {
        o.copy_from_slice(horiz.row(y));
        for yy in y.saturating_sub(r)..=(y + r).min(h - 1) {
            for (a, &b) in o.iter_mut().zip(horiz.row(yy)) {
                *a = a.min(b);
            }
        }
    });
    out
}

/// Per-pixel min over channels of `img / A` (A per channel, clamped away from 0).
pub fn min_channel_normalised(img: &PlanarRgb, atmosphere: [f32; 3]) -> Plane {
    let inv = atmosphere.map(|a| 1.0 / a.max(1e-3));
    let [r, g, b] = &img.planes;
    let data = r
        .data
        .iter()
        .zip(&g.data)
        .zip(&b.data)
        .map(|((&r, &g), &b)| (r * inv[0]).min(g * inv[1]).min(b * inv[2]))
        .collect();
    Plane {
        width: img.width(),
        height: img.height(),
        data,
    }
}

/// Dark channel of `img / A` with patch radius `r`.
pub fn dark_channel(img: &PlanarRgb, atmosphere: [f32; 3], r: usize) -> Plane {
    min_filter(&min_channel_normalised(img, atmosphere), r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_filter_matches_naive() {
        let (w, h) = (9, 7);
        let src = Plane {
            width: w,
            height: h,
            data: (0..w * h).map(|k| ((k * 37 % 17) as f32) / 17.0).collect(),
        };
        for r in 0..5 {
            let got = min_filter(&src, r);
            for y in 0..h {
                for x in 0..w {
                    let mut m = f32::MAX;
                    for yy in y.saturating_sub(r)..=(y + r).min(h - 1) {
                        for xx in x.saturating_sub(r)..=(x + r).min(w - 1) {
                            m = m.min(src.at(xx, yy));
                        }
                    }
                    assert_eq!(got.at(x, y), m, "r={r} ({x},{y})");
                }
            }
        }
    }
}
