//! Residue channel `max(R,G,B) − min(R,G,B)`: white/grey rain streaks and veil add the same
//! amount to every channel and cancel in it, so it is a rain-free guide image (Li et al. 2019).

use crate::frame::{PlanarRgb, Plane};
use rayon::prelude::*;

/// The residue channel of `img`, in [0, 1].
pub fn residue(img: &PlanarRgb) -> Plane {
    let (w, h) = (img.width(), img.height());
    let mut out = Plane::zeros(w, h);
    let [r, g, b] = &img.planes;
    out.data
        .par_chunks_mut(w.max(1) * 16)
        .enumerate()
        .for_each(|(i, o)| {
            let s = i * w * 16;
            let (r, g, b) = (
                &r.data[s..s + o.len()],
                &g.data[s..s + o.len()],
                &b.data[s..s + o.len()],
            );
            for k in 0..o.len() {
                let hi = r[k].max(g[k]).max(b[k]);
                let lo = r[k].min(g[k]).min(b[k]);
                o[k] = hi - lo;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_is_zero_and_pure_colour_is_one() {
        let img = PlanarRgb::from_planes([
            Plane::from_vec(3, 1, vec![0.5, 1.0, 0.2]).unwrap(),
            Plane::from_vec(3, 1, vec![0.5, 0.0, 0.3]).unwrap(),
            Plane::from_vec(3, 1, vec![0.5, 0.0, 0.9]).unwrap(),
        ])
        .unwrap();
        let r = residue(&img);
        for (got, want) in r.data.iter().zip([0.0, 1.0, 0.7]) {
            assert!((got - want).abs() < 1e-6, "{:?}", r.data);
        }
    }

    #[test]
    fn adding_achromatic_streak_leaves_residue_unchanged() {
        let base = PlanarRgb::from_planes([
            Plane::from_vec(2, 1, vec![0.2, 0.6]).unwrap(),
            Plane::from_vec(2, 1, vec![0.4, 0.1]).unwrap(),
            Plane::from_vec(2, 1, vec![0.3, 0.3]).unwrap(),
        ])
        .unwrap();
        let mut rainy = base.clone();
        for p in &mut rainy.planes {
            for v in &mut p.data {
                *v += 0.25;
            }
        }
        let (a, b) = (residue(&base), residue(&rainy));
        for (x, y) in a.data.iter().zip(&b.data) {
            assert!((x - y).abs() < 1e-6);
        }
    }
}
