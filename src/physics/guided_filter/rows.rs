//! The strip/ring engine of the f64 path: vertical running sums of the statistics and the
//! coefficients over a row strip, the row passes that turn them into window means, a, b and
//! the output (fused AVX2 kernels where they exist, scalar spans elsewhere).

use super::*;

/// Window means along x of up to 4 column-sum rows at once: `out[k][x] = Σ_{|i−x|≤r} src[k][i]
/// · inv[x]` (`inv` = 1/window size, per column, for this row). The sources are f64 sums of f32
/// samples and the window sum is an f64 running sum, so its rounding (≈ 1e-16 relative per
/// step) stays far below f32 resolution over any row length. The interior, where one element
/// enters and one leaves, runs four columns per step on AVX2 (an in-register prefix sum of the
/// differences); the borders and other targets use the scalar loop.
pub(super) fn hmeans<const N: usize>(
    src: [&[f64]; N],
    out: [&mut [f64]; N],
    r: usize,
    inv: &[f64],
) {
    let w = inv.len();
    let s: [&[f64]; N] = src.map(|s| &s[..w]);
    let mut o: [&mut [f64]; N] = out.map(|o| &mut o[..w]);
    let mut acc = [0f64; N];
    // Window of x = 0 without its last element: [0, r).
    for k in 0..N {
        acc[k] = s[k][..r.min(w)].iter().sum();
    }
    // Head: x ≤ r, the window only grows.
    let (head, end) = interior(w, r);
    for x in 0..head {
        for k in 0..N {
            if x + r < w {
                acc[k] += s[k][x + r];
            }
            o[k][x] = acc[k] * inv[x];
        }
    }
    // Interior: one element enters, one leaves.
    if end > head {
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        let start = simd::window_scan(&s, &mut o, r, inv, head, end, &mut acc);
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        let start = head;
        for x in start..end {
            for k in 0..N {
                acc[k] += s[k][x + r] - s[k][x - r - 1];
                o[k][x] = acc[k] * inv[x];
            }
        }
    }
    // Tail: the window only shrinks.
    for x in end..w {
        for k in 0..N {
            acc[k] -= s[k][x - r - 1];
            o[k][x] = acc[k] * inv[x];
        }
    }
}

/// [`hmeans`] over any number of rows, four at a time; `inv` is 1/window size per column.
pub(super) fn hmeans_rows(src: &[Vec<f64>], out: &mut [Vec<f64>], r: usize, inv: &[f64]) {
    for (s4, o4) in src.chunks(4).zip(out.chunks_mut(4)) {
        match (s4, o4) {
            ([a, b, c, d], [oa, ob, oc, od]) => hmeans([a, b, c, d], [oa, ob, oc, od], r, inv),
            ([a, b, c], [oa, ob, oc]) => hmeans([a, b, c], [oa, ob, oc], r, inv),
            ([a, b], [oa, ob]) => hmeans([a, b], [oa, ob], r, inv),
            ([a], [oa]) => hmeans([a], [oa], r, inv),
            _ => unreachable!("chunks of equal length"),
        }
    }
}

/// One vertical step of a pair of column sums, both rows in one loop:
/// `acc0 += b_in − b_out`, `acc1 += a_in·b_in − a_out·b_out` (f32 samples, f64 sums). `ADD`
/// and `SUB` say which of the two rows take part (the other slices are then ignored).
#[inline(always)]
pub(super) fn vstep_pair<const ADD: bool, const SUB: bool>(
    acc0: &mut [f64],
    acc1: &mut [f64],
    (a_in, b_in): (&[f32], &[f32]),
    (a_out, b_out): (&[f32], &[f32]),
) {
    let n = acc0.len();
    let (acc1, a_in, b_in, a_out, b_out) = (
        &mut acc1[..n],
        &a_in[..n],
        &b_in[..n],
        &a_out[..n],
        &b_out[..n],
    );
    for x in 0..n {
        let (mut d0, mut d1) = (0f64, 0f64);
        if ADD {
            let (a, b) = (a_in[x] as f64, b_in[x] as f64);
            d0 += b;
            d1 += a * b;
        }
        if SUB {
            let (a, b) = (a_out[x] as f64, b_out[x] as f64);
            d0 -= b;
            d1 -= a * b;
        }
        acc0[x] += d0;
        acc1[x] += d1;
    }
}

