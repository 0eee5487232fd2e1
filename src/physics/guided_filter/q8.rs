//! The guided filter on 8-bit data, in exact integer arithmetic (AVX2 builds only).
//!
//! Camera frames are 8-bit, and so are the guide (the residue channel, a difference of two
//! 8-bit samples) and the inputs of the decomposition bank on them. When every sample of the
//! guide and the inputs is a multiple of 1/255 (within [`TOL`], which covers every f32 route
//! from 8-bit data: `v·(1/255)`, `v/255`, differences of those), the filter runs on the
//! integers `k = 255·v` instead of on f64:
//!
//! - **Statistics, exact.** I, I², p and I·p are integers (I·p ≤ 65025); their column and
//!   window sums are i32 sums, exact for radii up to [`MAX_RADIUS`]. var and cov come from
//!   them in f64, as in the float path.
//! - **Coefficients, fixed point.** a and b are rounded to multiples of 2^-f, with f the largest
//!   that keeps every window sum of them inside i32 (|a| ≤ 1/(4√eps) and |b| ≤ 1 + |a| on
//!   [0,1] data, see [`Fixed`]); their column and window sums are then exact i32 sums too. The
//!   rounding is the only error of the path: at most 2^-(f+1) in mean(a) and in mean(b), plus
//!   f32 rounding of q. A radius and eps whose bound exceeds [`MAX_ERR`] (at the bank's
//!   largest, r = 32 and eps = 1e-4, it is 6.9e-5) take the float path instead.
//! - **Eight columns per instruction.** Everything is i32 lanes (the float path is f64, four);
//!   the window sums along x are an in-register prefix sum of s[x+r] − s[x−r−1] as there.
//! - **No border code.** The column-sum rows carry zero padding of r+1 columns on both sides,
//!   so the in-image part of every window is summed by the same loop; 1/N per column does the
//!   rest, and is 0 on the columns past the width (the rows are padded to a multiple of 8).

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::{Window, fill_inv, inv_counts};
use crate::frame::Plane;

/// Largest |v − k/255| accepted as the 8-bit sample k (4 ulp of 1.0 in f32).
pub(super) const TOL: f32 = 4.0 * f32::EPSILON;
/// Largest radius whose window sums of I² (≤ 65025 each) fit i32: (2r+1)² · 65025 < 2^31.
pub(super) const MAX_RADIUS: usize = 90;
/// Largest worst-case error of the path accepted for a radius and eps (the float path
/// promises 1e-4 against the f64 reference).
pub(super) const MAX_ERR: f64 = 8e-5;
/// Bound on the f32 rounding of q = mean(a)·I + mean(b), per unit of the bound on |a| (a few
/// roundings of values up to |mean a|, |mean b| ≤ 1 + |a|), added to the fixed-point bound.
const F32_ERR_PER_A: f64 = 3e-7;

/// The guide and inputs as 8-bit samples, rows padded with zeros to `wp` (a multiple of 8).
pub(super) struct Q8 {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) wp: usize,
    /// Guide rows then each input's rows, `(1 + inputs)·h` rows of `wp`.
    data: Vec<u8>,
}

impl Q8 {
    fn row(&self, plane: usize, y: usize) -> &[u8] {
        let s = (plane * self.h + y) * self.wp;
        &self.data[s..s + self.wp]
    }
}

/// The 8-bit samples of `guide` and `inputs`, or `None` when any sample is not one (or the
/// planes are too small to be worth it).
pub(super) fn quantize(guide: &Plane, inputs: &[&Plane]) -> Option<Q8> {
    let (w, h) = (guide.width, guide.height);
    let wp = w.div_ceil(8) * 8;
    let planes: Vec<&Plane> = std::iter::once(guide)
        .chain(inputs.iter().copied())
        .collect();
    let mut data = DATA.take();
    data.resize(planes.len() * h * wp, 0);
    let ok = data.par_chunks_mut(wp).enumerate().all(|(i, out)| {
        let (plane, y) = (i / h, i % h);
        out[w..].fill(0);
        to_u8(&planes[plane].data[y * w..(y + 1) * w], &mut out[..w])
    });
    if !ok {
        DATA.set(data);
        return None;
    }
    Some(Q8 { w, h, wp, data })
}

