//! Row tools of the streak estimate (used by the passes in `physics/mod.rs`).
//!
//! A streak candidate must pass three tests:
//! 1. achromatic and bright against the low-frequency layer: `min_c (I_c − LF_c) > 0`
//!    (rain adds the same amount to R, G and B; chromatic texture mostly fails);
//! 2. narrow in x: it stands out of the horizontal opening (min then max over x ± k) of
//!    `min(R,G,B)` — a near-vertical streak hides the background on its row
//!    (`narrow_bright_row`);
//! 3. elongated along y: weight `clamp(2·(V − H) / (V + 1e-4), 0, 1)` with V, H the 1-D means of
//!    the candidates along y and along x over ±L pixels: ≈1 for thin vertical streaks, 0 for
//!    blobs, horizontal edges and wide structures.

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
}
