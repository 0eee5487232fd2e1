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
//! - One streaming pass per row strip, nothing the size of the frame materialised except the
//!   outputs: the statistics (I, I², p_c, I·p_c) are kept as f64 column sums over the 2r+1
//!   rows of the window (one row enters and one leaves per step, in one pass); a row pass
//!   along x turns them into window means, var, cov and the coefficients a, b, which go into a
//!   ring of 2r+2 rows (so the same values can be subtracted when a row leaves); the
//!   coefficients' column sums move down the same way and a second row pass turns them into
//!   q = mean(a)·I + mean(b).
//! - On x86-64 with AVX2 (the project's `target-cpu`) the two row passes are fused kernels:
//!   the window sums along x are an in-register prefix sum of the differences
//!   s[x+r] − s[x−r−1], four columns per step, and the means feed the coefficient or output
//!   arithmetic without being stored. Elsewhere (and for more than 3 inputs or 2 eps) the same
//!   arithmetic runs as scalar running sums.
//! - The guide statistics (mean I, var I and 1/(var+eps)) are shared across channels and eps.
//! - The jobs' rows (one job per radius in the bank) are cut into 2 groups per thread of equal
//!   work; a radius is split into strips (each with a 2r halo) only where a group ends.
//! - `*_into` variants write into caller-owned planes; the coefficient ring is kept per thread.
//! - **8-bit data** (every sample of the guide and inputs a multiple of 1/255, as from a camera
//!   frame and its residue channel) takes an exact integer path on AVX2 builds (`q8`): i32
//!   statistics, fixed-point coefficients with a proven error bound (≤ 8.5e-5 for the paper's
//!   bank), eight columns per instruction. Other data, radii above 90 and eps too small for
//!   the bound take the f64 path below.

//! # Accuracy
//! Window sums come from f64 prefix sums of f32 samples and f64 running sums of exactly the
//! f32 row sums that are later subtracted, so nothing drifts along a row or down the frame.
//! Against an f64 reference the output is within 1e-4 on [0,1] data for every radius tested
//! (the test suite checks radii 1..=16 exhaustively on small and odd sizes, and 32).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};

#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
mod q8;

/// Radii of the paper's decomposition bank.
pub const BANK_RADII: [usize; 5] = [2, 4, 8, 16, 32];
/// eps values of the paper's decomposition bank (intensity² on [0,1]).
pub const BANK_EPS: [f32; 2] = [1e-3, 1e-4];

