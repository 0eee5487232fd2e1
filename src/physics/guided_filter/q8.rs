//! The guided filter on 8-bit data, in exact integer arithmetic (AVX2 builds only).
//!
//! Camera frames are 8-bit, and so are the guide (the residue channel, a difference of two
//! 8-bit samples) and the inputs of the decomposition bank on them. When every sample of the
//! guide and the inputs is a multiple of 1/255 (within [`TOL`], which covers every f32 route
//! from 8-bit data: `v·(1/255)`, `v/255`, differences of those), the filter runs on the
//! integers `k = 255·v` instead of on f64:
//!
//! - **Statistics, exact.** I, I², p and I·p are integers (I·p ≤ 65025); their column and
//!   window sums are i32 sums, exact for radii up to [`MAX_RADIUS`]. N²·var and N²·cov are
//!   exact integers in f64 (no cancellation); the rest of the coefficient math is f32, eight
//!   lanes (see [`coefs_row`]).
//! - **Coefficients, fixed point.** a and b are rounded to multiples of 2^-f, with f the largest
//!   that keeps every window sum of them inside i32 (|a| ≤ 1/(4√eps) and |b| ≤ 1 + |a| on
//!   [0, 1] data, see [`Fixed`]); their column and window sums are then exact i32 sums too. The
//!   rounding is the main error of the path: at most 2^-(f+1) in mean(a) and in mean(b), plus
//!   the f32 rounding of a and b before it and of q. A radius and eps whose bound exceeds
//!   [`MAX_ERR`] (at the bank's largest, r = 32 and eps = 1e-4, it is 8.5e-5) take the float
//!   path instead.
//! - **Eight columns per instruction.** Everything is i32 lanes (the float path is f64, four);
//!   the window sums along x are an in-register prefix sum of s[x+r] − s[x−r−1] as there.
//! - **No border code.** The column-sum rows carry zero padding of r+1 columns on both sides,
//!   so the in-image part of every window is summed by the same loop; 1/N per column does the
//!   rest, and is 0 on the columns past the width (the rows are padded to a multiple of 8).

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::{Window, inv_counts, window_count};
use crate::frame::Plane;

/// Largest |v − k/255| accepted as the 8-bit sample k (4 ulp of 1.0 in f32).
pub(super) const TOL: f32 = 4.0 * f32::EPSILON;
/// Largest radius whose window sums of I² (≤ 65025 each) fit i32: (2r+1)² · 65025 < 2^31.
pub(super) const MAX_RADIUS: usize = 90;
/// Largest worst-case error of the path accepted for a radius and eps (the float path
/// promises 1e-4 against the f64 reference).
pub(super) const MAX_ERR: f64 = 9e-5;
/// Bound on the f32 rounding of q = mean(a)·I + mean(b), per unit of the bound on |a| (a few
/// roundings of values up to |mean a|, |mean b| ≤ 1 + |a|), added to the fixed-point bound.
const F32_ERR_PER_A: f64 = 3e-7;
/// Bound on the f32 rounding of a and b before they are rounded to fixed point, per unit of the
/// bound on |a| (see [`coefs_row`]): a = cov·(1/d) is three roundings of a value up to |a|
/// (3·2^-24·|a|); b·2^f = (S_p·2^f − a·2^f·S₁)/(255N) carries a's error times mean(I) ≤ 1 and
/// three roundings of a value up to 1 + |a|; 9·2^-24 ≈ 5.4e-7 in all, rounded up.
const COEF_F32_ERR_PER_A: f64 = 6e-7;

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
/// 2·2^-(f+1) (the rounding of a and b to fixed point) + f32 rounding (of a and b before it,
/// and of q), or `None` where the statistics could overflow.
///
/// With samples in [0, 1], |cov| ≤ √(var_I·var_p) and var_p ≤ 1/4, so |a| = |cov|/(var_I + eps)
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
    Some((
        f,
        2f64.powi(-f) + (F32_ERR_PER_A + COEF_F32_ERR_PER_A) * bound,
    ))
}