/// One vertical step of a column sum: `acc += row_in − row_out` (f32 → f64).
#[inline(always)]
pub(super) fn vstep<const ADD: bool, const SUB: bool>(
    acc: &mut [f64],
    row_in: &[f32],
    row_out: &[f32],
) {
    let n = acc.len();
    let (row_in, row_out) = (&row_in[..n], &row_out[..n]);
    for x in 0..n {
        let mut d = 0f64;
        if ADD {
            d += row_in[x] as f64;
        }
        if SUB {
            d -= row_out[x] as f64;
        }
        acc[x] += d;
    }
}

/// The rows of a vertical window `[lo, hi)` centred on a row, moved one row at a time (shared
/// by the f64 path's [`ColumnSums`] and the integer path).
pub(super) struct Window {
    h: usize,
    r: usize,
    lo: usize,
    hi: usize,
}

impl Window {
    pub(super) fn new(h: usize, r: usize, start: usize) -> Self {
        Self {
            h,
            r,
            lo: start,
            hi: start,
        }
    }

    /// The next (entering, leaving) rows on the way to the window centred on `yc`, or `None`
    /// once it is there; in the steady state one row enters and one leaves in the same step.
    pub(super) fn step(&mut self, yc: usize) -> Option<(Option<usize>, Option<usize>)> {
        let enter = (self.hi < (yc + self.r + 1).min(self.h)).then_some(self.hi);
        let leave = (self.lo < yc.saturating_sub(self.r)).then_some(self.lo);
        self.hi += enter.is_some() as usize;
        self.lo += leave.is_some() as usize;
        (enter.is_some() || leave.is_some()).then_some((enter, leave))
    }

    /// The number of rows in the window.
    pub(super) fn rows(&self) -> usize {
        self.hi - self.lo
    }

    /// 1 / the number of rows in the window.
    pub(super) fn inv_n(&self) -> f64 {
        1.0 / self.rows() as f64
    }
}

/// Vertical running sums over the rows of a window: `acc[k]` holds, per column, the sum of
/// quantity k over the window's rows. Rows enter and leave through a callback, so a quantity
/// that can be recomputed from the inputs (the guide statistics) needs no stored history.
pub(super) struct ColumnSums {
    win: Window,
    pub(super) acc: Vec<Vec<f64>>,
}

impl ColumnSums {
    pub(super) fn new(w: usize, h: usize, r: usize, q: usize, start: usize) -> Self {
        Self {
            win: Window::new(h, r, start),
            acc: vec![vec![0.0; w]; q],
        }
    }

    /// Moves the window to centre row `yc`. Each call `f(entering, leaving, acc)` adds the
    /// entering row and subtracts the leaving one (exactly what was added), either may be
    /// absent.
    pub(super) fn advance(
        &mut self,
        yc: usize,
        mut f: impl FnMut(Option<usize>, Option<usize>, &mut [Vec<f64>]),
    ) {
        while let Some((enter, leave)) = self.win.step(yc) {
            f(enter, leave, &mut self.acc);
        }
    }

    pub(super) fn inv_ny(&self) -> f64 {
        self.win.inv_n()
    }
}

/// Calls `step::<ADD, SUB>(entering or leaving row, leaving or entering row)` with the
/// compile-time flags matching which rows are present.
macro_rules! dispatch_step {
    ($enter:expr, $leave:expr, $step:ident ( $($arg:expr),* )) => {
        match ($enter, $leave) {
            (Some(i), Some(o)) => $step::<true, true>($($arg,)* i, o),
            (Some(i), None) => $step::<true, false>($($arg,)* i, i),
            (None, Some(o)) => $step::<false, true>($($arg,)* o, o),
            (None, None) => {}
        }
    };
}

/// Adds the guide statistics of row `yi` and subtracts those of row `yo`: I, I², and per
/// input p, p and I·p.
pub(super) fn stats_step<const ADD: bool, const SUB: bool>(
    guide: &Plane,
    inputs: &[&Plane],
    acc: &mut [Vec<f64>],
    yi: usize,
    yo: usize,
) {
    let (gi, go) = (guide.row(yi), guide.row(yo));
    let [a0, a1, rest @ ..] = acc else {
        unreachable!("≥ 4 quantities")
    };
    vstep_pair::<ADD, SUB>(a0, a1, (gi, gi), (go, go));
    for (c, p) in inputs.iter().enumerate() {
        let [ap, agp] = rest.get_disjoint_mut([2 * c, 2 * c + 1]).expect("distinct");
        vstep_pair::<ADD, SUB>(ap, agp, (gi, p.row(yi)), (go, p.row(yo)));
    }
}