/// Window means along x of up to 4 column-sum rows at once: `out[k][x] = Σ_{|i−x|≤r} src[k][i]
/// · inv[x]` (`inv` = 1/window size, per column, for this row). The sources are f64 sums of f32
/// samples and the window sum is an f64 running sum, so its rounding (≈ 1e-16 relative per
/// step) stays far below f32 resolution over any row length. The interior, where one element
/// enters and one leaves, runs four columns per step on AVX2 (an in-register prefix sum of the
/// differences); the borders and other targets use the scalar loop.
fn hmeans<const N: usize>(src: [&[f64]; N], out: [&mut [f64]; N], r: usize, inv: &[f64]) {
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

#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
mod simd {
    use std::arch::x86_64::*;

    /// The interior of [`super::hmeans`] for x in `[x0, x1)`, four columns per step: the
    /// differences d[x] = s[x+r] − s[x−r−1] are prefix-summed inside the register and added to
    /// the running sum carried from the previous step. Returns the first column not done
    /// (≤ 3 are left to the scalar loop); `acc` is the running sum there.
    #[inline]
    pub(super) fn window_scan<const N: usize>(
        s: &[&[f64]; N],
        o: &mut [&mut [f64]; N],
        r: usize,
        inv: &[f64],
        x0: usize,
        x1: usize,
        acc: &mut [f64; N],
    ) -> usize {
        let w = inv.len();
        // Every load below reads [x−r−1, x+r+4) ⊂ [0, w) and every store [x, x+4) ⊂ [0, w).
        assert!(x0 > r && x1 + r <= w);
        assert!(s.iter().all(|s| s.len() == w) && o.iter().all(|o| o.len() == w));
        let mut x = x0;
        // SAFETY: the asserts above bound every pointer offset (x + 4 ≤ x1); AVX2 is enabled
        // at compile time (this module only exists then).
        unsafe {
            let mut carry: [__m256d; N] = acc.map(|a| _mm256_set1_pd(a));
            while x + 4 <= x1 {
                let iv = _mm256_loadu_pd(inv.as_ptr().add(x));
                for k in 0..N {
                    let sum = scan4(s[k].as_ptr(), x, r, &mut carry[k]);
                    _mm256_storeu_pd(o[k].as_mut_ptr().add(x), _mm256_mul_pd(sum, iv));
                }
                x += 4;
            }
            for k in 0..N {
                acc[k] = _mm256_cvtsd_f64(carry[k]);
            }
        }
        x
    }

    /// One step of the in-register window scan shared by the fused kernels: loads the
    /// differences d = s[x+r] − s[x−r−1] of four columns, prefix-sums them, adds the carried
    /// running sum and returns the four window sums (the carry moves on to the last of them).
    ///
    /// # Safety
    /// `sp` must be valid for reads of `[x−r−1, x+r+4)`; AVX2 is enabled at compile time.
    #[inline(always)]
    unsafe fn scan4(sp: *const f64, x: usize, r: usize, carry: &mut __m256d) -> __m256d {
        // SAFETY: the caller bounds the offsets.
        unsafe {
            let zero = _mm256_setzero_pd();
            let d = _mm256_sub_pd(
                _mm256_loadu_pd(sp.add(x + r)),
                _mm256_loadu_pd(sp.add(x - r - 1)),
            );
            let t = _mm256_add_pd(
                d,
                _mm256_blend_pd::<0b0001>(_mm256_permute4x64_pd::<0b1001_0000>(d), zero),
            );
            let t = _mm256_add_pd(t, _mm256_permute2f128_pd::<0x08>(t, t));
            let sum = _mm256_add_pd(t, *carry);
            *carry = _mm256_permute4x64_pd::<0xFF>(sum);
            sum
        }
    }

    /// Checks shared by the fused kernels; every access of the loops lies in `[0, w)` (an
    /// empty span, as on planes narrower than 2r+2, makes no access).
    fn check_span(rows: &[Vec<f64>], w: usize, r: usize, x0: usize, x1: usize) {
        assert!(x0 >= x1 || (x0 > r && x1 + r <= w), "interior span");
        assert!(rows.iter().all(|s| s.len() >= w), "row lengths");
    }

    /// Statistics window means → coefficient rows, fused, for the interior columns
    /// `[x0, x1)` (four per step): `s` holds the column sums of I, I², then p and I·p per
    /// channel (`2 + 2·NC` rows), `ring` receives a and b per eps and channel
    /// (`ring[2·(e·NC + c)]`, `[.. + 1]`), with exactly the arithmetic of
    /// `super::coefficients_span`. Returns the first column not done; `acc` carries the running
    /// sums there.
    pub(super) fn stats_coefs<const NC: usize, const NE: usize>(
        s: &[Vec<f64>],
        r: usize,
        inv: &[f64],
        eps: &[f32],
        (x0, x1): (usize, usize),
        acc: &mut [f64],
        ring: &mut [Vec<f32>],
    ) -> usize {
        let w = inv.len();
        let nq = 2 + 2 * NC;
        assert!(NC <= 3 && s.len() == nq && acc.len() == nq);
        assert!(eps.len() == NE && ring.len() == 2 * NC * NE);
        assert!(ring.iter().all(|o| o.len() >= w));
        check_span(s, w, r, x0, x1);
        let mut x = x0;
        // SAFETY: check_span and the asserts bound every offset (x + 4 ≤ x1); AVX2 is
        // enabled at compile time.
        unsafe {
            let zero = _mm256_setzero_pd();
            let one = _mm256_set1_pd(1.0);
            let mut carry = [zero; 8];
            for k in 0..nq {
                carry[k] = _mm256_set1_pd(acc[k]);
            }
            let ep: [__m256d; NE] = std::array::from_fn(|e| _mm256_set1_pd(eps[e] as f64));
            while x + 4 <= x1 {
                let iv = _mm256_loadu_pd(inv.as_ptr().add(x));
                let mut m = [zero; 8];
                for k in 0..nq {
                    m[k] = _mm256_mul_pd(scan4(s[k].as_ptr(), x, r, &mut carry[k]), iv);
                }
                let mi = m[0];
                let var = _mm256_max_pd(_mm256_sub_pd(m[1], _mm256_mul_pd(mi, mi)), zero);
                for (e, &epv) in ep.iter().enumerate() {
                    let inv_den = _mm256_div_pd(one, _mm256_add_pd(var, epv));
                    for c in 0..NC {
                        let mp = m[2 + 2 * c];
                        let cov = _mm256_sub_pd(m[3 + 2 * c], _mm256_mul_pd(mi, mp));
                        let a = _mm256_mul_pd(cov, inv_den);
                        let b = _mm256_sub_pd(mp, _mm256_mul_pd(a, mi));
                        let k = 2 * (e * NC + c);
                        _mm_storeu_ps(ring[k].as_mut_ptr().add(x), _mm256_cvtpd_ps(a));
                        _mm_storeu_ps(ring[k + 1].as_mut_ptr().add(x), _mm256_cvtpd_ps(b));
                    }
                }
                x += 4;
            }
            for k in 0..nq {
                acc[k] = _mm256_cvtsd_f64(carry[k]);
            }
        }
        x
    }

    /// Coefficient window means → filter output, fused, for `P` (a, b) pairs over the
    /// interior columns `[x0, x1)`: `s[2p]`, `s[2p+1]` are the column sums of a and b,
    /// `outs[p][off + x] = mean(a)·I + mean(b)` with exactly the arithmetic of `super::apply_span`.
    /// Returns the first column not done; `acc` carries the running sums there.
    pub(super) fn apply_pairs<const P: usize>(
        s: &[Vec<f64>],
        g: &[f32],
        r: usize,
        inv: &[f64],
        (x0, x1): (usize, usize),
        acc: &mut [f64],
        (outs, off): (&mut [&mut [f32]], usize),
    ) -> usize {
        let w = inv.len();
        assert!(s.len() == 2 * P && acc.len() == 2 * P && outs.len() == P);
        assert!(g.len() >= w && outs.iter().all(|o| o.len() >= off + w));
        check_span(s, w, r, x0, x1);
        let mut x = x0;
        // SAFETY: as in stats_coefs.
        unsafe {
            let mut carry: [[__m256d; 2]; P] =
                std::array::from_fn(|p| [0, 1].map(|j| _mm256_set1_pd(acc[2 * p + j])));
            while x + 4 <= x1 {
                let iv = _mm256_loadu_pd(inv.as_ptr().add(x));
                let gv = _mm256_cvtps_pd(_mm_loadu_ps(g.as_ptr().add(x)));
                for p in 0..P {
                    let [ca, cb] = &mut carry[p];
                    let ma = _mm256_mul_pd(scan4(s[2 * p].as_ptr(), x, r, ca), iv);
                    let mb = _mm256_mul_pd(scan4(s[2 * p + 1].as_ptr(), x, r, cb), iv);
                    let q = _mm256_fmadd_pd(ma, gv, mb);
                    _mm_storeu_ps(outs[p].as_mut_ptr().add(off + x), _mm256_cvtpd_ps(q));
                }
                x += 4;
            }
            for p in 0..P {
                for j in 0..2 {
                    acc[2 * p + j] = _mm256_cvtsd_f64(carry[p][j]);
                }
            }
        }
        x
    }
}

/// [`hmeans`] over any number of rows, four at a time; `inv` is 1/window size per column.
fn hmeans_rows(src: &[Vec<f64>], out: &mut [Vec<f64>], r: usize, inv: &[f64]) {
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
fn vstep_pair<const ADD: bool, const SUB: bool>(
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
fn vstep<const ADD: bool, const SUB: bool>(acc: &mut [f64], row_in: &[f32], row_out: &[f32]) {
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
struct Window {
    h: usize,
    r: usize,
    lo: usize,
    hi: usize,
}

impl Window {
    fn new(h: usize, r: usize, start: usize) -> Self {
        Self {
            h,
            r,
            lo: start,
            hi: start,
        }
    }

    /// The next (entering, leaving) rows on the way to the window centred on `yc`, or `None`
    /// once it is there; in the steady state one row enters and one leaves in the same step.
    fn step(&mut self, yc: usize) -> Option<(Option<usize>, Option<usize>)> {
        let enter = (self.hi < (yc + self.r + 1).min(self.h)).then_some(self.hi);
        let leave = (self.lo < yc.saturating_sub(self.r)).then_some(self.lo);
        self.hi += enter.is_some() as usize;
        self.lo += leave.is_some() as usize;
        (enter.is_some() || leave.is_some()).then_some((enter, leave))
    }

    /// The number of rows in the window.
    fn rows(&self) -> usize {
        self.hi - self.lo
    }

    /// 1 / the number of rows in the window.
    fn inv_n(&self) -> f64 {
        1.0 / self.rows() as f64
    }
}

/// Vertical running sums over the rows of a window: `acc[k]` holds, per column, the sum of
/// quantity k over the window's rows. Rows enter and leave through a callback, so a quantity
/// that can be recomputed from the inputs (the guide statistics) needs no stored history.
struct ColumnSums {
    win: Window,
    acc: Vec<Vec<f64>>,
}

impl ColumnSums {
    fn new(w: usize, h: usize, r: usize, q: usize, start: usize) -> Self {
        Self {
            win: Window::new(h, r, start),
            acc: vec![vec![0.0; w]; q],
        }
    }

    /// Moves the window to centre row `yc`. Each call `f(entering, leaving, acc)` adds the
    /// entering row and subtracts the leaving one (exactly what was added), either may be
    /// absent.
    fn advance(
        &mut self,
        yc: usize,
        mut f: impl FnMut(Option<usize>, Option<usize>, &mut [Vec<f64>]),
    ) {
        while let Some((enter, leave)) = self.win.step(yc) {
            f(enter, leave, &mut self.acc);
        }
    }

    fn inv_ny(&self) -> f64 {
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
fn stats_step<const ADD: bool, const SUB: bool>(
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
fn ring_step<const ADD: bool, const SUB: bool>(
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

fn inv_counts(w: usize, r: usize) -> Vec<f64> {
    (0..w).map(|x| 1.0 / window_count(x, w, r) as f64).collect()
}

/// The number of in-image columns (or rows, with `w` the height) of the radius-`r` window
/// centred on `x`.
fn window_count(x: usize, w: usize, r: usize) -> usize {
    (x + r).min(w - 1) + 1 - x.saturating_sub(r)
}

/// Where [`guided_strip`] puts each output row; the row chunks start at the strip's first row.
enum Sink<'o, 'a> {
    /// q = mean(a)·I + mean(b): `outs[e·nc + c]`.
    Filter(&'o mut [&'a mut [f32]]),
    /// The coefficient window means: `outs[2·(e·nc + c)]` = mean(a), `[.. + 1]` = mean(b).
    Means(&'o mut [&'a mut [f32]]),
}

/// Whether the fused AVX2 kernels exist in this build (they need `target-cpu` with AVX2, which
/// `.cargo/config.toml` sets for x86-64).
const FUSED: bool = cfg!(all(target_arch = "x86_64", target_feature = "avx2"));

/// The running sums a row scan starts from: Σ src[k][..r] (the window of column −1).
fn scan_start(src: &[Vec<f64>], r: usize, w: usize) -> Vec<f64> {
    src.iter().map(|s| s[..r.min(w)].iter().sum()).collect()
}

/// Scalar window means of columns `[from, to)` for every row of `src`, continuing the running
/// sums `acc[k]` (the window sum of column `from − 1`). Used on the borders of the fused
/// kernels' spans, where windows grow or shrink.
fn hmeans_span(
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
fn coefficients_span(
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
fn apply_span(
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
fn fusable(nc: usize, ne: usize) -> bool {
    FUSED && (1..=3).contains(&nc) && (1..=2).contains(&ne)
}

/// The fused statistics → coefficients kernel over `span` (only called when [`fusable`]);
/// returns the first column not done.
#[allow(unused_variables)]
fn fused_stats_coefs(
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
fn interior(w: usize, r: usize) -> (usize, usize) {
    let head = (r + 1).min(w);
    (head, w.saturating_sub(r).max(head))
}

/// One coefficient row (a, b per eps and channel, into `ring`) from the statistics' column
/// sums: window means, var, cov, a, b.
fn coefficient_rows(
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
fn filter_rows(
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
fn guided_strip(
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
fn fill_inv(inv: &mut [f64], inv_nx: &[f64], inv_ny: f64) {
    for (i, &n) in inv.iter_mut().zip(inv_nx) {
        *i = n * inv_ny;
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

/// (job, radius, eps, first row, end row, output row chunks) of one parallel task.
type Task<'a> = (usize, usize, &'a [f32], usize, usize, Vec<&'a mut [f32]>);

/// Splits `n_jobs` jobs of `h` rows each into `n_groups` groups of about equal work: the jobs'
/// rows are laid end to end and cut into equal runs, so a job is split only where a run ends
/// (each cut costs a halo of 3r rows). Pieces shorter than `min_piece` rows are not made.
/// Returns, per job, its strips `(y0, y1, group)`.
fn partition(
    n_jobs: usize,
    h: usize,
    n_groups: usize,
    min_piece: usize,
) -> Vec<Vec<(usize, usize, usize)>> {
    let n_groups = n_groups.max(1);
    let per = (n_jobs * h).div_ceil(n_groups).max(1);
    (0..n_jobs)
        .map(|j| {
            let pos = j * h;
            let mut st = Vec::new();
            let mut a = 0;
            while a < h {
                let g = ((pos + a) / per).min(n_groups - 1);
                let mut b = ((g + 1) * per).saturating_sub(pos).clamp(a + 1, h);
                if b - a < min_piece || h - b < min_piece {
                    b = h;
                }
                st.push((a, b, g));
                a = b;
            }
            st
        })
        .collect()
}

/// Groups of work per thread: more than one, so a thread that falls behind (another process,
/// a busy sibling) is made up for by stealing.
const GROUPS_PER_THREAD: usize = 2;

/// Runs every job over row strips in parallel, writing q = mean(a)·I + mean(b): the jobs'
/// rows are shared out in equal groups (see [`partition`]), run in parallel.
fn run_jobs(guide: &Plane, inputs: &[&Plane], jobs: Vec<Job<'_>>) {
    run_jobs_on(guide, inputs, jobs, true)
}

/// The 8-bit view of the data and the fixed-point scales of each job, where the exact
/// integer path applies (see `q8`): an AVX2 build, 1..=3 inputs and 1..=2 eps, every sample a
/// multiple of 1/255, and a radius and eps whose error bound it meets.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
struct Integer8 {
    q: q8::Q8,
    scales: Vec<Option<Vec<q8::Fixed>>>,
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn integer8(guide: &Plane, inputs: &[&Plane], jobs: &[Job<'_>]) -> Option<Integer8> {
    let (w, h) = (guide.width, guide.height);
    let scales: Vec<Option<Vec<q8::Fixed>>> = jobs
        .iter()
        .map(|j| {
            fusable(inputs.len(), j.eps.len())
                .then(|| j.eps.iter().map(|&e| q8::fixed(j.r, e, w, h)).collect())
                .flatten()
        })
        .collect();
    if scales.iter().all(Option::is_none) {
        return None;
    }
    Some(Integer8 {
        q: q8::quantize(guide, inputs)?,
        scales,
    })
}

/// [`run_jobs`], with the exact integer path for 8-bit data allowed or not (tests compare the
/// two).
fn run_jobs_on(guide: &Plane, inputs: &[&Plane], jobs: Vec<Job<'_>>, allow_int: bool) {
    let w = guide.width;
    let h = guide.height;
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    let int8 = allow_int.then(|| integer8(guide, inputs, &jobs)).flatten();
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    let _ = allow_int;
    let n_groups = GROUPS_PER_THREAD * rayon::current_num_threads();
    let max_r = jobs.iter().map(|j| j.r).max().unwrap_or(1);
    let parts = partition(jobs.len(), h, n_groups, (4 * max_r).max(32));
    let mut groups: Vec<Vec<Task<'_>>> = (0..n_groups).map(|_| Vec::new()).collect();
    for (j, (job, st)) in jobs.into_iter().zip(parts).enumerate() {
        let ranges: Vec<(usize, usize)> = st.iter().map(|&(a, b, _)| (a, b)).collect();
        let per = split_strips(job.outs, &ranges, w);
        for (&(a, b, g), outs) in st.iter().zip(per) {
            groups[g].push((j, job.r, job.eps, a, b, outs));
        }
    }
    groups.into_par_iter().for_each(|tasks| {
        for (_j, r, eps, y0, y1, mut outs) in tasks {
            #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
            if let Some(int8) = &int8
                && let Some(fx) = &int8.scales[_j]
            {
                q8::strip(&int8.q, inputs.len(), r, eps, fx, (y0, y1), &mut outs);
                continue;
            }
            guided_strip(guide, inputs, r, eps, (y0, y1), Sink::Filter(&mut outs));
        }
    });
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if let Some(int8) = int8 {
        q8::recycle(int8.q);
    }
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
    let mut outs = zeroed_like(guide, inputs.len() * eps.len());
    guided_filter_multi_into(guide, inputs, radius_px, eps, &mut outs)?;
    Ok(outs)
}

/// [`guided_filter_multi`] into caller-owned planes (`outs[e·inputs.len() + c]`, each the size
/// of the guide), so a caller that filters every frame allocates nothing.
pub fn guided_filter_multi_into(
    guide: &Plane,
    inputs: &[&Plane],
    radius_px: usize,
    eps: &[f32],
    outs: &mut [Plane],
) -> Result<()> {
    check_inputs(guide, inputs, radius_px, eps)?;
    check_outputs(guide, outs, inputs.len() * eps.len())?;
    run_jobs(
        guide,
        inputs,
        vec![Job {
            r: radius_px,
            eps,
            outs: outs.iter_mut().collect(),
        }],
    );
    Ok(())
}

fn zeroed_like(guide: &Plane, n: usize) -> Vec<Plane> {
    (0..n)
        .map(|_| Plane::zeros(guide.width, guide.height))
        .collect()
}

/// Output planes must be `n`, each the size of the guide.
fn check_outputs(guide: &Plane, outs: &[Plane], n: usize) -> Result<()> {
    if outs.len() != n {
        return Err(Error::param(
            "guided filter outputs",
            format!("{} planes given, {n} needed", outs.len()),
        ));
    }
    for o in outs {
        guide.ensure_same_dims(o, "guided filter guide vs output")?;
    }
    Ok(())
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
    let mut outs = zeroed_like(guide, radii.len() * eps.len() * 3);
    guided_bank_into(guide, input, radii, eps, &mut outs)?;
    Ok(outs)
}

/// [`guided_bank`] into caller-owned planes (same order, each the size of the guide).
pub fn guided_bank_into(
    guide: &Plane,
    input: &PlanarRgb,
    radii: &[usize],
    eps: &[f32],
    outs: &mut [Plane],
) -> Result<()> {
    guided_bank_into_with(guide, input, radii, eps, outs, Arithmetic::Auto)
}

/// Which arithmetic the guided filter runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arithmetic {
    /// The exact integer path where every sample is an 8-bit one (a multiple of 1/255) and the
    /// build has AVX2, the f64 path otherwise (module docs).
    #[default]
    Auto,
    /// Always the f64 path: the reference the integer path is checked and timed against.
    F64,
}

/// [`guided_bank_into`] in the given [`Arithmetic`].
pub fn guided_bank_into_with(
    guide: &Plane,
    input: &PlanarRgb,
    radii: &[usize],
    eps: &[f32],
    outs: &mut [Plane],
    arithmetic: Arithmetic,
) -> Result<()> {
    let [r, g, b] = &input.planes;
    let inputs = [r, g, b];
    for &rad in radii {
        check_inputs(guide, &inputs, rad, eps)?;
    }
    let per_radius = 3 * eps.len();
    check_outputs(guide, outs, radii.len() * per_radius)?;
    let mut it = outs.iter_mut();
    let jobs = radii
        .iter()
        .map(|&rad| Job {
            r: rad,
            eps,
            outs: it.by_ref().take(per_radius).collect(),
        })
        .collect();
    run_jobs_on(guide, &inputs, jobs, arithmetic == Arithmetic::Auto);
    Ok(())
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
        let mut inv = vec![0f64; w];
        for y in y0..y1 {
            cols.advance(y, |yi, yo, acc| {
                let row = |y: Option<usize>| y.map(|y| src.row(y));
                dispatch_step!(row(yi), row(yo), vstep(&mut acc[0]))
            });
            fill_inv(&mut inv, &inv_nx, cols.inv_ny());
            hmeans_rows(&cols.acc, &mut mean, r, &inv);
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
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        let done = hlerp_blocks::<S>((tm, tc, tp), o, (&lo, &mid, &hi));
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        let done = 0;
        for i in done..n {
            let (a, b, c) = (tm[i], tc[i], tp[i]);
            for j in 0..S {
                o[i * S + j] = a * lo[j] + b * mid[j] + c * hi[j];
            }
        }
        self.hlerp_table(t, out, 0..S);
        self.hlerp_table(t, out, last * S..w);
    }
}

/// The interior loop of [`Upsampler::hlerp_fixed`] eight low-res samples at a time: their 8·S
/// outputs are S vectors, output lane l of vector k being sample (8k + l)/S at phase
/// (8k + l) mod S, so each vector is three lane permutations of the eight samples and their
/// neighbours, weighted per lane. Same arithmetic, in the same order, as the scalar loop
/// (bit-identical). Returns the number of samples done (a multiple of 8).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn hlerp_blocks<const S: usize>(
    (tm, tc, tp): (&[f32], &[f32], &[f32]),
    o: &mut [f32],
    (lo, mid, hi): (&[f32; S], &[f32; S], &[f32; S]),
) -> usize {
    use std::arch::x86_64::*;
    let n = tm.len();
    assert!(tc.len() == n && tp.len() == n && o.len() == n * S);
    let lane = |k: usize, l: usize| 8 * k + l;
    // SAFETY: AVX2 is enabled at compile time; i + 8 ≤ n bounds the loads and
    // (i + 8)·S ≤ o.len() the stores.
    unsafe {
        let idx: [__m256i; S] = std::array::from_fn(|k| {
            let v: [i32; 8] = std::array::from_fn(|l| (lane(k, l) / S) as i32);
            _mm256_loadu_si256(v.as_ptr() as *const __m256i)
        });
        let weights = |w: &[f32; S]| -> [__m256; S] {
            std::array::from_fn(|k| {
                let v: [f32; 8] = std::array::from_fn(|l| w[lane(k, l) % S]);
                _mm256_loadu_ps(v.as_ptr())
            })
        };
        let (wl, wm, wh) = (weights(lo), weights(mid), weights(hi));
        let mut i = 0;
        while i + 8 <= n {
            let a = _mm256_loadu_ps(tm.as_ptr().add(i));
            let b = _mm256_loadu_ps(tc.as_ptr().add(i));
            let c = _mm256_loadu_ps(tp.as_ptr().add(i));
            for k in 0..S {
                let pa = _mm256_permutevar8x32_ps(a, idx[k]);
                let pb = _mm256_permutevar8x32_ps(b, idx[k]);
                let pc = _mm256_permutevar8x32_ps(c, idx[k]);
                let v = _mm256_add_ps(
                    _mm256_add_ps(_mm256_mul_ps(pa, wl[k]), _mm256_mul_ps(pb, wm[k])),
                    _mm256_mul_ps(pc, wh[k]),
                );
                _mm256_storeu_ps(o.as_mut_ptr().add(i * S + 8 * k), v);
            }
            i += 8;
        }
        i
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
            guided_strip(
                guide,
                inputs,
                radius_px,
                eps,
                (y0, y1),
                Sink::Means(&mut outs),
            );
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

    /// `test_plane` rounded to 8-bit samples, stored as an 8-bit frame's conversion stores them.
    fn test_plane8(w: usize, h: usize, seed: u64) -> Plane {
        let mut p = test_plane(w, h, seed);
        for v in &mut p.data {
            *v = (*v * 255.0).round() as u8 as f32 * (1.0 / 255.0);
        }
        p
    }

    /// Whether the exact integer path takes every job of this filter (AVX2 builds).
    fn takes_integer_path(g: &Plane, inputs: &[&Plane], r: usize, eps: &[f32]) -> bool {
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        {
            let mut outs = zeroed_like(g, inputs.len() * eps.len());
            let jobs = vec![Job {
                r,
                eps,
                outs: outs.iter_mut().collect(),
            }];
            integer8(g, inputs, &jobs).is_some_and(|i| i.scales.iter().all(Option::is_some))
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        {
            let _ = (g, inputs, r, eps);
            false
        }
    }

    #[test]
    fn eight_bit_data_matches_reference_all_small_radii() {
        // The exact integer path: 1×1, 2×3, widths below 2r+1, odd widths and widths that are
        // not a multiple of 8, every radius 1..=16, one and three inputs, both bank eps.
        let sizes = [(1, 1), (2, 3), (3, 2), (7, 5), (13, 11), (31, 17), (45, 40)];
        for &(w, h) in &sizes {
            for r in 1..=16 {
                let g = test_plane8(w, h, (w * 31 + h + r) as u64);
                let ps: Vec<Plane> = (0..3)
                    .map(|c| test_plane8(w, h, (w * 17 + r + c) as u64))
                    .collect();
                let refs: Vec<&Plane> = ps.iter().collect();
                let one = guided_filter_multi(&g, &refs[..1], r, &BANK_EPS[..1]).unwrap();
                let three = guided_filter_multi(&g, &refs, r, &BANK_EPS).unwrap();
                if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
                    assert!(takes_integer_path(&g, &refs, r, &BANK_EPS), "{w}x{h} r={r}");
                }
                let want = reference::guided(&g, &ps[0], r, BANK_EPS[0] as f64);
                let d = max_abs_diff(&one[0].data, &want);
                assert!(d <= 1e-4, "{w}x{h} r={r} one input: max |Δ| = {d}");
                for (e, &eps) in BANK_EPS.iter().enumerate() {
                    for (c, p) in ps.iter().enumerate() {
                        let want = reference::guided(&g, p, r, eps as f64);
                        let d = max_abs_diff(&three[e * 3 + c].data, &want);
                        assert!(d <= 1e-4, "{w}x{h} r={r} eps={eps} c={c}: max |Δ| = {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn eight_bit_data_large_radius_strips_and_steep_coefficients() {
        // r = 32 on a plane split into strips; then the worst case for the fixed-point
        // coefficients: a guide whose variance is about eps, with an input that follows it
        // from 0 to 1, so |a| is near its bound 1/(4√eps) = 25.
        let (w, h) = (97, 301);
        let g = test_plane8(w, h, 5);
        let p = test_plane8(w, h, 6);
        assert!(takes_integer_path(&g, &[&p], 32, &[1e-4]) || !FUSED);
        let got = guided_filter(&g, &p, 32, 1e-4).unwrap();
        let d = max_abs_diff(&got.data, &reference::guided(&g, &p, 32, 1e-4));
        assert!(d <= 1e-4, "r=32: max |Δ| = {d}");

        let (w, h) = (70, 90);
        let mut g = Plane::zeros(w, h);
        let mut p = Plane::zeros(w, h);
        for y in 0..h {
            for x in 0..w {
                let hi = (x / 3 + y / 5) % 2 == 1;
                g.data[y * w + x] = (120 + 3 * hi as u8) as f32 * (1.0 / 255.0);
                p.data[y * w + x] = hi as u8 as f32;
            }
        }
        for &r in &[2, 8, 32] {
            assert!(takes_integer_path(&g, &[&p], r, &[1e-4]) || !FUSED);
            let got = guided_filter(&g, &p, r, 1e-4).unwrap();
            let want = reference::guided(&g, &p, r, 1e-4);
            let d = max_abs_diff(&got.data, &want);
            assert!(d <= 1e-4, "steep r={r}: max |Δ| = {d}");
        }
    }

    #[test]
    fn integer_and_float_paths_agree_on_the_bank() {
        let (w, h) = (203, 150);
        let img = PlanarRgb::from_planes([
            test_plane8(w, h, 2),
            test_plane8(w, h, 3),
            test_plane8(w, h, 4),
        ])
        .unwrap();
        // The residue of 8-bit samples: differences of f32 multiples of 1/255.
        let g = crate::physics::residue::residue(&img);
        let [r, gr, b] = &img.planes;
        let inputs = [r, gr, b];
        assert!(takes_integer_path(&g, &inputs, 32, &BANK_EPS) || !FUSED);
        let mut int = zeroed_like(&g, 30);
        let mut float = zeroed_like(&g, 30);
        guided_bank_into(&g, &img, &BANK_RADII, &BANK_EPS, &mut int).unwrap();
        let f64_path = Arithmetic::F64;
        guided_bank_into_with(&g, &img, &BANK_RADII, &BANK_EPS, &mut float, f64_path).unwrap();
        for (k, (a, b)) in int.iter().zip(&float).enumerate() {
            let d = a
                .data
                .iter()
                .zip(&b.data)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d <= 1e-4, "plane {k}: max |Δ| = {d}");
        }
    }

    #[test]
    fn only_eight_bit_samples_take_the_integer_path() {
        let g = test_plane8(20, 10, 1);
        let p = test_plane8(20, 10, 2);
        assert!(takes_integer_path(&g, &[&p], 4, &[1e-3]) || !FUSED);
        // Off the 1/255 grid by half a step, or outside [0,1]: the float path.
        let mut off = p.clone();
        off.data[7] += 0.5 / 255.0;
        assert!(!takes_integer_path(&g, &[&off], 4, &[1e-3]));
        let mut big = p.clone();
        big.data[3] = 2.0;
        assert!(!takes_integer_path(&g, &[&big], 4, &[1e-3]));
        // Radii and eps whose fixed-point error bound is too large: the float path.
        assert!(!takes_integer_path(&g, &[&p], 200, &[1e-3]));
        assert!(!takes_integer_path(&g, &[&p], 4, &[1e-9]));
    }

    #[test]
    fn many_inputs_and_eps_take_the_general_path_and_match_the_reference() {
        // Four inputs and three eps: outside the fused kernels' instantiations.
        let (w, h) = (83, 61);
        let g = test_plane(w, h, 11);
        let ps: Vec<Plane> = (0..4).map(|k| test_plane(w, h, 20 + k)).collect();
        let refs: Vec<&Plane> = ps.iter().collect();
        let eps = [1e-2, 1e-3, 1e-4];
        let out = guided_filter_multi(&g, &refs, 6, &eps).unwrap();
        for (e, &ev) in eps.iter().enumerate() {
            for (c, p) in ps.iter().enumerate() {
                let want = reference::guided(&g, p, 6, ev as f64);
                let d = max_abs_diff(&out[e * ps.len() + c].data, &want);
                assert!(d <= 1e-4, "eps={ev} c={c}: max |Δ| = {d}");
            }
        }
    }

    #[test]
    fn into_variants_check_their_outputs() {
        let g = test_plane(16, 12, 1);
        let img = PlanarRgb::from_planes([g.clone(), g.clone(), g.clone()]).unwrap();
        let mut few = vec![Plane::zeros(16, 12); 5];
        assert!(guided_bank_into(&g, &img, &[2, 4], &BANK_EPS, &mut few).is_err());
        let mut wrong = vec![Plane::zeros(15, 12); 12];
        assert!(guided_bank_into(&g, &img, &[2, 4], &BANK_EPS, &mut wrong).is_err());
        let mut ok = vec![Plane::zeros(16, 12); 12];
        guided_bank_into(&g, &img, &[2, 4], &BANK_EPS, &mut ok).unwrap();
        let alloc = guided_bank(&g, &img, &[2, 4], &BANK_EPS).unwrap();
        assert!(ok.iter().zip(&alloc).all(|(a, b)| a.data == b.data));
        let mut one = vec![Plane::zeros(16, 12); 2];
        assert!(guided_filter_multi_into(&g, &[&g], 3, &[1e-3], &mut one).is_err());
    }

    #[test]
    fn partition_covers_every_row_once_in_balanced_groups() {
        for &(jobs, h, groups, min_piece) in &[
            (5, 1080, 4, 128),
            (1, 1080, 4, 32),
            (5, 7, 4, 128),
            (3, 100, 1, 32),
            (2, 33, 8, 32),
        ] {
            let parts = partition(jobs, h, groups, min_piece);
            assert_eq!(parts.len(), jobs);
            let mut load = vec![0usize; groups];
            for st in &parts {
                // Consecutive strips covering [0, h).
                assert_eq!(st.first().unwrap().0, 0);
                assert_eq!(st.last().unwrap().1, h);
                for win in st.windows(2) {
                    assert_eq!(win[0].1, win[1].0);
                }
                for &(a, b, g) in st {
                    assert!(a < b && g < groups);
                    assert!(
                        b - a >= min_piece.min(h),
                        "{a}..{b} shorter than {min_piece}"
                    );
                    load[g] += b - a;
                }
            }
            let ideal = (jobs * h).div_ceil(groups);
            assert!(
                load.iter().all(|&l| l <= ideal + min_piece),
                "{load:?} vs {ideal}"
            );
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
        for s in 1..=8 {
            for w in [1usize, 2, 5, 8, 13, 16, 31, 64, 67, 333, 1920] {
                let lw = w.div_ceil(s);
                let lo = test_plane(lw, 3, (w * 7 + s) as u64);
                let up = Upsampler::new(lw, 3, s, w);
                let mut tmp = vec![0f32; lw];
                let mut fast = vec![0f32; w];
                up.row(&lo, 1, &mut tmp, &mut fast);
                let mut table = vec![0f32; w];
                up.hlerp_table(&tmp, &mut table, 0..w);
                for x in 0..w {
                    // The bilinear value with the coordinate in f64. The table's f32 coordinate
                    // (x + 0.5)/s − 0.5 loses ~ulp(x/s) of its fraction at full-HD widths (the
                    // fast path uses the table on its border blocks), hence 5e-5.
                    let f = ((x as f64 + 0.5) / s as f64 - 0.5).max(0.0);
                    let i0 = (f.floor() as usize).min(lw - 1);
                    let i1 = (i0 + 1).min(lw - 1);
                    let (a, b) = (tmp[i0] as f64, tmp[i1] as f64);
                    let want = a + (b - a) * (f - i0 as f64);
                    assert!(
                        (fast[x] as f64 - want).abs() < 5e-5,
                        "s={s} w={w} x={x}: {} vs {want}",
                        fast[x]
                    );
                    assert!((table[x] as f64 - want).abs() < 5e-5, "s={s} w={w} x={x}");
                }
            }
        }
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[test]
    fn upsampler_vector_blocks_are_bit_identical_to_the_scalar_loop() {
        fn check<const S: usize>() {
            let lo: [f32; S] = std::array::from_fn(|j| 0.1 + j as f32 * 0.37);
            let mid: [f32; S] = std::array::from_fn(|j| 0.9 - j as f32 * 0.11);
            let hi: [f32; S] = std::array::from_fn(|j| 0.05 * j as f32);
            for n in [0usize, 7, 8, 9, 23, 100] {
                let t: Vec<f32> = test_plane(n + 2, 1, (n * 31 + S) as u64).data;
                let (tm, tc, tp) = (&t[..n], &t[1..n + 1], &t[2..n + 2]);
                let mut o = vec![f32::NAN; n * S];
                let done = hlerp_blocks::<S>((tm, tc, tp), &mut o, (&lo, &mid, &hi));
                assert_eq!(done, n / 8 * 8);
                for i in 0..done {
                    for j in 0..S {
                        let want = tm[i] * lo[j] + tc[i] * mid[j] + tp[i] * hi[j];
                        assert_eq!(o[i * S + j].to_bits(), want.to_bits(), "S={S} n={n} i={i}");
                    }
                }
            }
        }
        check::<2>();
        check::<3>();
        check::<4>();
        check::<5>();
        check::<6>();
        check::<8>();
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