/// `out[x] = k` where `src[x]` is the 8-bit sample k (within [`TOL`] of k/255); false as soon
/// as a row holds a sample that is not one (`out` is then unspecified).
fn to_u8(src: &[f32], out: &mut [u8]) -> bool {
    let n = src.len().min(out.len());
    let (src, out) = (&src[..n], &mut out[..n]);
    let mut x = 0;
    // SAFETY: x + 8 ≤ n bounds every load and store; AVX2 is enabled at compile time.
    let bad = unsafe {
        let (k255, inv255) = (_mm256_set1_ps(255.0), _mm256_set1_ps(1.0 / 255.0));
        let (lo, hi) = (_mm256_setzero_ps(), k255);
        let tol = _mm256_set1_ps(TOL);
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let ones = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        let mut bad = _mm256_setzero_ps();
        while x + 8 <= n {
            let v = _mm256_loadu_ps(src.as_ptr().add(x));
            let k = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(v, k255),
            );
            let dev = _mm256_and_ps(_mm256_sub_ps(v, _mm256_mul_ps(k, inv255)), abs);
            // Each test is false for NaN, so NaN samples are not 8-bit samples.
            let ok = _mm256_and_ps(
                _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GE_OQ>(k, lo),
                    _mm256_cmp_ps::<_CMP_LE_OQ>(k, hi),
                ),
                _mm256_cmp_ps::<_CMP_LE_OQ>(dev, tol),
            );
            bad = _mm256_or_ps(bad, _mm256_andnot_ps(ok, ones));
            let ki = _mm256_cvtps_epi32(k);
            let w16 = _mm_packus_epi32(
                _mm256_castsi256_si128(ki),
                _mm256_extracti128_si256::<1>(ki),
            );
            _mm_storel_epi64(
                out.as_mut_ptr().add(x) as *mut __m128i,
                _mm_packus_epi16(w16, w16),
            );
            x += 8;
        }
        _mm256_movemask_ps(bad) != 0
    };
    let mut ok = !bad;
    for (o, &v) in out[x..].iter_mut().zip(&src[x..]) {
        let k = (v * 255.0).round_ties_even();
        ok &= (0.0..=255.0).contains(&k) && (v - k * (1.0 / 255.0)).abs() <= TOL;
        *o = k as u8;
    }
    ok
}

