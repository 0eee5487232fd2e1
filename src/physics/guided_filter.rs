//! Box filter and guided filter (He, Sun & Tang, O(1) box-filter form), CPU reference.
//!
//! # Border policy
//! Every box mean is the mean over the **in-image part** of the (2r+1)×(2r+1) window, i.e. the
//! window sum divided by N = box(1) (He et al.; the same in the CUDA kernels and in training/).
//! No padding, clamping or mirroring of pixels.
//!
//! # Filter
//! With guide I (one channel) and input p (one or more channels), per window ω_k:
//! ```text
//!   a_k = cov_k(I, p) / (var_k(I) + eps)        b_k = mean_k(p) − a_k·mean_k(I)
//!   q   = mean(a)·I + mean(b)                    (means over the windows covering the pixel)
//! ```
//!
//! # How it is fast
//! - One streaming pass per row strip: statistics rows (I, I², p_c, I·p_c) are box-summed
//!   horizontally (prefix sums in f64, several quantities per loop for ILP) into a ring buffer
//!   of 2r+2 rows, and a vertical running sum in f64 keeps the window total; coefficient rows
//!   are made as soon as their window is complete and go through the same machinery. Nothing
//!   the size of the frame is materialised except the outputs.
//! - The guide statistics (mean I, var I and 1/(var+eps)) are shared across channels and eps.
//! - Row strips (with a 2r halo) and, in the bank, radii run in parallel on rayon.
//!
//! # Accuracy
//! Window sums come from f64 prefix sums of f32 samples and f64 running sums of exactly the
//! f32 row sums that are later subtracted, so nothing drifts along a row or down the frame.
//! Against an f64 reference the output is within 1e-4 on [0,1] data for every radius tested
//! (the test suite checks radii 1..=16 exhaustively on small and odd sizes, and 32).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};

/// Radii of the paper's decomposition bank.
pub const BANK_RADII: [usize; 5] = [2, 4, 8, 16, 32];
/// eps values of the paper's decomposition bank (intensity² on [0,1]).
pub const BANK_EPS: [f32; 2] = [1e-3, 1e-4];

/// Window means along x of up to 4 column-sum rows at once: `out[k][x] = Σ_{|i−x|≤r} src[k][i]
/// · inv_nx[x] · inv_ny`, as an f64 running window sum (N add chains in flight). The sources
/// are f64 sums of f32 samples, so the rounding of the running sum (≈ 1e-16 relative per step)
/// stays far below f32 resolution over any row length.
fn hmeans<const N: usize>(
    src: [&[f64]; N],
    out: [&mut [f64]; N],
    r: usize,
    inv_nx: &[f64],
    inv_ny: f64,
) {
    let w = inv_nx.len();
    let s: [&[f64]; N] = src.map(|s| &s[..w]);
    let o: [&mut [f64]; N] = out.map(|o| &mut o[..w]);
    let mut acc = [0f64; N];
    // Window of x = 0 without its last element: [0, r).
    for k in 0..N {
        acc[k] = s[k][..r.min(w)].iter().sum();
    }
    // Head: x ≤ r, the window only grows.
    let head = (r + 1).min(w);
    for x in 0..head {
        for k in 0..N {
            if x + r < w {
                acc[k] += s[k][x + r];
            }
            o[k][x] = acc[k] * inv_nx[x] * inv_ny;
        }
    }
    // Interior: one element enters, one leaves.
    if w > r + 1 + r {
        for x in head..w - r {
            for k in 0..N {
                acc[k] += s[k][x + r] - s[k][x - r - 1];
                o[k][x] = acc[k] * inv_nx[x] * inv_ny;
            }
        }
    }
    // Tail: the window only shrinks.
    for x in head.max(w.saturating_sub(r))..w {
        for k in 0..N {
            acc[k] -= s[k][x - r - 1];
            o[k][x] = acc[k] * inv_nx[x] * inv_ny;
        }
    }
}

/// [`hmeans`] over any number of rows, four at a time.
fn hmeans_rows(src: &[Vec<f64>], out: &mut [Vec<f64>], r: usize, inv_nx: &[f64], inv_ny: f64) {
    for (s4, o4) in src.chunks(4).zip(out.chunks_mut(4)) {
        match (s4, o4) {
            ([a, b, c, d], [oa, ob, oc, od]) => {
                hmeans([a, b, c, d], [oa, ob, oc, od], r, inv_nx, inv_ny)
            }
            ([a, b, c], [oa, ob, oc]) => hmeans([a, b, c], [oa, ob, oc], r, inv_nx, inv_ny),
            ([a, b], [oa, ob]) => hmeans([a, b], [oa, ob], r, inv_nx, inv_ny),
            ([a], [oa]) => hmeans([a], [oa], r, inv_nx, inv_ny),
            _ => unreachable!("chunks of equal length"),
        }
    }
}

