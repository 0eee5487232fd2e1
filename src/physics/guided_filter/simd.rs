//! AVX2 kernels of the guided filter's row passes (window means along x, fused statistics →
//! coefficients and output passes).

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