thread_local! {
    /// The last [`Q8`]'s samples, reused by the next [`quantize`] on this thread (fresh pages
    /// cost a fault each).
    static DATA: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Hands `q`'s buffer back for the next [`quantize`] on this thread.
pub(super) fn recycle(q: Q8) {
    DATA.set(q.data);
}

/// Fixed-point scale of one eps at one radius: a and b are stored as round(a·2^f),
/// round(b·2^f).
#[derive(Clone, Copy, Debug)]
pub(super) struct Fixed {
    /// 2^f and 2^-f.
    scale: f64,
    inv_scale: f32,
}

/// The fixed-point scale for radius `r` and `eps` on a `w`×`h` plane, or `None` when the path
/// cannot meet [`MAX_ERR`] there (see [`precision`]).
pub(super) fn fixed(r: usize, eps: f32, w: usize, h: usize) -> Option<Fixed> {
    let (f, err) = precision(r, eps, w, h)?;
    (f >= 0 && err <= MAX_ERR).then(|| Fixed {
        scale: 2f64.powi(f),
        inv_scale: 2f32.powi(-f),
    })
}

/// The exponent f of the fixed-point scale and the worst-case error of the output,
/// 2·2^-(f+1) (a and b) + f32 rounding, or `None` where the statistics could overflow.
///
/// With samples in [0,1], |cov| ≤ √(var_I·var_p) and var_p ≤ 1/4, so |a| = |cov|/(var_I + eps)
/// ≤ 1/(4√eps) (the maximum over var_I, at var_I = eps), and |b| = |mean p − a·mean I| ≤ 1 +
/// |a|. A window holds at most n = min(2r+1, w)·min(2r+1, h) values, each rounded by at most
/// 1/2, so f is the largest with n·(bound·2^f + 1/2) < 2^31.
fn precision(r: usize, eps: f32, w: usize, h: usize) -> Option<(i32, f64)> {
    if r > MAX_RADIUS || !(eps.is_finite() && eps > 0.0) {
        return None;
    }
    let n = ((2 * r + 1).min(w) * (2 * r + 1).min(h)) as f64;
    // 1 % margin over the bound, for the f64 rounding of a and b.
    let bound = 1.01 * (1.0 + 1.0 / (4.0 * (eps as f64).sqrt()));
    let limit = 2f64.powi(31) - 1.0;
    let f = ((limit / n - 0.5) / bound).log2().floor().min(30.0) as i32;
    Some((f, 2f64.powi(-f) + F32_ERR_PER_A * bound))
}

thread_local! {
    /// [`strip`]'s buffers (the coefficient ring is megabytes at large radii), reused by the
    /// next call on this thread: every value is written before it is read.
    static BUFS: std::cell::Cell<Vec<i32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs the filter on output rows `[y0, y1)`: `outs[e·nc + c]` are those rows of each output
/// (`(y1 − y0)·w` samples), `fx[e]` the scales of `eps[e]`. Same structure as the float path's
/// `guided_strip`: the statistics' column sums move down a row (from the 8-bit rows), a row
/// pass makes the coefficients into a ring of 2r+2 rows, their column sums move down the
/// same way and a second row pass makes the output.
pub(super) fn strip(
    q: &Q8,
    nc: usize,
    r: usize,
    eps: &[f32],
    fx: &[Fixed],
    (y0, y1): (usize, usize),
    outs: &mut [&mut [f32]],
) {
    match (nc, eps.len()) {
        (1, 1) => strip_n::<1, 1>(q, r, eps, fx, (y0, y1), outs),
        (1, 2) => strip_n::<1, 2>(q, r, eps, fx, (y0, y1), outs),
        (2, 1) => strip_n::<2, 1>(q, r, eps, fx, (y0, y1), outs),
        (2, 2) => strip_n::<2, 2>(q, r, eps, fx, (y0, y1), outs),
        (3, 1) => strip_n::<3, 1>(q, r, eps, fx, (y0, y1), outs),
        (3, 2) => strip_n::<3, 2>(q, r, eps, fx, (y0, y1), outs),
        _ => unreachable!("the caller admits 1..=3 inputs and 1..=2 eps"),
    }
}

fn strip_n<const NC: usize, const NE: usize>(
    q: &Q8,
    r: usize,
    eps: &[f32],
    fx: &[Fixed],
    (y0, y1): (usize, usize),
    outs: &mut [&mut [f32]],
) {
    let (w, h, wp) = (q.w, q.h, q.wp);
    assert!(eps.len() == NE && fx.len() == NE && outs.len() == NC * NE);
    assert!(r <= MAX_RADIUS && y0 <= y1 && y1 <= h);
    assert!(outs.iter().all(|o| o.len() == (y1 - y0) * w));
    let nq = 2 + 2 * NC;
    let nk = 2 * NC * NE;
    // Column-sum rows: [pad zeros | wp columns | pad zeros], pad ≥ r + 1 on the left, ≥ r + 8
    // on the right, so every window read of the row passes is in bounds.
    let pad = (r + 1).div_ceil(8) * 8;
    let len = pad + wp + r + 8;
    let ring_len = (2 * r + 2).min(h + 1);
    let mut buf = BUFS.take();
    let sums_len = (nq + nk) * len;
    let total = sums_len + (ring_len + 1) * nk * wp;
    buf.resize(buf.len().max(total), 0);
    // The column sums start at zero; ring rows are written before they are read.
    buf[..sums_len].fill(0);
    buf[total - nk * wp..total].fill(0);
    let buf_all = &mut buf[..total];
    let (sums, ring) = buf_all.split_at_mut(sums_len);
    let (stats, coefs) = sums.split_at_mut(nq * len);
    // The last ring row set stays zero: it is what "leaves" when no row does.
    let (ring, zero_row) = ring.split_at_mut(ring_len * nk * wp);
    let zero_u8 = vec![0u8; wp];

    // 1/(window columns), 0 on the padding columns past the width.
    let mut inv_nx = inv_counts(w, r);
    inv_nx.resize(wp, 0.0);
    let mut inv64 = vec![0f64; wp];
    // The 1/N rows above are filled for these 1/(window rows) (NaN: not yet).
    let (mut inv64_ny, mut inv32_ny) = (f64::NAN, f64::NAN);
    let mut tmp = vec![0i32; nq * wp];
    let mut inv32 = vec![0f32; wp];
    let mut gf = vec![0f32; wp];

    let coef_start = y0.saturating_sub(r);
    let mut swin = Window::new(h, r, coef_start.saturating_sub(r));
    let mut cwin = Window::new(h, r, coef_start);
    for y in y0..y1 {
        while let Some((enter, leave)) = cwin.step(y) {
            if let Some(yc) = enter {
                while let Some((si, so)) = swin.step(yc) {
                    let row = |p: usize, y: Option<usize>| y.map_or(&zero_u8[..], |y| q.row(p, y));
                    let g = (row(0, si), row(0, so));
                    let p: [(&[u8], &[u8]); NC] =
                        std::array::from_fn(|c| (row(1 + c, si), row(1 + c, so)));
                    stats_step::<NC>(stats, len, pad, wp, g, &p);
                }
                // 1/N per column changes only where the window is cut by the top or bottom.
                let iny = swin.inv_n();
                if iny != inv64_ny {
                    inv64_ny = iny;
                    fill_inv(&mut inv64, &inv_nx, iny);
                }
                let slot = &mut ring[(yc % ring_len) * nk * wp..][..nk * wp];
                coefs_row::<NC, NE>(stats, (len, pad, wp, r), &inv64, eps, fx, &mut tmp, slot);
            }
            let slot = |y: Option<usize>| match y {
                Some(y) => &ring[(y % ring_len) * nk * wp..][..nk * wp],
                None => &zero_row[..],
            };
            let (si, so) = (slot(enter), slot(leave));
            coef_step(coefs, len, pad, wp, nk, si, so);
        }
        let iny = cwin.inv_n();
        if iny != inv32_ny {
            inv32_ny = iny;
            for (d, &n) in inv32.iter_mut().zip(&inv_nx) {
                *d = (n * iny) as f32;
            }
        }
        for (d, &v) in gf.iter_mut().zip(q.row(0, y)) {
            *d = v as f32 * (1.0 / 255.0);
        }
        apply_row::<NC, NE>(
            coefs,
            (len, pad, w, r),
            (&inv32, fx),
            &gf,
            outs,
            (y - y0) * w,
        );
    }
    BUFS.set(buf);
}

/// In-register window sums of eight columns: d = s[x+r] − s[x−r−1], prefix-summed across the
/// lanes and added to the carried sum (wrapping i32, exact while the true sums fit). The carry
/// (the window sum of the column before, in every lane) moves on by d's total, so the chain
/// from one step to the next is a single add.
///
/// # Safety
/// `sp` must be valid for reads of `[x−r−1, x+r+8)`; `last` is seven in every lane (the
/// index that broadcasts the last lane, passed in so loops load it once).
#[inline(always)]
unsafe fn scan8(sp: *const i32, x: usize, r: usize, carry: &mut __m256i, last: __m256i) -> __m256i {
    // SAFETY: the caller bounds the offsets; AVX2 is enabled at compile time.
    unsafe {
        let d = _mm256_sub_epi32(
            _mm256_loadu_si256(sp.add(x + r) as *const __m256i),
            _mm256_loadu_si256(sp.add(x - r - 1) as *const __m256i),
        );
        let d = _mm256_add_epi32(d, _mm256_slli_si256::<4>(d));
        let d = _mm256_add_epi32(d, _mm256_slli_si256::<8>(d));
        // Lane 3's sum carried into the upper four lanes.
        let lo = _mm256_permute2x128_si256::<0x08>(d, d);
        let d = _mm256_add_epi32(d, _mm256_shuffle_epi32::<0xFF>(lo));
        let sum = _mm256_add_epi32(d, *carry);
        *carry = _mm256_add_epi32(*carry, _mm256_permutevar8x32_epi32(d, last));
        sum
    }
}

/// The carry [`scan8`] starts a row from: the window sum of column −1, i.e. of columns
/// `[0, r)` (the padding adds zeros), in every lane.
///
/// # Safety
/// `s` must be valid for reads of `r` values.
#[inline(always)]
unsafe fn carry_start(s: *const i32, r: usize) -> __m256i {
    // SAFETY: as documented.
    let t = (0..r).fold(0i32, |t, i| t.wrapping_add(unsafe { *s.add(i) }));
    // SAFETY: AVX2 is enabled at compile time.
    unsafe { _mm256_set1_epi32(t) }
}

/// Window sums along x of two column-sum rows at once (two independent carry chains), for
/// the columns `[0, wp)`: `out0[x]`, `out1[x]`.
///
/// # Safety
/// `s0`, `s1` must be valid for reads of `[−r−1, wp + r + 8)` (the padded rows, offset to
/// column 0); `out0`, `out1` for writes of `wp`; `wp` a multiple of 8.
#[inline(always)]
unsafe fn scan_pair(
    (s0, s1): (*const i32, *const i32),
    (out0, out1): (*mut i32, *mut i32),
    r: usize,
    wp: usize,
) {
    // SAFETY: as documented.
    unsafe {
        let (mut c0, mut c1) = (carry_start(s0, r), carry_start(s1, r));
        let last = _mm256_set1_epi32(7);
        let mut x = 0;
        while x < wp {
            let v0 = scan8(s0, x, r, &mut c0, last);
            let v1 = scan8(s1, x, r, &mut c1, last);
            _mm256_storeu_si256(out0.add(x) as *mut __m256i, v0);
            _mm256_storeu_si256(out1.add(x) as *mut __m256i, v1);
            x += 8;
        }
    }
}

/// Eight 8-bit samples as i32 lanes.
///
/// # Safety
/// `p` must be valid for reads of 8 bytes.
#[inline(always)]
unsafe fn load8(p: *const u8) -> __m256i {
    // SAFETY: as documented.
    unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)) }
}

