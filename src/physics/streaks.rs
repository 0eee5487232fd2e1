//! Rain streak layer S from the high-frequency layer HF = I − LF.
//!
//! Streaks are achromatic (they add the same amount to R, G and B) and bright, so their trace
//! in HF is `min_c HF_c > 0`; chromatic texture mostly fails that test. What remains (white or
//! grey texture) is told apart by shape: rain falls near-vertically, so its HF trace extends
//! much further along y than along x. The weight is
//! `clamp(2·(V − H) / (V + 1e-4), 0, 1)` with V, H the 1-D means of the achromatic HF along y
//! and along x over ±L pixels: ≈1 for thin vertical streaks, 0 for blobs, horizontal edges and
//! wide vertical structures.

use crate::frame::{PlanarRgb, Plane};
use rayon::prelude::*;

/// 1-D mean along x of one row over ±l (in-image part), via an f64 running sum.
pub(crate) fn line_mean_row(row: &[f32], l: usize, out: &mut [f32]) {
    let w = row.len();
    let out = &mut out[..w];
    let mut acc: f64 = row[..l.min(w)].iter().map(|&v| v as f64).sum();
    let edge =
        |x: usize, acc: f64| (acc / ((x + l + 1).min(w) - x.saturating_sub(l)) as f64) as f32;
    let head = (l + 1).min(w);
    for x in 0..head {
        if x + l < w {
            acc += row[x + l] as f64;
        }
        out[x] = edge(x, acc);
    }
    let inv = 1.0 / (2 * l + 1) as f64;
    if w > 2 * l + 1 {
        for x in head..w - l {
            acc += row[x + l] as f64 - row[x - l - 1] as f64;
            out[x] = (acc * inv) as f32;
        }
    }
    for x in head.max(w.saturating_sub(l))..w {
        acc -= row[x - l - 1] as f64;
        out[x] = edge(x, acc);
    }
}

/// 1-D running mean along x (`horizontal = true`) or y, radius `l`, border: in-image part.
pub fn line_mean(src: &Plane, l: usize, horizontal: bool) -> Plane {
    let (w, h) = (src.width, src.height);
    let mut out = Plane::zeros(w, h);
    if horizontal {
        out.data.par_chunks_mut(w).enumerate().for_each(|(y, o)| {
            let row = src.row(y);
            let mut pref = Vec::with_capacity(w + 1);
            let mut acc = 0f64;
            pref.push(0.0);
            for &v in row {
                acc += v as f64;
                pref.push(acc);
            }
            for (x, o) in o.iter_mut().enumerate() {
                let (a, b) = (x.saturating_sub(l), (x + l + 1).min(w));
                *o = ((pref[b] - pref[a]) / (b - a) as f64) as f32;
            }
        });
    } else {
        out.data.par_chunks_mut(w).enumerate().for_each(|(y, o)| {
            let (a, b) = (y.saturating_sub(l), (y + l + 1).min(h));
            for yy in a..b {
                for (o, &v) in o.iter_mut().zip(src.row(yy)) {
                    *o += v;
                }
            }
            let inv = 1.0 / (b - a) as f32;
            for o in o.iter_mut() {
                *o *= inv;
            }
        });
    }
    out
}

/// Bright structures narrower than 2k+1 pixels along x, per row: `v − open_k(v)` where the
/// opening is a min filter then a max filter over x ± k (a horizontal line structuring
/// element). `tmp` and `er` are scratch rows of the same length.
pub(crate) fn narrow_bright_row(v: &[f32], k: usize, scratch: &mut [Vec<f32>; 3], out: &mut [f32]) {
    let w = v.len();
    let [er, s1, s2] = scratch;
    let (er, s1, s2, out) = (&mut er[..w], &mut s1[..w], &mut s2[..w], &mut out[..w]);
    window_extremum::<false>(v, k, er, s1, s2); // erosion
    window_extremum::<true>(er, k, out, s1, s2); // dilation of the erosion
    for (o, &v) in out.iter_mut().zip(v) {
        *o = v - *o;
    }
}

/// Minimum over x ± k (window clipped at the row ends); `a`, `b` are scratch rows.
pub(crate) fn window_min(v: &[f32], k: usize, out: &mut [f32], a: &mut [f32], b: &mut [f32]) {
    window_extremum::<false>(v, k, out, a, b)
}

/// min (or max with `MAX`) over x ± k, the window clipped at the row ends.
///
/// Doubling (log₂ k passes instead of 2k): f_len[x] is the extremum over
/// [x, min(x + len, w)); with len the largest power of two ≤ 2k+1, a full window
/// [lo, hi) is covered by f[lo] and f[hi − len]. Windows shorter than len (at the row ends of
/// short rows) are computed directly. `a` and `b` are scratch rows.
#[inline(never)]
fn window_extremum<const MAX: bool>(
    v: &[f32],
    k: usize,
    out: &mut [f32],
    a: &mut [f32],
    b: &mut [f32],
) {
    let w = v.len();
    let op = |x: f32, y: f32| if MAX { x.max(y) } else { x.min(y) };
    let n = 2 * k + 1;
    a.copy_from_slice(v);
    let (mut f, mut g) = (a, b);
    let mut len = 1;
    while 2 * len <= n && len < w {
        let m = w - len;
        for ((o, &x), &y) in g[..m].iter_mut().zip(&f[..m]).zip(&f[len..]) {
            *o = op(x, y);
        }
        g[m..].copy_from_slice(&f[m..]);
        std::mem::swap(&mut f, &mut g);
        len *= 2;
    }
    let at = |x: usize| {
        let lo = x.saturating_sub(k);
        let hi = (x + k + 1).min(w);
        if hi - lo >= len {
            op(f[lo], f[hi - len])
        } else {
            v[lo..hi].iter().copied().fold(v[lo], op)
        }
    };
    if w <= 2 * k + 1 {
        for (x, o) in out.iter_mut().enumerate() {
            *o = at(x);
        }
        return;
    }
    // Interior x ∈ [k, w−k): lo = x−k, hi − len = x+k+1−len; a branch-free zipped loop.
    let m = w - 2 * k;
    let shift = 2 * k + 1 - len;
    for ((o, &a), &b) in out[k..k + m]
        .iter_mut()
        .zip(&f[..m])
        .zip(&f[shift..shift + m])
    {
        *o = op(a, b);
    }
    for x in (0..k).chain(w - k..w) {
        out[x] = at(x);
    }
}