/// `acc (+|−)= src` (f32 → f64); `SUB` picks the sign at compile time.
#[inline(always)]
fn accumulate<const SUB: bool>(acc: &mut [f64], src: &[f32]) {
    let n = acc.len();
    let src = &src[..n];
    for x in 0..n {
        if SUB {
            acc[x] -= src[x] as f64;
        } else {
            acc[x] += src[x] as f64;
        }
    }
}

/// `acc (+|−)= a·b` (f32 → f64).
#[inline(always)]
fn accumulate_product<const SUB: bool>(acc: &mut [f64], a: &[f32], b: &[f32]) {
    let n = acc.len();
    let (a, b) = (&a[..n], &b[..n]);
    for x in 0..n {
        let v = a[x] as f64 * b[x] as f64;
        if SUB {
            acc[x] -= v;
        } else {
            acc[x] += v;
        }
    }
}

/// Vertical running sums over the rows of a window: `acc[k]` holds, per column, the sum of
/// quantity k over rows `[lo, hi)`. Rows enter and leave through callbacks, so a quantity
/// that can be recomputed from the inputs (the guide statistics) needs no stored history.
struct ColumnSums {
    h: usize,
    r: usize,
    acc: Vec<Vec<f64>>,
    lo: usize,
    hi: usize,
}

impl ColumnSums {
    fn new(w: usize, h: usize, r: usize, q: usize, start: usize) -> Self {
        Self {
            h,
            r,
            acc: vec![vec![0.0; w]; q],
            lo: start,
            hi: start,
        }
    }

    /// Moves the window to centre row `yc`: `f(y, true, acc)` adds row y, `f(y, false, acc)`
    /// subtracts it (exactly what was added).
    fn advance(&mut self, yc: usize, mut f: impl FnMut(usize, bool, &mut [Vec<f64>])) {
        let want_hi = (yc + self.r + 1).min(self.h);
        while self.hi < want_hi {
            f(self.hi, true, &mut self.acc);
            self.hi += 1;
        }
        let want_lo = yc.saturating_sub(self.r);
        while self.lo < want_lo {
            f(self.lo, false, &mut self.acc);
            self.lo += 1;
        }
    }

    fn inv_ny(&self) -> f64 {
        1.0 / (self.hi - self.lo) as f64
    }
}

/// Adds (or subtracts) the guide statistics of row y: I, I², and per input p, I·p.
fn stats_row<const SUB: bool>(guide: &Plane, inputs: &[&Plane], y: usize, acc: &mut [Vec<f64>]) {
    let g = guide.row(y);
    let [a0, a1, rest @ ..] = acc else {
        unreachable!("≥ 4 quantities")
    };
    accumulate::<SUB>(a0, g);
    accumulate_product::<SUB>(a1, g, g);
    for (c, p) in inputs.iter().enumerate() {
        let p = p.row(y);
        let [ap, agp] = rest.get_disjoint_mut([2 * c, 2 * c + 1]).expect("distinct");
        accumulate::<SUB>(ap, p);
        accumulate_product::<SUB>(agp, g, p);
    }
}

fn inv_counts(w: usize, r: usize) -> Vec<f64> {
    (0..w)
        .map(|x| 1.0 / ((x + r).min(w - 1) + 1 - x.saturating_sub(r)) as f64)
        .collect()
}