/// Adds the statistics of the entering rows (`.0`) and subtracts those of the leaving rows
/// (`.1`, zero rows when none): column sums of I, I², then p and I·p per input.
fn stats_step<const NC: usize>(
    stats: &mut [i32],
    len: usize,
    pad: usize,
    wp: usize,
    g: (&[u8], &[u8]),
    p: &[(&[u8], &[u8]); NC],
) {
    assert!(stats.len() == (2 + 2 * NC) * len && pad + wp <= len);
    assert!(g.0.len() >= wp && g.1.len() >= wp);
    assert!(p.iter().all(|(a, b)| a.len() >= wp && b.len() >= wp));
    let sp = stats.as_mut_ptr();
    // SAFETY: x + 8 ≤ wp bounds every row read, pad + wp ≤ len every column-sum access.
    unsafe {
        let mut x = 0;
        while x < wp {
            let gi = load8(g.0.as_ptr().add(x));
            let go = load8(g.1.as_ptr().add(x));
            let upd = |k: usize, d: __m256i| {
                let a = sp.add(k * len + pad + x) as *mut __m256i;
                _mm256_storeu_si256(a, _mm256_add_epi32(_mm256_loadu_si256(a), d));
            };
            upd(0, _mm256_sub_epi32(gi, go));
            upd(
                1,
                _mm256_sub_epi32(_mm256_mullo_epi32(gi, gi), _mm256_mullo_epi32(go, go)),
            );
            for (c, (pin, pout)) in p.iter().enumerate() {
                let pi = load8(pin.as_ptr().add(x));
                let po = load8(pout.as_ptr().add(x));
                upd(2 + 2 * c, _mm256_sub_epi32(pi, po));
                upd(
                    3 + 2 * c,
                    _mm256_sub_epi32(_mm256_mullo_epi32(gi, pi), _mm256_mullo_epi32(go, po)),
                );
            }
            x += 8;
        }
    }
}