/// Achromatic narrow bright structures: `max(0, min_c (I_c − open_k(I_c)))`. The opening with
/// a horizontal segment of 2k+1 pixels is the background that a thin near-vertical streak
/// hides (the values beside it on the same row); the minimum over channels keeps only what
/// was added equally to R, G and B, as rain is.
pub fn achromatic_narrow(img: &PlanarRgb, k: usize) -> Plane {
    let (w, h) = (img.width(), img.height());
    let mut out = Plane::zeros(w, h);
    out.data.par_chunks_mut(w).enumerate().for_each_init(
        || ([vec![0f32; w], vec![0f32; w], vec![0f32; w]], vec![0f32; w]),
        |(er, tmp), (y, o)| {
            narrow_bright_row(img.planes[0].row(y), k, er, o);
            for c in 1..3 {
                narrow_bright_row(img.planes[c].row(y), k, er, tmp);
                for (o, &t) in o.iter_mut().zip(tmp.iter()) {
                    *o = o.min(t);
                }
            }
            for o in o.iter_mut() {
                *o = o.max(0.0);
            }
        },
    );
    out
}

/// Observed streaks (as they appear in I, i.e. T·S) from `img` and its low-frequency layer.
pub fn observed_streaks(img: &PlanarRgb, lf: &PlanarRgb, half_length: usize, gain: f32) -> Plane {
    let (w, h) = (img.width(), img.height());
    let mut achro = Plane::zeros(w, h);
    achro.data.par_iter_mut().enumerate().for_each(|(k, o)| {
        let d0 = img.planes[0].data[k] - lf.planes[0].data[k];
        let d1 = img.planes[1].data[k] - lf.planes[1].data[k];
        let d2 = img.planes[2].data[k] - lf.planes[2].data[k];
        *o = d0.min(d1).min(d2).max(0.0);
    });
    let v = line_mean(&achro, half_length, false);
    let hm = line_mean(&achro, half_length, true);
    let mut out = achro;
    out.data
        .par_iter_mut()
        .zip(v.data.par_iter().zip(hm.data.par_iter()))
        .for_each(|(o, (&v, &hm))| {
            let wgt = (2.0 * (v - hm) / (v + 1e-4)).max(0.0).min(1.0);
            *o *= wgt * gain;
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_extremum_matches_naive() {
        for w in [1usize, 2, 3, 5, 9, 17, 40] {
            let v: Vec<f32> = (0..w).map(|i| ((i * 37 + 11) % 23) as f32).collect();
            for k in 0..7 {
                let (mut out, mut a, mut b) = (vec![0f32; w], vec![0f32; w], vec![0f32; w]);
                window_extremum::<false>(&v, k, &mut out, &mut a, &mut b);
                let mut out_max = vec![0f32; w];
                window_extremum::<true>(&v, k, &mut out_max, &mut a, &mut b);
                for x in 0..w {
                    let win = &v[x.saturating_sub(k)..(x + k + 1).min(w)];
                    let mn = win.iter().copied().fold(f32::MAX, f32::min);
                    let mx = win.iter().copied().fold(f32::MIN, f32::max);
                    assert_eq!((out[x], out_max[x]), (mn, mx), "w={w} k={k} x={x}");
                }
            }
        }
    }

    #[test]
    fn vertical_streak_kept_horizontal_line_rejected() {
        let (w, h) = (40, 40);
        let mut img = PlanarRgb::zeros(w, h);
        let lf = PlanarRgb::zeros(w, h);
        for p in &mut img.planes {
            for y in 0..h {
                p.data[y * w + 10] = 0.3; // vertical streak
            }
            for x in 0..w {
                p.data[30 * w + x] = 0.3; // horizontal line
            }
        }
        let s = observed_streaks(&img, &lf, 4, 1.0);
        assert!(s.at(10, 15) > 0.25, "streak {}", s.at(10, 15));
        assert!(s.at(25, 30) < 0.01, "line {}", s.at(25, 30));
    }

    #[test]
    fn chromatic_detail_is_not_a_streak() {
        let (w, h) = (20, 20);
        let mut img = PlanarRgb::zeros(w, h);
        for y in 0..h {
            img.planes[0].data[y * w + 5] = 0.5; // red vertical line
        }
        let s = observed_streaks(&img, &PlanarRgb::zeros(w, h), 3, 1.0);
        assert!(s.data.iter().all(|&v| v == 0.0));
    }
}