/// Runs the guided filter on output rows `[y0, y1)` and hands each row's window means of the
/// coefficients to `emit(y, rows)`, where `rows[2·(e·nc + c)]` is mean(a) and `[.. + 1]` is
/// mean(b) for eps `e` and channel `c`.
///
/// Per row: the statistics' column sums move down one row (add the entering row, subtract the
/// leaving one, both recomputed from the inputs), their window means come from f64 prefix sums
/// along the row, the coefficient row is computed and stored in a ring of 2r+2 rows (so the
/// same values can be subtracted when the row leaves), and the coefficient column sums go
/// through the same horizontal step.
fn guided_strip(
    guide: &Plane,
    inputs: &[&Plane],
    r: usize,
    eps: &[f32],
    y0: usize,
    y1: usize,
    mut emit: impl FnMut(usize, &[Vec<f32>]),
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
    let mut ring = vec![vec![0f32; w]; ring_len * nq_coef];
    let mut mean = vec![vec![0f64; w]; nq_stats.max(nq_coef)];
    let mut out_rows = vec![vec![0f32; w]; nq_coef];
    let mut var = vec![0f32; w];
    let mut inv = vec![0f32; w];

    for y in y0..y1 {
        coefs.advance(y, |yc, entering, acc| {
            if !entering {
                let slot = (yc % ring_len) * nq_coef;
                for (acc, row) in acc.iter_mut().zip(&ring[slot..slot + nq_coef]) {
                    accumulate::<true>(acc, row);
                }
                return;
            }
            {
                // Coefficient row yc from the statistics window centred on it.
                stats.advance(yc, |ys, entering, acc| {
                    if entering {
                        stats_row::<false>(guide, inputs, ys, acc)
                    } else {
                        stats_row::<true>(guide, inputs, ys, acc)
                    }
                });
                let inv_ny = stats.inv_ny();
                hmeans_rows(&stats.acc, &mut mean[..nq_stats], r, &inv_nx, inv_ny);
                let (mg, mgg) = (&mean[0], &mean[1]);
                // Cancellation happens here, in f64.
                for ((v, &m), &mm) in var.iter_mut().zip(&mg[..w]).zip(&mgg[..w]) {
                    *v = (mm - m * m).max(0.0) as f32;
                }
                let slot = (yc % ring_len) * nq_coef;
                for (e, &eps) in eps.iter().enumerate() {
                    for (iv, &v) in inv.iter_mut().zip(&var) {
                        *iv = 1.0 / (v + eps);
                    }
                    for c in 0..nc {
                        let k = 2 * (e * nc + c);
                        let [a, b] = ring
                            .get_disjoint_mut([slot + k, slot + k + 1])
                            .expect("distinct");
                        coefficients_row(mg, &mean[2 + 2 * c], &mean[3 + 2 * c], &inv, a, b);
                    }
                }
                for (acc, row) in acc.iter_mut().zip(&ring[slot..slot + nq_coef]) {
                    accumulate::<false>(acc, row);
                }
            }
        });
        hmeans_rows(&coefs.acc, &mut mean[..nq_coef], r, &inv_nx, coefs.inv_ny());
        for (o, m) in out_rows.iter_mut().zip(&mean) {
            for (o, &m) in o.iter_mut().zip(m.iter()) {
                *o = m as f32;
            }
        }
        emit(y, &out_rows);
    }
}

/// a = cov/(var+eps), b = mean(p) − a·mean(I) for one row.
#[inline(always)]
fn coefficients_row(
    mg: &[f64],
    mp: &[f64],
    mgp: &[f64],
    inv: &[f32],
    a: &mut [f32],
    b: &mut [f32],
) {
    let n = a.len();
    let (mg, mp, mgp, inv, b) = (&mg[..n], &mp[..n], &mgp[..n], &inv[..n], &mut b[..n]);
    for x in 0..n {
        let cov = (mgp[x] - mg[x] * mp[x]) as f32;
        let ax = cov * inv[x];
        a[x] = ax;
        b[x] = mp[x] as f32 - ax * mg[x] as f32;
    }
}

/// q = mean(a)·I + mean(b) for one row; all slices have equal length.
#[inline(always)]
fn apply_row(ma: &[f32], mb: &[f32], g: &[f32], out: &mut [f32]) {
    let n = out.len();
    let (ma, mb, g) = (&ma[..n], &mb[..n], &g[..n]);
    for x in 0..n {
        out[x] = ma[x].mul_add(g[x], mb[x]);
    }
}

/// Shape and range checks shared by every guided-filter entry point (and the CUDA ones).
pub(crate) fn check_inputs(guide: &Plane, inputs: &[&Plane], r: usize, eps: &[f32]) -> Result<()> {
    if guide.width == 0 || guide.height == 0 {
        return Err(Error::param("guide", "empty plane"));
    }
    if inputs.is_empty() || eps.is_empty() {
        return Err(Error::param(
            "guided filter",
            "needs at least one input and one eps",
        ));
    }
    for p in inputs {
        guide.ensure_same_dims(p, "guided filter guide vs input")?;
    }
    if r == 0 || r > 1024 {
        return Err(Error::param("radius", format!("{r} is outside 1..=1024")));
    }
    if let Some(e) = eps.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
        return Err(Error::param("eps", format!("{e} must be finite and > 0")));
    }
    Ok(())
}

/// Row strips `[y0, y1)` for parallel work at radius `r`: enough to keep the threads busy,
/// tall enough that the 2r halo is a small overhead.
fn strips(h: usize, r: usize, want: usize) -> Vec<(usize, usize)> {
    let min_h = (8 * r).max(32);
    let n = (h / min_h).clamp(1, want.max(1));
    let step = h.div_ceil(n);
    (0..n)
        .map(|i| (i * step, ((i + 1) * step).min(h)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// Splits each plane into the row ranges of `st` (consecutive, covering the plane): returns,
/// per strip, that strip's rows of every plane.
fn split_strips<'a>(
    planes: Vec<&'a mut Plane>,
    st: &[(usize, usize)],
    w: usize,
) -> Vec<Vec<&'a mut [f32]>> {
    let mut per: Vec<Vec<&mut [f32]>> = st.iter().map(|_| Vec::new()).collect();
    for plane in planes {
        let mut rest: &mut [f32] = &mut plane.data;
        for (i, &(a, b)) in st.iter().enumerate() {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut((b - a) * w);
            per[i].push(head);
            rest = tail;
        }
    }
    per
}

/// One filtering job: a radius, its eps list, and the output planes it writes
/// (`outs[e·nc + c]`).
struct Job<'a> {
    r: usize,
    eps: &'a [f32],
    outs: Vec<&'a mut Plane>,
}