/// Adds ring row set `si` and subtracts `so` (each `nk` rows of `wp`) to the coefficient
/// column sums.
fn coef_step(
    coefs: &mut [i32],
    len: usize,
    pad: usize,
    wp: usize,
    nk: usize,
    si: &[i32],
    so: &[i32],
) {
    assert!(coefs.len() == nk * len && pad + wp <= len);
    assert!(si.len() >= nk * wp && so.len() >= nk * wp);
    for k in 0..nk {
        let acc = &mut coefs[k * len + pad..][..wp];
        let (i, o) = (&si[k * wp..][..wp], &so[k * wp..][..wp]);
        for x in 0..wp {
            acc[x] = acc[x].wrapping_add(i[x].wrapping_sub(o[x]));
        }
    }
}

/// One ring row set of coefficients from the statistics' column sums: window sums along x
/// (into `tmp`, one row per statistic), then means (1/N per column in `inv`, 0 past the
/// width), var, cov, and a and b per eps and input in fixed point,
/// `out[(2·(e·NC + c) + j)·wp ..]` with j = 0 for a, 1 for b.
#[allow(clippy::too_many_arguments)]
fn coefs_row<const NC: usize, const NE: usize>(
    stats: &[i32],
    (len, pad, wp, r): (usize, usize, usize, usize),
    inv: &[f64],
    eps: &[f32],
    fx: &[Fixed],
    tmp: &mut [i32],
    out: &mut [i32],
) {
    let nq = 2 + 2 * NC;
    assert!(stats.len() == nq * len && pad > r && pad + wp + r + 8 <= len && wp % 8 == 0);
    assert!(inv.len() >= wp && tmp.len() >= nq * wp && out.len() >= 2 * NC * NE * wp);
    assert!(eps.len() == NE && fx.len() == NE);
    let sp = stats.as_ptr();
    let tp = tmp.as_mut_ptr();
    let op = out.as_mut_ptr();
    // SAFETY: the scans read [pad − r − 1, pad + wp + r + 8) ⊂ [0, len) of each row and write
    // tmp rows k < nq; the second loop reads tmp and writes out rows k < 2·NC·NE at
    // [x, x + 4) with x + 4 ≤ wp.
    unsafe {
        for k in (0..nq).step_by(2) {
            let s = (sp.add(k * len + pad), sp.add((k + 1) * len + pad));
            scan_pair(s, (tp.add(k * wp), tp.add((k + 1) * wp)), r, wp);
        }
        let zero = _mm256_setzero_pd();
        let one = _mm256_set1_pd(1.0);
        let ep: [__m256d; NE] = std::array::from_fn(|e| _mm256_set1_pd(eps[e] as f64));
        let sc: [__m256d; NE] = std::array::from_fn(|e| _mm256_set1_pd(fx[e].scale));
        let (k1, k2) = (_mm256_set1_pd(1.0 / 255.0), _mm256_set1_pd(1.0 / 65025.0));
        let mut x = 0;
        while x < wp {
            // Sums of k = 255·v for I and p, of 255²·v for I² and I·p.
            let iv = _mm256_loadu_pd(inv.as_ptr().add(x));
            let (iv1, iv2) = (_mm256_mul_pd(iv, k1), _mm256_mul_pd(iv, k2));
            let mean = |k: usize| {
                let v = _mm256_cvtepi32_pd(_mm_loadu_si128(tp.add(k * wp + x) as *const __m128i));
                _mm256_mul_pd(v, if k.is_multiple_of(2) { iv1 } else { iv2 })
            };
            let mi = mean(0);
            let var = _mm256_max_pd(_mm256_sub_pd(mean(1), _mm256_mul_pd(mi, mi)), zero);
            // 2^f/(var + eps) per eps; with two eps, one division serves both.
            let mut id = [zero; NE];
            if NE == 2 {
                let (d0, d1) = (_mm256_add_pd(var, ep[0]), _mm256_add_pd(var, ep[NE - 1]));
                let q = _mm256_div_pd(one, _mm256_mul_pd(d0, d1));
                id[0] = _mm256_mul_pd(_mm256_mul_pd(d1, q), sc[0]);
                id[NE - 1] = _mm256_mul_pd(_mm256_mul_pd(d0, q), sc[NE - 1]);
            } else {
                id[0] = _mm256_div_pd(sc[0], _mm256_add_pd(var, ep[0]));
            }
            for c in 0..NC {
                let mp = mean(2 + 2 * c);
                let cov = _mm256_sub_pd(mean(3 + 2 * c), _mm256_mul_pd(mi, mp));
                for e in 0..NE {
                    // a·2^f and b·2^f = mean(p)·2^f − a·2^f·mean(I).
                    let a = _mm256_mul_pd(cov, id[e]);
                    let b = _mm256_fnmadd_pd(a, mi, _mm256_mul_pd(mp, sc[e]));
                    let k = 2 * (e * NC + c);
                    _mm_storeu_si128(op.add(k * wp + x) as *mut __m128i, _mm256_cvtpd_epi32(a));
                    _mm_storeu_si128(
                        op.add((k + 1) * wp + x) as *mut __m128i,
                        _mm256_cvtpd_epi32(b),
                    );
                }
            }
            x += 4;
        }
    }
}

