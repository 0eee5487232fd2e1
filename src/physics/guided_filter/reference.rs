//! Naive O(r²) f64 implementations: the definition the fast code is tested against.
use crate::frame::Plane;

/// Window mean over the in-image part, f64.
pub(crate) fn box_mean(src: &[f64], w: usize, h: usize, r: usize) -> Vec<f64> {
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let (mut s, mut n) = (0.0, 0.0);
            for yy in y.saturating_sub(r)..=(y + r).min(h - 1) {
                for xx in x.saturating_sub(r)..=(x + r).min(w - 1) {
                    s += src[yy * w + xx];
                    n += 1.0;
                }
            }
            out[y * w + x] = s / n;
        }
    }
    out
}

/// Guided filter in f64 by the textbook formula.
pub(crate) fn guided(guide: &Plane, p: &Plane, r: usize, eps: f64) -> Vec<f64> {
    let (w, h) = (guide.width, guide.height);
    let i: Vec<f64> = guide.data.iter().map(|&v| v as f64).collect();
    let p: Vec<f64> = p.data.iter().map(|&v| v as f64).collect();
    let ip: Vec<f64> = i.iter().zip(&p).map(|(a, b)| a * b).collect();
    let ii: Vec<f64> = i.iter().map(|a| a * a).collect();
    let (mi, mp, mip, mii) = (
        box_mean(&i, w, h, r),
        box_mean(&p, w, h, r),
        box_mean(&ip, w, h, r),
        box_mean(&ii, w, h, r),
    );
    let mut a = vec![0.0; w * h];
    let mut b = vec![0.0; w * h];
    for k in 0..w * h {
        let var = mii[k] - mi[k] * mi[k];
        let cov = mip[k] - mi[k] * mp[k];
        a[k] = cov / (var + eps);
        b[k] = mp[k] - a[k] * mi[k];
    }
    let (ma, mb) = (box_mean(&a, w, h, r), box_mean(&b, w, h, r));
    (0..w * h).map(|k| ma[k] * i[k] + mb[k]).collect()
}