/// (radius, eps, first row, end row, output row chunks) of one parallel task.
type Task<'a> = (usize, &'a [f32], usize, usize, Vec<&'a mut [f32]>);

/// Runs every job over row strips in parallel, writing q = mean(a)·I + mean(b).
fn run_jobs(guide: &Plane, inputs: &[&Plane], jobs: Vec<Job<'_>>) {
    let w = guide.width;
    let h = guide.height;
    let threads = rayon::current_num_threads();
    // Tasks: (radius, eps, strip rows, output row chunks).
    let mut tasks: Vec<Task<'_>> = Vec::new();
    for job in jobs {
        let st = strips(h, job.r, 2 * threads);
        let per = split_strips(job.outs, &st, w);
        for (&(a, b), outs) in st.iter().zip(per) {
            tasks.push((job.r, job.eps, a, b, outs));
        }
    }
    let nc = inputs.len();
    tasks
        .into_par_iter()
        .for_each(|(r, eps, y0, y1, mut outs)| {
            guided_strip(guide, inputs, r, eps, y0, y1, |y, rows| {
                let g = guide.row(y);
                let off = (y - y0) * w;
                for e in 0..eps.len() {
                    for c in 0..nc {
                        let k = e * nc + c;
                        let (ma, mb) = (&rows[2 * k], &rows[2 * k + 1]);
                        apply_row(&ma[..w], &mb[..w], &g[..w], &mut outs[k][off..off + w]);
                    }
                }
            });
        });
}

/// Guided filter of several input channels with one guide, for several eps at once (the guide
/// statistics are shared). Returns planes ordered `[e·inputs.len() + c]`.
pub fn guided_filter_multi(
    guide: &Plane,
    inputs: &[&Plane],
    radius_px: usize,
    eps: &[f32],
) -> Result<Vec<Plane>> {
    check_inputs(guide, inputs, radius_px, eps)?;
    let mut outs: Vec<Plane> = (0..inputs.len() * eps.len())
        .map(|_| Plane::zeros(guide.width, guide.height))
        .collect();
    run_jobs(
        guide,
        inputs,
        vec![Job {
            r: radius_px,
            eps,
            outs: outs.iter_mut().collect(),
        }],
    );
    Ok(outs)
}

/// Guided filter of one plane.
pub fn guided_filter(guide: &Plane, input: &Plane, radius_px: usize, eps: f32) -> Result<Plane> {
    Ok(guided_filter_multi(guide, &[input], radius_px, &[eps])?.remove(0))
}

/// Guided filter of an RGB image with a one-channel guide.
pub fn guided_filter_rgb(
    guide: &Plane,
    input: &PlanarRgb,
    radius_px: usize,
    eps: f32,
) -> Result<PlanarRgb> {
    let [r, g, b] = &input.planes;
    let mut v = guided_filter_multi(guide, &[r, g, b], radius_px, &[eps])?.into_iter();
    let planes = std::array::from_fn(|_| v.next().expect("three planes"));
    PlanarRgb::from_planes(planes)
}

/// The decomposition bank: every radius × every eps × every RGB channel, guided by `guide`.
/// Returns `radii.len() · eps.len() · 3` low-frequency planes ordered `[radius][eps][channel]`;
/// the high-frequency layer of plane k is `input − LF_k`.
pub fn guided_bank(
    guide: &Plane,
    input: &PlanarRgb,
    radii: &[usize],
    eps: &[f32],
) -> Result<Vec<Plane>> {
    let [r, g, b] = &input.planes;
    let inputs = [r, g, b];
    for &rad in radii {
        check_inputs(guide, &inputs, rad, eps)?;
    }
    let per_radius = 3 * eps.len();
    let mut outs: Vec<Plane> = (0..radii.len() * per_radius)
        .map(|_| Plane::zeros(guide.width, guide.height))
        .collect();
    let mut it = outs.iter_mut();
    let jobs = radii
        .iter()
        .map(|&rad| Job {
            r: rad,
            eps,
            outs: it.by_ref().take(per_radius).collect(),
        })
        .collect();
    run_jobs(guide, &inputs, jobs);
    Ok(outs)
}