/// Adds ring slot `si` and subtracts ring slot `so` (each `acc.len()` coefficient rows).
pub(super) fn ring_step<const ADD: bool, const SUB: bool>(
    ring: &[Vec<f32>],
    acc: &mut [Vec<f64>],
    si: usize,
    so: usize,
) {
    let nq = acc.len();
    for (k, acc) in acc.iter_mut().enumerate() {
        vstep::<ADD, SUB>(acc, &ring[si * nq + k], &ring[so * nq + k]);
    }
}

pub(super) fn inv_counts(w: usize, r: usize) -> Vec<f64> {
    (0..w).map(|x| 1.0 / window_count(x, w, r) as f64).collect()
}

/// The number of in-image columns (or rows, with `w` the height) of the radius-`r` window
/// centred on `x`.
pub(super) fn window_count(x: usize, w: usize, r: usize) -> usize {
    (x + r).min(w - 1) + 1 - x.saturating_sub(r)
}

/// Where [`guided_strip`] puts each output row; the row chunks start at the strip's first row.
pub(super) enum Sink<'o, 'a> {
    /// q = mean(a)·I + mean(b): `outs[e·nc + c]`.
    Filter(&'o mut [&'a mut [f32]]),
    /// The coefficient window means: `outs[2·(e·nc + c)]` = mean(a), `[.. + 1]` = mean(b).
    Means(&'o mut [&'a mut [f32]]),
}

/// Whether the fused AVX2 kernels exist in this build (they need `target-cpu` with AVX2, which
/// `.cargo/config.toml` sets for x86-64).
pub(super) const FUSED: bool = cfg!(all(target_arch = "x86_64", target_feature = "avx2"));

/// The running sums a row scan starts from: Σ src[k][..r] (the window of column −1).
pub(super) fn scan_start(src: &[Vec<f64>], r: usize, w: usize) -> Vec<f64> {
    src.iter().map(|s| s[..r.min(w)].iter().sum()).collect()
}

/// Scalar window means of columns `[from, to)` for every row of `src`, continuing the running
/// sums `acc[k]` (the window sum of column `from − 1`). Used on the borders of the fused
/// kernels' spans, where windows grow or shrink.
pub(super) fn hmeans_span(
    src: &[Vec<f64>],
    out: &mut [Vec<f64>],
    acc: &mut [f64],
    r: usize,
    inv: &[f64],
    (from, to): (usize, usize),
) {
    let w = inv.len();
    for ((s, o), a) in src.iter().zip(out.iter_mut()).zip(acc.iter_mut()) {
        let (s, o) = (&s[..w], &mut o[..w]);
        for x in from..to {
            if x + r < w {
                *a += s[x + r];
            }
            if x > r {
                *a -= s[x - r - 1];
            }
            o[x] = *a * inv[x];
        }
    }
}

/// a = cov/(var+eps), b = mean(p) − a·mean(I) for columns `xs`, from the statistics' window
/// means (I, I², then p and I·p per channel); `ring[2·(e·nc + c)]` = a, `[.. + 1]` = b. The
/// fused kernel does exactly this arithmetic.
pub(super) fn coefficients_span(
    mean: &[Vec<f64>],
    eps: &[f32],
    ring: &mut [Vec<f32>],
    xs: std::ops::Range<usize>,
) {
    let nc = (mean.len() - 2) / 2;
    for x in xs {
        let mi = mean[0][x];
        // Cancellation happens here, in f64.
        let var = (mean[1][x] - mi * mi).max(0.0);
        for (e, &eps) in eps.iter().enumerate() {
            let inv_den = 1.0 / (var + eps as f64);
            for c in 0..nc {
                let mp = mean[2 + 2 * c][x];
                let a = (mean[3 + 2 * c][x] - mi * mp) * inv_den;
                let k = 2 * (e * nc + c);
                ring[k][x] = a as f32;
                ring[k + 1][x] = (mp - a * mi) as f32;
            }
        }
    }
}