thread_local! {
    /// [`strip`]'s buffers (the coefficient ring is megabytes at large radii), reused by the
    /// next call on this thread: every value is written before it is read.
    static BUFS: std::cell::Cell<Vec<i32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs the filter on output rows `[y0, y1)`: `outs[e·nc + c]` are those rows of each output
/// (`(y1 − y0)·w` samples), `fx[e]` the scales of `eps[e]`. Same structure as the float path's
/// `guided_strip`: the statistics' column sums move down a row (from the 8-bit rows), a row
/// pass makes the coefficients into a ring of 2r+1 rows and moves their column sums down in
/// the same pass (the entering row takes the leaving row's slot), and a second row pass makes
/// the output.
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
    // A ring of 2r+1 coefficient row sets: the row entering the window takes the slot of the
    // row leaving it, in the same pass.
    let ring_len = (2 * r + 1).min(h);
    let mut buf = BUFS.take();
    let sums_len = (nq + nk) * len;
    let total = sums_len + ring_len * nk * wp;
    buf.resize(buf.len().max(total), 0);
    // The column sums start at zero; ring rows are written before they are read.
    buf[..sums_len].fill(0);
    let (sums, ring) = buf[..total].split_at_mut(sums_len);
    let (stats, coefs) = sums.split_at_mut(nq * len);
    let zero_u8 = vec![0u8; wp];
    // The ring slot of coefficient row y.
    let slot_of = |y: usize| (y % ring_len) * nk * wp..(y % ring_len + 1) * nk * wp;

    // Window columns and their inverses, 0 on the padding columns past the width.
    let nx: Vec<f64> = (0..wp)
        .map(|x| {
            if x < w {
                window_count(x, w, r) as f64
            } else {
                0.0
            }
        })
        .collect();
    let mut inv_nx = inv_counts(w, r);
    inv_nx.resize(wp, 0.0);
    let mut cols = CoefCols::<NE>::new(wp);
    // `cols` and `inv32` are filled for windows of these many rows (0: not yet).
    let (mut cols_ny, mut inv32_ny) = (0, 0);
    let mut tmp = vec![0i32; nq * wp];
    // 2^-f/N per eps and column for the output pass (`NE` rows of `wp`).
    let mut inv32 = vec![0f32; NE * wp];
    let mut gf = vec![0f32; wp];

    let coef_start = y0.saturating_sub(r);
    let mut swin = Window::new(h, r, coef_start.saturating_sub(r));
    let mut cwin = Window::new(h, r, coef_start);
    for y in y0..y1 {
        while let Some((enter, leave)) = cwin.step(y) {
            let Some(yc) = enter else {
                // Near the bottom rows only leave.
                if let Some(l) = leave {
                    let slot = &ring[slot_of(l)];
                    sub_rows(coefs, len, pad, wp, nk, slot);
                }
                continue;
            };
            while let Some((si, so)) = swin.step(yc) {
                let row = |p: usize, y: Option<usize>| y.map_or(&zero_u8[..], |y| q.row(p, y));
                let g = (row(0, si), row(0, so));
                let p: [(&[u8], &[u8]); NC] =
                    std::array::from_fn(|c| (row(1 + c, si), row(1 + c, so)));
                stats_step::<NC>(stats, len, pad, wp, g, &p);
            }
            // N per column changes only where the window is cut by the top or bottom.
            if swin.rows() != cols_ny {
                cols_ny = swin.rows();
                cols.fill(&nx, cols_ny, r, eps, fx);
            }
            // In the steady state the leaving row is the one in the entering row's slot; when
            // none leaves, the slot is cleared so that it subtracts nothing.
            assert!(leave.is_none_or(|l| l % ring_len == yc % ring_len));
            let slot = &mut ring[slot_of(yc)];
            if leave.is_none() {
                slot.fill(0);
            }
            coefs_row::<NC, NE>(stats, (len, pad, wp, r), &cols, &mut tmp, slot, coefs);
        }
        if cwin.rows() != inv32_ny {
            inv32_ny = cwin.rows();
            let iny = cwin.inv_n();
            for (row, fx) in inv32.chunks_exact_mut(wp).zip(fx) {
                for (d, &n) in row.iter_mut().zip(&inv_nx) {
                    *d = (n * iny) as f32 * fx.inv_scale;
                }
            }
        }
        for (d, &v) in gf.iter_mut().zip(q.row(0, y)) {
            *d = v as f32 * (1.0 / 255.0);
        }
        apply_row::<NC, NE>(coefs, (len, pad, w, r), &inv32, &gf, outs, (y - y0) * w);
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
/// the columns `[0, wp)`: column x at `out0[x·stride + x mod 8]`, `out1[…]` (eight columns
/// per block, blocks `8·stride` apart).
///
/// # Safety
/// `s0`, `s1` must be valid for reads of `[−r−1, wp + r + 8)` (the padded rows, offset to
/// column 0); `out0`, `out1` for writes of the blocks; `wp` a multiple of 8.
#[inline(always)]
unsafe fn scan_pair(
    (s0, s1): (*const i32, *const i32),
    (out0, out1): (*mut i32, *mut i32),
    r: usize,
    wp: usize,
    stride: usize,
) {
    // SAFETY: as documented.
    unsafe {
        let (mut c0, mut c1) = (carry_start(s0, r), carry_start(s1, r));
        let last = _mm256_set1_epi32(7);
        let mut x = 0;
        while x < wp {
            let v0 = scan8(s0, x, r, &mut c0, last);
            let v1 = scan8(s1, x, r, &mut c1, last);
            _mm256_storeu_si256(out0.add(x * stride) as *mut __m256i, v0);
            _mm256_storeu_si256(out1.add(x * stride) as *mut __m256i, v1);
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
        let upd = |k: usize, x: usize, d: __m256i| {
            let a = sp.add(k * len + pad + x) as *mut __m256i;
            _mm256_storeu_si256(a, _mm256_add_epi32(_mm256_loadu_si256(a), d));
        };
        // One pass for the guide, one per input: few streams each.
        let mut x = 0;
        while x < wp {
            let gi = load8(g.0.as_ptr().add(x));
            let go = load8(g.1.as_ptr().add(x));
            upd(0, x, _mm256_sub_epi32(gi, go));
            upd(
                1,
                x,
                _mm256_sub_epi32(_mm256_mullo_epi32(gi, gi), _mm256_mullo_epi32(go, go)),
            );
            x += 8;
        }
        for (c, (pin, pout)) in p.iter().enumerate() {
            let mut x = 0;
            while x < wp {
                let gi = load8(g.0.as_ptr().add(x));
                let go = load8(g.1.as_ptr().add(x));
                let pi = load8(pin.as_ptr().add(x));
                let po = load8(pout.as_ptr().add(x));
                upd(2 + 2 * c, x, _mm256_sub_epi32(pi, po));
                upd(
                    3 + 2 * c,
                    x,
                    _mm256_sub_epi32(_mm256_mullo_epi32(gi, pi), _mm256_mullo_epi32(go, po)),
                );
                x += 8;
            }
        }
    }
}

/// Subtracts ring row set `so` (`nk` rows of `wp`, laid out as in [`coefs_row`]) from the
/// coefficient column sums: a row leaving the window with none entering (the bottom rows).
fn sub_rows(coefs: &mut [i32], len: usize, pad: usize, wp: usize, nk: usize, so: &[i32]) {
    assert!(coefs.len() == nk * len && pad + wp <= len && so.len() >= nk * wp);
    for (xb, block) in so[..nk * wp].chunks_exact(8 * nk).enumerate() {
        for (k, v) in block.chunks_exact(8).enumerate() {
            let acc = &mut coefs[k * len + pad + 8 * xb..][..8];
            for (a, &o) in acc.iter_mut().zip(v) {
                *a = a.wrapping_sub(o);
            }
        }
    }
}

/// Per-column factors of the coefficient math for one window height (they change only where
/// the window is cut by the top or bottom): N, the number of samples in the window; eps·(255N)²
/// per eps; 1/(255N) and 2^f per eps in f32, both 0 on the padding columns past the width
/// (where a and b must come out 0). There N is (2r+1)², at least the true count, which keeps
/// N·ΣI² − (ΣI)² ≥ 0 and so every division finite.
struct CoefCols<const NE: usize> {
    n: Vec<f64>,
    eps_n2: [Vec<f64>; NE],
    inv_n: Vec<f32>,
    scale: [Vec<f32>; NE],
}

impl<const NE: usize> CoefCols<NE> {
    fn new(wp: usize) -> Self {
        Self {
            n: vec![0.0; wp],
            eps_n2: std::array::from_fn(|_| vec![0.0; wp]),
            inv_n: vec![0.0; wp],
            scale: std::array::from_fn(|_| vec![0.0; wp]),
        }
    }

    /// Fills the rows for windows of `ny` rows; `nx[x]` is the window's column count (0 on
    /// the padding).
    fn fill(&mut self, nx: &[f64], ny: usize, r: usize, eps: &[f32], fx: &[Fixed]) {
        let full = ((2 * r + 1) * (2 * r + 1)) as f64;
        for (x, &cx) in nx.iter().enumerate() {
            let valid = cx > 0.0;
            let n = if valid { cx * ny as f64 } else { full };
            self.n[x] = n;
            self.inv_n[x] = if valid {
                (1.0 / (255.0 * n)) as f32
            } else {
                0.0
            };
            for e in 0..NE {
                self.eps_n2[e][x] = eps[e] as f64 * (255.0 * n) * (255.0 * n);
                self.scale[e][x] = if valid { fx[e].scale as f32 } else { 0.0 };
            }
        }
    }
}

/// One ring row set of coefficients from the statistics' column sums: window sums along x
/// (into `tmp`, in blocks of eight columns as the slot), then a and b per eps and input in
/// fixed point, into `slot`: row k = 2·(e·NC + c) + j (j = 0 for a, 1 for b) in blocks of
/// eight columns (column x of row k at `x·nk + 8k + x mod 8`, so the slot is one stream).
///
/// With the window sums S of k = 255·v (S₁ of I, S₂ of I², S_p, S_Ip) and N samples,
/// N²·255²·var = N·S₂ − S₁² and N²·255²·cov = N·S_Ip − S₁·S_p are exact in f64 (integers
/// below 2^53), so a = cov/(var + eps) = (N·S_Ip − S₁·S_p)/(N·S₂ − S₁² + eps·(255N)²) loses
/// nothing to cancellation, and the rest can be f32 at eight lanes: a·2^f from the f32 forms
/// of the numerator and of 2^f/denominator, b·2^f = (S_p·2^f − a·2^f·S₁)/(255N). Their
/// rounding (a few f32 ulps of |a|, see [`COEF_F32_ERR_PER_A`]) is part of the error bound.
///
/// The new row is added to the coefficients' column sums `acc` at once, and the row set the
/// slot held (the one leaving the window, or zeros) is subtracted from them in the same pass.
fn coefs_row<const NC: usize, const NE: usize>(
    stats: &[i32],
    (len, pad, wp, r): (usize, usize, usize, usize),
    cols: &CoefCols<NE>,
    tmp: &mut [i32],
    slot: &mut [i32],
    acc: &mut [i32],
) {
    let nq = 2 + 2 * NC;
    let nk = 2 * NC * NE;
    assert!(stats.len() == nq * len && pad > r && pad + wp + r + 8 <= len && wp % 8 == 0);
    assert!(tmp.len() >= nq * wp && slot.len() >= nk * wp && acc.len() == nk * len);
    assert!(cols.n.len() >= wp && cols.inv_n.len() >= wp);
    assert!(cols.eps_n2.iter().all(|v| v.len() >= wp));
    assert!(cols.scale.iter().all(|v| v.len() >= wp));
    let sp = stats.as_ptr();
    let tp = tmp.as_mut_ptr();
    let op = slot.as_mut_ptr();
    let ap = acc.as_mut_ptr();
    // SAFETY: the scans read [pad − r − 1, pad + wp + r + 8) ⊂ [0, len) of each row and write
    // the blocks of tmp (nq·wp values); the second loop reads tmp and the column rows at
    // [x, x + 8), reads and writes the slot's blocks and acc rows k < nk at pad + [x, x + 8),
    // with x + 8 ≤ wp.
    unsafe {
        for k in (0..nq).step_by(2) {
            let s = (sp.add(k * len + pad), sp.add((k + 1) * len + pad));
            scan_pair(s, (tp.add(8 * k), tp.add(8 * (k + 1))), r, wp, nq);
        }
        let one = _mm256_set1_pd(1.0);
        let mut x = 0;
        while x < wp {
            let t = tp.add(x * nq);
            // Window sums of stat k, columns x + o .. x + o + 4, in f64.
            let sum = |k: usize, o: usize| {
                _mm256_cvtepi32_pd(_mm_loadu_si128(t.add(8 * k + o) as *const __m128i))
            };
            // Eight f64 lanes (two halves) to f32.
            let narrow = |lo: __m256d, hi: __m256d| {
                _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo))
            };
            let n = [
                _mm256_loadu_pd(cols.n.as_ptr().add(x)),
                _mm256_loadu_pd(cols.n.as_ptr().add(x + 4)),
            ];
            let s1 = [sum(0, 0), sum(0, 4)];
            // 2^f/(N·S₂ − S₁² + eps·(255N)²) per eps; with two eps one division serves both.
            let inv_d = |h: usize| {
                let var = _mm256_fmsub_pd(n[h], sum(1, 4 * h), _mm256_mul_pd(s1[h], s1[h]));
                let d: [__m256d; NE] = std::array::from_fn(|e| {
                    _mm256_add_pd(var, _mm256_loadu_pd(cols.eps_n2[e].as_ptr().add(x + 4 * h)))
                });
                if NE == 2 {
                    let q = _mm256_div_pd(one, _mm256_mul_pd(d[0], d[1]));
                    [_mm256_mul_pd(d[1], q), _mm256_mul_pd(d[0], q)]
                } else {
                    [_mm256_div_pd(one, d[0]); 2]
                }
            };
            let (lo, hi) = (inv_d(0), inv_d(1));
            let sc: [__m256; NE] =
                std::array::from_fn(|e| _mm256_loadu_ps(cols.scale[e].as_ptr().add(x)));
            let id: [__m256; NE] =
                std::array::from_fn(|e| _mm256_mul_ps(narrow(lo[e], hi[e]), sc[e]));
            let s1f = _mm256_cvtepi32_ps(_mm256_loadu_si256(t as *const __m256i));
            let inv_n = _mm256_loadu_ps(cols.inv_n.as_ptr().add(x));
            // Stores the eight values of row k into the slot and moves the column sums.
            let put = |k: usize, v: __m256i| {
                let s = op.add(x * nk + 8 * k) as *mut __m256i;
                let d = _mm256_sub_epi32(v, _mm256_loadu_si256(s));
                _mm256_storeu_si256(s, v);
                let a = ap.add(k * len + pad + x) as *mut __m256i;
                _mm256_storeu_si256(a, _mm256_add_epi32(_mm256_loadu_si256(a), d));
            };
            for c in 0..NC {
                let (p, ip) = (2 + 2 * c, 3 + 2 * c);
                let cov = |h: usize| {
                    _mm256_fmsub_pd(n[h], sum(ip, 4 * h), _mm256_mul_pd(s1[h], sum(p, 4 * h)))
                };
                let cov = narrow(cov(0), cov(1));
                let spf = _mm256_cvtepi32_ps(_mm256_loadu_si256(t.add(8 * p) as *const __m256i));
                for e in 0..NE {
                    // a·2^f, and b·2^f = (S_p·2^f − a·2^f·S₁)/(255N); 0 on the padding.
                    let a = _mm256_mul_ps(cov, id[e]);
                    let b =
                        _mm256_mul_ps(_mm256_fnmadd_ps(a, s1f, _mm256_mul_ps(spf, sc[e])), inv_n);
                    let k = 2 * (e * NC + c);
                    put(k, _mm256_cvtps_epi32(a));
                    put(k + 1, _mm256_cvtps_epi32(b));
                }
            }
            x += 8;
        }
    }
}

/// Output row at `off` of every (eps, input) from the coefficients' column sums:
/// q = mean(a)·I + mean(b), one (eps, input) at a time along the row; `inv[e·wp + x]` holds
/// 2^-f/N for eps e and column x, `gf` the guide row as f32; the last chunk is stored only up
/// to the width.
fn apply_row<const NC: usize, const NE: usize>(
    coefs: &[i32],
    (len, pad, w, r): (usize, usize, usize, usize),
    inv: &[f32],
    gf: &[f32],
    outs: &mut [&mut [f32]],
    off: usize,
) {
    let nk = 2 * NC * NE;
    let wp = gf.len();
    assert!(coefs.len() == nk * len && pad > r && pad + wp + r + 8 <= len);
    assert!(wp.is_multiple_of(8) && w <= wp && wp < w + 8 && inv.len() >= NE * wp);
    assert!(outs.len() == NC * NE && outs.iter().all(|o| o.len() >= off + w));
    let sp = coefs.as_ptr();
    // SAFETY: reads as in coefs_row; stores of full chunks lie in [off, off + w), the last
    // chunk is masked to the columns below w.
    unsafe {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let tail = w / 8 * 8;
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((w - tail) as i32), lanes);
        for e in 0..NE {
            let inv = inv.as_ptr().add(e * wp);
            for c in 0..NC {
                let p = e * NC + c;
                let (s0, s1) = (sp.add(2 * p * len + pad), sp.add((2 * p + 1) * len + pad));
                let (mut ca, mut cb) = (carry_start(s0, r), carry_start(s1, r));
                let last = _mm256_set1_epi32(7);
                let dst = outs[p].as_mut_ptr().add(off);
                // q = (Σa·I + Σb)·2^-f/N.
                let mut q = |x: usize| {
                    let sa = scan8(s0, x, r, &mut ca, last);
                    let sb = scan8(s1, x, r, &mut cb, last);
                    let g = _mm256_loadu_ps(gf.as_ptr().add(x));
                    let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sa), g, _mm256_cvtepi32_ps(sb));
                    _mm256_mul_ps(t, _mm256_loadu_ps(inv.add(x)))
                };
                let mut x = 0;
                while x < tail {
                    _mm256_storeu_ps(dst.add(x), q(x));
                    x += 8;
                }
                if x < wp {
                    _mm256_maskstore_ps(dst.add(x), mask, q(x));
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
        assert!((8.0e-5..8.6e-5).contains(&worst), "{worst}");
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