/// Box mean with radius `r` (border policy above).
pub fn box_mean(src: &Plane, r: usize) -> Result<Plane> {
    if src.width == 0 || src.height == 0 {
        return Err(Error::param("box filter", "empty plane"));
    }
    let (w, h) = (src.width, src.height);
    let inv_nx = inv_counts(w, r);
    let mut out = Plane::zeros(w, h);
    let st = strips(h, r, 2 * rayon::current_num_threads());
    let per = split_strips(vec![&mut out], &st, w);
    st.into_par_iter().zip(per).for_each(|((y0, y1), mut dst)| {
        let dst = &mut *dst[0];
        let mut cols = ColumnSums::new(w, h, r, 1, y0.saturating_sub(r));
        let mut mean = vec![vec![0f64; w]];
        for y in y0..y1 {
            cols.advance(y, |yy, entering, acc| {
                if entering {
                    accumulate::<false>(&mut acc[0], src.row(yy))
                } else {
                    accumulate::<true>(&mut acc[0], src.row(yy))
                }
            });
            hmeans_rows(&cols.acc, &mut mean, r, &inv_nx, cols.inv_ny());
            for (o, &m) in dst[(y - y0) * w..(y - y0 + 1) * w].iter_mut().zip(&mean[0]) {
                *o = m as f32;
            }
        }
    });
    Ok(out)
}

/// Downsamples by an integer factor with box averaging (partial blocks at the right/bottom
/// edge average what they have).
pub fn downsample(src: &Plane, s: usize) -> Plane {
    let (w, h) = (src.width, src.height);
    let (lw, lh) = (w.div_ceil(s), h.div_ceil(s));
    let mut out = Plane::zeros(lw, lh);
    out.data.par_chunks_mut(lw).enumerate().for_each_init(
        || vec![0f32; w],
        |acc, (y, orow)| {
            let ys = y * s..((y + 1) * s).min(h);
            let ny = ys.len();
            acc.fill(0.0);
            for yy in ys {
                for (a, &v) in acc.iter_mut().zip(src.row(yy)) {
                    *a += v;
                }
            }
            reduce_row(acc, s, ny, orow);
        },
    );
    out
}

/// `out[x] = mean(acc[x·s .. (x+1)·s]) / ny` (partial last block averages what it has).
pub(crate) fn reduce_row(acc: &[f32], s: usize, ny: usize, out: &mut [f32]) {
    fn fixed<const S: usize>(acc: &[f32], scale: f32, out: &mut [f32]) {
        for (o, c) in out.iter_mut().zip(acc.chunks_exact(S)) {
            let c: &[f32; S] = c.try_into().expect("exact chunk");
            *o = c.iter().sum::<f32>() * scale;
        }
    }
    let w = acc.len();
    let full = w / s;
    let scale = 1.0 / (s * ny) as f32;
    match s {
        2 => fixed::<2>(acc, scale, out),
        3 => fixed::<3>(acc, scale, out),
        4 => fixed::<4>(acc, scale, out),
        5 => fixed::<5>(acc, scale, out),
        6 => fixed::<6>(acc, scale, out),
        _ => {
            for (o, c) in out.iter_mut().zip(acc.chunks_exact(s)) {
                *o = c.iter().sum::<f32>() * scale;
            }
        }
    }
    if full < out.len() {
        let rest = &acc[full * s..];
        out[full] = rest.iter().sum::<f32>() / (rest.len() * ny) as f32;
    }
}

/// Bilinear upsampling by an integer factor, row by row (sample centres aligned: low-res
/// sample i covers full-res pixels [i·s, (i+1)·s)).
#[derive(Debug, Clone)]
pub struct Upsampler {
    s: usize,
    lw: usize,
    lh: usize,
    xs: Vec<(u32, u32, f32)>,
}

impl Upsampler {
    /// For a `lw`×`lh` low-res plane upsampled by `s` to width `w`.
    pub fn new(lw: usize, lh: usize, s: usize, w: usize) -> Self {
        let xs = (0..w)
            .map(|x| {
                let (a, b, f) = Self::coord(x, s, lw);
                (a as u32, b as u32, f)
            })
            .collect();
        Self { s, lw, lh, xs }
    }
    fn coord(v: usize, s: usize, n: usize) -> (usize, usize, f32) {
        let f = ((v as f32 + 0.5) / s as f32 - 0.5).max(0.0);
        let i0 = (f.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, f - i0 as f32)
    }
    /// Full-resolution row `y` of `src` into `out` (len = full width); `tmp` has len ≥ lw.
    pub fn row(&self, src: &Plane, y: usize, tmp: &mut [f32], out: &mut [f32]) {
        self.rows([src], y, tmp, [out]);
    }

    /// Full-resolution row `y` of several low-res planes; `tmp` holds ≥ lw per plane.
    pub fn rows<const N: usize>(
        &self,
        src: [&Plane; N],
        y: usize,
        tmp: &mut [f32],
        out: [&mut [f32]; N],
    ) {
        let (y0, y1, fy) = Self::coord(y, self.s, self.lh);
        let lw = self.lw;
        for (k, (p, out)) in src.iter().zip(out).enumerate() {
            debug_assert_eq!((p.width, p.height), (self.lw, self.lh));
            let (r0, r1) = (p.row(y0), p.row(y1));
            let t = &mut tmp[k * lw..(k + 1) * lw];
            for ((t, &a), &b) in t.iter_mut().zip(r0).zip(r1) {
                *t = a + (b - a) * fy;
            }
            self.hlerp(t, out);
        }
    }