/// q = mean(a)·I + mean(b) for columns `xs` of output row chunks at offset `off`; the fused
/// kernel does exactly this arithmetic.
pub(super) fn apply_span(
    mean: &[Vec<f64>],
    g: &[f32],
    outs: &mut [&mut [f32]],
    off: usize,
    xs: std::ops::Range<usize>,
) {
    for (p, out) in outs.iter_mut().enumerate() {
        let (ma, mb) = (&mean[2 * p], &mean[2 * p + 1]);
        let out = &mut out[off..];
        for x in xs.clone() {
            out[x] = ma[x].mul_add(g[x] as f64, mb[x]) as f32;
        }
    }
}

/// Whether this build has the fused statistics → coefficients kernel for `nc` inputs and `ne`
/// eps (the counts it is instantiated for).
pub(super) fn fusable(nc: usize, ne: usize) -> bool {
    FUSED && (1..=3).contains(&nc) && (1..=2).contains(&ne)
}

/// The fused statistics → coefficients kernel over `span` (only called when [`fusable`]);
/// returns the first column not done.
#[allow(unused_variables)]
pub(super) fn fused_stats_coefs(
    stats: &[Vec<f64>],
    r: usize,
    inv: &[f64],
    eps: &[f32],
    span: (usize, usize),
    acc: &mut [f64],
    ring: &mut [Vec<f32>],
) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        use simd::stats_coefs as k;
        let (s, i, e) = (stats, inv, eps);
        return match ((s.len() - 2) / 2, e.len()) {
            (1, 1) => k::<1, 1>(s, r, i, e, span, acc, ring),
            (1, 2) => k::<1, 2>(s, r, i, e, span, acc, ring),
            (2, 1) => k::<2, 1>(s, r, i, e, span, acc, ring),
            (2, 2) => k::<2, 2>(s, r, i, e, span, acc, ring),
            (3, 1) => k::<3, 1>(s, r, i, e, span, acc, ring),
            (3, 2) => k::<3, 2>(s, r, i, e, span, acc, ring),
            _ => unreachable!("fusable() admits 1..=3 inputs and 1..=2 eps"),
        };
    }
    #[allow(unreachable_code)]
    {
        unreachable!("fusable() is false without AVX2")
    }
}

/// Columns where a row pass has whole windows: `[head, end)`, head = r + 1 (the first column
/// whose window has lost a column on the left), end = w − r (the first that reaches the right
/// border); empty on planes narrower than 2r + 2.
pub(super) fn interior(w: usize, r: usize) -> (usize, usize) {
    let head = (r + 1).min(w);
    (head, w.saturating_sub(r).max(head))
}

/// One coefficient row (a, b per eps and channel, into `ring`) from the statistics' column
/// sums: window means, var, cov, a, b.
pub(super) fn coefficient_rows(
    stats: &[Vec<f64>],
    mean: &mut [Vec<f64>],
    r: usize,
    inv: &[f64],
    eps: &[f32],
    ring: &mut [Vec<f32>],
) {
    let w = inv.len();
    if !fusable((stats.len() - 2) / 2, eps.len()) {
        hmeans_rows(stats, mean, r, inv);
        coefficients_span(mean, eps, ring, 0..w);
        return;
    }
    let (head, end) = interior(w, r);
    let mut acc = scan_start(stats, r, w);
    hmeans_span(stats, mean, &mut acc, r, inv, (0, head));
    let done = fused_stats_coefs(stats, r, inv, eps, (head, end), &mut acc, ring);
    hmeans_span(stats, mean, &mut acc, r, inv, (done, w));
    coefficients_span(mean, eps, ring, 0..head);
    coefficients_span(mean, eps, ring, done..w);
}

/// Output row `off / w` of every (eps, channel) from the coefficients' column sums.
pub(super) fn filter_rows(
    coef: &[Vec<f64>],
    mean: &mut [Vec<f64>],
    r: usize,
    inv: &[f64],
    g: &[f32],
    outs: &mut [&mut [f32]],
    off: usize,
) {
    let w = inv.len();
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        let (head, end) = interior(w, r);
        let mut acc = scan_start(coef, r, w);
        hmeans_span(coef, mean, &mut acc, r, inv, (0, head));
        let mut done = head;
        let mut p = 0;
        while p < outs.len() {
            let n = (outs.len() - p).min(2);
            let (s, a) = (&coef[2 * p..2 * (p + n)], &mut acc[2 * p..2 * (p + n)]);
            let o = (&mut outs[p..p + n], off);
            done = if n == 2 {
                simd::apply_pairs::<2>(s, g, r, inv, (head, end), a, o)
            } else {
                simd::apply_pairs::<1>(s, g, r, inv, (head, end), a, o)
            };
            p += n;
        }
        hmeans_span(coef, mean, &mut acc, r, inv, (done, w));
        apply_span(mean, g, outs, off, 0..head);
        apply_span(mean, g, outs, off, done..w);
        return;
    }
    #[allow(unreachable_code)]
    {
        hmeans_rows(coef, mean, r, inv);
        apply_span(mean, g, outs, off, 0..w);
    }
}