/// Output row at `off` of every (eps, input) from the coefficients' column sums:
/// q = mean(a)·I + mean(b), one (eps, input) at a time along the row; `scale[e]` holds
/// 1/N·2^-fa and 1/N·2^-fb per column, `gf` the guide row as f32; the last chunk is stored only
/// up to the width.
#[allow(clippy::too_many_arguments)]
fn apply_row<const NC: usize, const NE: usize>(
    coefs: &[i32],
    (len, pad, w, r): (usize, usize, usize, usize),
    (inv, fx): (&[f32], &[Fixed]),
    gf: &[f32],
    outs: &mut [&mut [f32]],
    off: usize,
) {
    let nk = 2 * NC * NE;
    let wp = gf.len();
    assert!(coefs.len() == nk * len && pad > r && pad + wp + r + 8 <= len);
    assert!(wp.is_multiple_of(8) && w <= wp && wp < w + 8 && fx.len() == NE && inv.len() >= wp);
    assert!(outs.len() == NC * NE && outs.iter().all(|o| o.len() >= off + w));
    let sp = coefs.as_ptr();
    // SAFETY: reads as in coefs_row; stores of full chunks lie in [off, off + w), the last
    // chunk is masked to the columns below w.
    unsafe {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let tail = w / 8 * 8;
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((w - tail) as i32), lanes);
        for (e, fx) in fx.iter().enumerate() {
            let is = _mm256_set1_ps(fx.inv_scale);
            for c in 0..NC {
                let p = e * NC + c;
                let (s0, s1) = (sp.add(2 * p * len + pad), sp.add((2 * p + 1) * len + pad));
                let (mut ca, mut cb) = (carry_start(s0, r), carry_start(s1, r));
                let last = _mm256_set1_epi32(7);
                let dst = outs[p].as_mut_ptr().add(off);
                let mut x = 0;
                while x < wp {
                    let sa = scan8(s0, x, r, &mut ca, last);
                    let sb = scan8(s1, x, r, &mut cb, last);
                    // q = (Σa·I + Σb)·2^-f/N.
                    let g = _mm256_loadu_ps(gf.as_ptr().add(x));
                    let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sa), g, _mm256_cvtepi32_ps(sb));
                    let f = _mm256_mul_ps(_mm256_loadu_ps(inv.as_ptr().add(x)), is);
                    let qv = _mm256_mul_ps(t, f);
                    if x < tail {
                        _mm256_storeu_ps(dst.add(x), qv);
                    } else {
                        _mm256_maskstore_ps(dst.add(x), mask, qv);
                    }
                    x += 8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bank_takes_the_integer_path_within_its_error_bound() {
        // Every radius and eps of the paper's bank at 1080p is admitted; the largest bound is
        // at r = 32, eps = 1e-4 (f = 14).
        let mut worst: f64 = 0.0;
        for &r in &super::super::BANK_RADII {
            for &eps in &super::super::BANK_EPS {
                assert!(fixed(r, eps, 1920, 1080).is_some(), "r={r} eps={eps}");
                let (f, err) = precision(r, eps, 1920, 1080).unwrap();
                assert!(
                    f >= 14 && err <= MAX_ERR,
                    "r={r} eps={eps}: f={f} err={err}"
                );
                worst = worst.max(err);
            }
        }
        assert!((6.0e-5..7.5e-5).contains(&worst), "{worst}");
        // Narrow planes hold fewer values per window, so their scale is finer.
        let (_, narrow) = precision(32, 1e-4, 5, 1080).unwrap();
        assert!(narrow < worst);
        // Out of reach: too large a radius for exact statistics, or too small an eps.
        assert!(fixed(MAX_RADIUS + 1, 1e-3, 1920, 1080).is_none());
        assert!(fixed(8, 1e-9, 1920, 1080).is_none());
        assert!(fixed(8, 0.0, 1920, 1080).is_none());
    }

    #[test]
    fn eight_bit_samples_are_recognised_in_every_f32_form() {
        let k: Vec<u8> = (0..=255).collect();
        for form in [
            |k: u8| k as f32 / 255.0,
            |k: u8| k as f32 * (1.0 / 255.0),
            // The residue channel: a difference of two converted samples.
            |k: u8| (k as f32 * (1.0 / 255.0) + 0.5) - 0.5,
        ] {
            let src: Vec<f32> = k.iter().map(|&k| form(k)).collect();
            let mut out = vec![0u8; src.len()];
            assert!(to_u8(&src, &mut out));
            assert_eq!(out, k);
        }
        for bad in [0.5 / 255.0, -1.0 / 255.0, 256.0 / 255.0, f32::NAN] {
            let mut src = vec![0.0f32; 20];
            src[13] = bad;
            assert!(!to_u8(&src, &mut [0u8; 20]), "{bad}");
        }
    }
}