    /// Horizontal bilinear interpolation of one low-res row.
    fn hlerp(&self, t: &[f32], out: &mut [f32]) {
        match self.s {
            2 => self.hlerp_fixed::<2>(t, out),
            3 => self.hlerp_fixed::<3>(t, out),
            4 => self.hlerp_fixed::<4>(t, out),
            5 => self.hlerp_fixed::<5>(t, out),
            6 => self.hlerp_fixed::<6>(t, out),
            8 => self.hlerp_fixed::<8>(t, out),
            _ => self.hlerp_table(t, out, 0..out.len()),
        }
    }

    fn hlerp_table(&self, t: &[f32], out: &mut [f32], xs: std::ops::Range<usize>) {
        for x in xs {
            let (x0, x1, fx) = self.xs[x];
            let (a, b) = (t[x0 as usize], t[x1 as usize]);
            out[x] = a + (b - a) * fx;
        }
    }

    /// For an integer factor S the fractional positions repeat every S pixels: pixel
    /// i·S + j lies at low-res coordinate i + (j + 0.5)/S − 0.5. Interior blocks are
    /// straight-line code over three neighbouring samples; the borders use the table.
    fn hlerp_fixed<const S: usize>(&self, t: &[f32], out: &mut [f32]) {
        let w = out.len();
        let lw = t.len();
        if lw < 3 || w < 3 * S {
            return self.hlerp_table(t, out, 0..w);
        }
        // Offsets (into the window t[i-1..=i+1]) and fractions for each phase j.
        let mut off = [0usize; S];
        let mut frac = [0f32; S];
        for j in 0..S {
            let c = (j as f32 + 0.5) / S as f32 - 0.5;
            if c < 0.0 {
                off[j] = 0;
                frac[j] = 1.0 + c;
            } else {
                off[j] = 1;
                frac[j] = c;
            }
        }
        // Blocks i = 1 ..= last-1 cover pixels [S, last·S). Pixel i·S + j interpolates
        // between t[i−1] and t[i] (off 0) or t[i] and t[i+1] (off 1). Written as one indexed
        // loop over equal-length slices so the compiler vectorises it with interleaved stores.
        let last = (lw - 1).min(w / S);
        let n = last - 1;
        let (tm, tc, tp) = (&t[..n], &t[1..n + 1], &t[2..n + 2]);
        let o = &mut out[S..S + n * S];
        let lo: [f32; S] = std::array::from_fn(|j| if off[j] == 0 { 1.0 - frac[j] } else { 0.0 });
        let mid: [f32; S] =
            std::array::from_fn(|j| if off[j] == 0 { frac[j] } else { 1.0 - frac[j] });
        let hi: [f32; S] = std::array::from_fn(|j| if off[j] == 0 { 0.0 } else { frac[j] });
        for i in 0..n {
            let (a, b, c) = (tm[i], tc[i], tp[i]);
            for j in 0..S {
                o[i * S + j] = a * lo[j] + b * mid[j] + c * hi[j];
            }
        }
        self.hlerp_table(t, out, 0..S);
        self.hlerp_table(t, out, last * S..w);
    }
}

/// Bilinear upsampling of a plane made by [`downsample`] (factor `s`) back to `w`×`h`.
pub fn upsample(src: &Plane, s: usize, w: usize, h: usize) -> Plane {
    let mut out = Plane::zeros(w, h);
    let up = Upsampler::new(src.width, src.height, s, w);
    out.data.par_chunks_mut(w).enumerate().for_each_init(
        || vec![0f32; src.width],
        |tmp, (y, row)| up.row(src, y, tmp, row),
    );
    out
}

/// Window means of the guided-filter coefficients (mean a, mean b per eps and channel) of
/// `inputs` guided by `guide`, at the resolution of `guide`. Ordered
/// `[2·(e·nc + c)]` = mean(a), `[.. + 1]` = mean(b).
pub fn guided_coefficients(
    guide: &Plane,
    inputs: &[&Plane],
    radius_px: usize,
    eps: &[f32],
) -> Result<Vec<Plane>> {
    check_inputs(guide, inputs, radius_px, eps)?;
    let (w, h) = (guide.width, guide.height);
    let mut coefs: Vec<Plane> = (0..2 * inputs.len() * eps.len())
        .map(|_| Plane::zeros(w, h))
        .collect();
    let st = strips(h, radius_px, 2 * rayon::current_num_threads());
    let per = split_strips(coefs.iter_mut().collect(), &st, w);
    st.into_par_iter()
        .zip(per)
        .for_each(|((y0, y1), mut outs)| {
            guided_strip(guide, inputs, radius_px, eps, y0, y1, |y, rows| {
                let off = (y - y0) * w;
                for (o, row) in outs.iter_mut().zip(rows) {
                    o[off..off + w].copy_from_slice(row);
                }
            });
        });
    Ok(coefs)
}