thread_local! {
    /// [`guided_strip`]'s coefficient ring, reused by the next call on this thread.
    static RING: std::cell::Cell<Vec<Vec<f32>>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs the guided filter on output rows `[y0, y1)` into `sink`.
///
/// Per row: the statistics' column sums move down one row (add the entering row, subtract the
/// leaving one, both recomputed from the inputs, in one pass); their window means, var, cov
/// and the coefficients a, b come out of one fused pass along the row and are stored in a ring
/// of 2r+2 rows (so the same values can be subtracted when the row leaves); the coefficient
/// column sums move down the same way and a second fused pass along the row makes the output.
pub(super) fn guided_strip(
    guide: &Plane,
    inputs: &[&Plane],
    r: usize,
    eps: &[f32],
    (y0, y1): (usize, usize),
    mut sink: Sink<'_, '_>,
) {
    let (w, h) = (guide.width, guide.height);
    let nc = inputs.len();
    let nq_stats = 2 + 2 * nc;
    let nq_coef = 2 * nc * eps.len();
    let inv_nx = inv_counts(w, r);
    let coef_start = y0.saturating_sub(r);
    let mut stats = ColumnSums::new(w, h, r, nq_stats, coef_start.saturating_sub(r));
    let mut coefs = ColumnSums::new(w, h, r, nq_coef, coef_start);
    let ring_len = (2 * r + 2).min(h + 1);
    // The ring (megabytes at large radii) is kept per thread across calls: every slot is
    // written before it is read, and fresh pages would cost more than the filtering.
    let mut ring = RING.take();
    ring.resize_with(ring_len * nq_coef, Vec::new);
    for row in &mut ring {
        row.resize(w, 0.0);
    }
    let mut mean = vec![vec![0f64; w]; nq_stats];
    let mut coef_mean = vec![vec![0f64; w]; nq_coef];
    let mut inv_row = vec![0f64; w];

    for y in y0..y1 {
        coefs.advance(y, |enter, leave, acc| {
            if let Some(yc) = enter {
                // Coefficient row yc from the statistics window centred on it.
                stats.advance(yc, |si, so, sacc| {
                    dispatch_step!(si, so, stats_step(guide, inputs, sacc))
                });
                fill_inv(&mut inv_row, &inv_nx, stats.inv_ny());
                let slot = (yc % ring_len) * nq_coef;
                let rows = &mut ring[slot..slot + nq_coef];
                coefficient_rows(&stats.acc, &mut mean, r, &inv_row, eps, rows);
            }
            let slot = |y: Option<usize>| y.map(|y| y % ring_len);
            dispatch_step!(slot(enter), slot(leave), ring_step(&ring, acc));
        });
        fill_inv(&mut inv_row, &inv_nx, coefs.inv_ny());
        let off = (y - y0) * w;
        match &mut sink {
            Sink::Filter(outs) => filter_rows(
                &coefs.acc,
                &mut coef_mean,
                r,
                &inv_row,
                guide.row(y),
                outs,
                off,
            ),
            Sink::Means(outs) => {
                hmeans_rows(&coefs.acc, &mut coef_mean, r, &inv_row);
                for (o, m) in outs.iter_mut().zip(&coef_mean) {
                    for (o, &m) in o[off..off + w].iter_mut().zip(m) {
                        *o = m as f32;
                    }
                }
            }
        }
    }
    RING.set(ring);
}

/// `inv[x] = inv_nx[x] · inv_ny`: 1 / window size per column of one row.
pub(super) fn fill_inv(inv: &mut [f64], inv_nx: &[f64], inv_ny: f64) {
    for (i, &n) in inv.iter_mut().zip(inv_nx) {
        *i = n * inv_ny;
    }
}