/// Applies low-resolution coefficients (from [`guided_coefficients`] on a guide downsampled by
/// `s`) to the full-resolution `guide`: q = up(mean a)·I + up(mean b), bilinear upsampling.
/// This is the "fast guided filter" output step and also guided upsampling of a map that was
/// estimated at low resolution.
pub fn apply_coefficients(guide: &Plane, coefs: &[Plane], s: usize) -> Vec<Plane> {
    let (w, h) = (guide.width, guide.height);
    coefs
        .par_chunks(2)
        .map(|ab| {
            let (a, b) = (upsample(&ab[0], s, w, h), upsample(&ab[1], s, w, h));
            let data = guide
                .data
                .iter()
                .zip(&a.data)
                .zip(&b.data)
                .map(|((&g, &a), &b)| a.mul_add(g, b))
                .collect();
            Plane {
                width: w,
                height: h,
                data,
            }
        })
        .collect()
}

/// Fast guided filter (He & Sun 2015): coefficients computed at 1/`subsample` resolution with
/// radius `radius_px / subsample`, their window means upsampled bilinearly, then
/// q = A·I + B at full resolution. `subsample = 1` is the exact filter.
pub fn fast_guided_filter_multi(
    guide: &Plane,
    inputs: &[&Plane],
    radius_px: usize,
    eps: &[f32],
    subsample: usize,
) -> Result<Vec<Plane>> {
    check_inputs(guide, inputs, radius_px, eps)?;
    if subsample <= 1 {
        return guided_filter_multi(guide, inputs, radius_px, eps);
    }
    let s = subsample;
    let g_lo = downsample(guide, s);
    let p_lo: Vec<Plane> = inputs.par_iter().map(|p| downsample(p, s)).collect();
    let p_refs: Vec<&Plane> = p_lo.iter().collect();
    let coefs = guided_coefficients(&g_lo, &p_refs, (radius_px / s).max(1), eps)?;
    Ok(apply_coefficients(guide, &coefs, s))
}

#[cfg(test)]
pub(crate) mod reference {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic pseudo-random plane in [0,1] with some structure (edges + noise).
    pub(crate) fn test_plane(w: usize, h: usize, seed: u64) -> Plane {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let data = (0..w * h)
            .map(|k| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (s >> 40) as f32 / (1u64 << 24) as f32;
                let (x, y) = (k % w, k / w);
                let edge = if (x * 7 + y * 3) % 23 < 11 { 0.7 } else { 0.2 };
                (0.6 * edge + 0.4 * noise).clamp(0.0, 1.0)
            })
            .collect();
        Plane {
            width: w,
            height: h,
            data,
        }
    }

    fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn box_mean_matches_naive_sum() {
        for &(w, h) in &[(1, 1), (2, 3), (5, 4), (17, 9), (64, 33)] {
            for r in 1..=16 {
                let p = test_plane(w, h, (w * 100 + r) as u64);
                let got = box_mean(&p, r).unwrap();
                let src: Vec<f64> = p.data.iter().map(|&v| v as f64).collect();
                let want = reference::box_mean(&src, w, h, r);
                let d = max_abs_diff(&got.data, &want);
                assert!(d <= 1e-6, "{w}x{h} r={r}: max |Δ| = {d}");
            }
        }
    }

    #[test]
    fn guided_matches_reference_all_small_radii() {
        // 1×1, 2×3, widths below 2r+1 and odd widths, every radius 1..=16, both bank eps.
        let sizes = [(1, 1), (2, 3), (3, 2), (7, 5), (13, 11), (31, 17), (45, 40)];
        for &(w, h) in &sizes {
            for r in 1..=16 {
                for &eps in &BANK_EPS {
                    let g = test_plane(w, h, (w * 31 + h + r) as u64);
                    let p = test_plane(w, h, (w * 17 + h * 5 + r) as u64 + 99);
                    let got = guided_filter(&g, &p, r, eps).unwrap();
                    let want = reference::guided(&g, &p, r, eps as f64);
                    let d = max_abs_diff(&got.data, &want);
                    assert!(d <= 1e-4, "{w}x{h} r={r} eps={eps}: max |Δ| = {d}");
                }
            }
        }
    }

    #[test]
    fn guided_matches_reference_large_radius_and_strips() {
        // Tall enough to be split into strips; r=32 as in the bank.
        let (w, h) = (97, 301);
        for &r in &[8, 32] {
            let g = test_plane(w, h, 5);
            let p = test_plane(w, h, 6);
            let got = guided_filter(&g, &p, r, 1e-4).unwrap();
            let want = reference::guided(&g, &p, r, 1e-4);
            let d = max_abs_diff(&got.data, &want);
            assert!(d <= 1e-4, "r={r}: max |Δ| = {d}");
        }
    }

    #[test]
    fn bank_equals_individual_filters() {
        let (w, h) = (40, 70);
        let g = test_plane(w, h, 1);
        let img = PlanarRgb::from_planes([
            test_plane(w, h, 2),
            test_plane(w, h, 3),
            test_plane(w, h, 4),
        ])
        .unwrap();
        let radii = [2, 4, 8];
        let bank = guided_bank(&g, &img, &radii, &BANK_EPS).unwrap();
        assert_eq!(bank.len(), radii.len() * BANK_EPS.len() * 3);
        for (ri, &r) in radii.iter().enumerate() {
            for (ei, &eps) in BANK_EPS.iter().enumerate() {
                for c in 0..3 {
                    let single = guided_filter(&g, &img.planes[c], r, eps).unwrap();
                    let k = (ri * BANK_EPS.len() + ei) * 3 + c;
                    assert_eq!(bank[k].data, single.data, "r={r} eps={eps} c={c}");
                }
            }
        }
    }

    #[test]
    fn constant_input_is_preserved_and_flat_guide_gives_double_box_mean() {
        let g = Plane::filled(23, 9, 0.3);
        let p = Plane::filled(23, 9, 0.8);
        let q = guided_filter(&g, &p, 4, 1e-3).unwrap();
        assert!(q.data.iter().all(|&v| (v - 0.8).abs() < 1e-6));
        let p = test_plane(23, 9, 3);
        let q = guided_filter(&g, &p, 3, 1e-3).unwrap();
        // var(I) = 0 ⇒ a = 0, b = mean(p) ⇒ q = mean(mean(p)).
        let m = box_mean(&box_mean(&p, 3).unwrap(), 3).unwrap();
        let d = q
            .data
            .iter()
            .zip(&m.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "flat guide: {d}");
    }

    #[test]
    fn rejects_bad_parameters() {
        let g = Plane::filled(4, 4, 0.5);
        assert!(guided_filter(&g, &g, 0, 1e-3).is_err());
        assert!(guided_filter(&g, &g, 2, 0.0).is_err());
        assert!(guided_filter(&g, &g, 2, f32::NAN).is_err());
        assert!(guided_filter(&g, &Plane::filled(5, 4, 0.5), 2, 1e-3).is_err());
        assert!(guided_filter(&Plane::zeros(0, 0), &Plane::zeros(0, 0), 2, 1e-3).is_err());
    }

    #[test]
    fn fast_variant_is_close_on_smooth_content() {
        let (w, h) = (128, 96);
        let g = Plane {
            width: w,
            height: h,
            data: (0..w * h)
                .map(|k| (k % w) as f32 / w as f32 * 0.8 + 0.1)
                .collect(),
        };
        let p = test_plane(w, h, 9);
        let exact = guided_filter(&g, &p, 16, 1e-3).unwrap();
        let fast = fast_guided_filter_multi(&g, &[&p], 16, &[1e-3], 4)
            .unwrap()
            .remove(0);
        let mad: f32 = exact
            .data
            .iter()
            .zip(&fast.data)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / (w * h) as f32;
        assert!(mad < 0.02, "mean |Δ| {mad}");
    }

    #[test]
    fn upsampler_fast_path_matches_table() {
        for s in 1..=5 {
            for w in [1usize, 2, 5, 8, 13, 16, 31, 64, 67] {
                let lw = w.div_ceil(s);
                let lo = test_plane(lw, 3, (w * 7 + s) as u64);
                let up = Upsampler::new(lw, 3, s, w);
                let mut tmp = vec![0f32; lw];
                let mut fast = vec![0f32; w];
                up.row(&lo, 1, &mut tmp, &mut fast);
                let mut table = vec![0f32; w];
                up.hlerp_table(&tmp, &mut table, 0..w);
                for x in 0..w {
                    assert!(
                        (fast[x] - table[x]).abs() < 1e-6,
                        "s={s} w={w} x={x}: {} vs {}",
                        fast[x],
                        table[x]
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn guided_property_matches_reference(
            w in 1usize..40, h in 1usize..40, r in 1usize..12, seed in 0u64..1000,
            eps_i in 0usize..2,
        ) {
            let g = test_plane(w, h, seed);
            let p = test_plane(w, h, seed + 7);
            let eps = BANK_EPS[eps_i];
            let got = guided_filter(&g, &p, r, eps).unwrap();
            let want = reference::guided(&g, &p, r, eps as f64);
            let d = max_abs_diff(&got.data, &want);
            prop_assert!(d <= 1e-4, "{}x{} r={} eps={} seed={}: {}", w, h, r, eps, seed, d);
        }
    }
}
