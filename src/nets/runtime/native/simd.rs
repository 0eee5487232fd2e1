//! The inner loop of the native convolutions (`conv.rs`): one block of output columns for up
//! to 8 output channels, with AVX-512 (chosen at run time), AVX2 or plain FMA, all in the
//! same tap order so that every path gives the same bits.

use std::ops::Range;

/// Whether the AVX-512 path runs on this CPU (checked once).
pub(super) fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *WIDE.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
                && std::env::var("DERAIN_NO_AVX512").is_err()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Output channels `0..n` (n = b.len() ≤ 8) of columns `xs` (block-aligned) of one row.
#[allow(clippy::too_many_arguments)]
pub(super) fn block(
    buf: &[f32],
    ptrs: &[usize],
    w: &[f32],
    b: &[f32],
    wo_pad: usize,
    xs: Range<usize>,
    leaky: bool,
    wide: bool,
    row: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if wide {
            // SAFETY: `wide` is true only when the CPU has AVX-512F and FMA.
            unsafe {
                match b.len() {
                    8 => avx512::<8>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                    7 => avx512::<7>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                    6 => avx512::<6>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                    5 => avx512::<5>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                    4 => avx512::<4>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                    3 => avx512::<3>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                    2 => avx512::<2>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                    _ => avx512::<1>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                }
            }
            return;
        }
        #[cfg(all(target_feature = "avx2", target_feature = "fma"))]
        {
            match b.len() {
                4 => avx2::<4>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                3 => avx2::<3>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                2 => avx2::<2>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
                _ => avx2::<1>(buf, ptrs, w, b, wo_pad, xs, leaky, row),
            }
            return;
        }
    }
    #[allow(unreachable_code)]
    scalar(buf, ptrs, w, b, wo_pad, xs, leaky, row);
}

/// The same arithmetic without SIMD (one FMA per tap, same order).
#[allow(clippy::too_many_arguments)]
fn scalar(
    buf: &[f32],
    ptrs: &[usize],
    w: &[f32],
    b: &[f32],
    wo_pad: usize,
    xs: Range<usize>,
    leaky: bool,
    row: &mut [f32],
) {
    let taps = ptrs.len();
    for (j, &bj) in b.iter().enumerate() {
        for x in xs.clone() {
            let mut acc = bj;
            for (t, &p) in ptrs.iter().enumerate() {
                acc = w[j * taps + t].mul_add(buf[p + x], acc);
            }
            row[j * wo_pad + x] = if leaky {
                acc.max(super::conv::SLOPE * acc)
            } else {
                acc
            };
        }
    }
}

/// `N` output channels × 24 pixels per step: 3N accumulators (12 for N = 4, of the 16
/// registers), three loads and N broadcast weights per input tap.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
#[allow(clippy::too_many_arguments)]
#[inline]
fn avx2<const N: usize>(
    buf: &[f32],
    ptrs: &[usize],
    w: &[f32],
    b: &[f32],
    wo_pad: usize,
    xs: Range<usize>,
    leaky: bool,
    row: &mut [f32],
) {
    use std::arch::x86_64::*;
    let taps = ptrs.len();
    assert!(w.len() == N * taps && b.len() == N && row.len() == N * wo_pad);
    assert!(xs.start.is_multiple_of(24) && xs.end <= wo_pad && xs.len().is_multiple_of(24));
    let base = buf.as_ptr();
    // SAFETY: every load reads buf[ptrs[t] + x .. + 24] with x + 24 ≤ wo_pad, in bounds
    // by the caller's check (ptrs[t] + wo_pad ≤ buf.len()); every store writes
    // row[j·wo_pad + x .. + 24] in bounds by the asserts; AVX2 and FMA are enabled at
    // compile time.
    unsafe {
        let slope = _mm256_set1_ps(super::conv::SLOPE);
        let mut x = xs.start;
        while x < xs.end {
            let mut acc: [[__m256; 3]; N] = std::array::from_fn(|j| [_mm256_set1_ps(b[j]); 3]);
            for (t, &src) in ptrs.iter().enumerate() {
                let p = base.add(src + x);
                let v = [
                    _mm256_loadu_ps(p),
                    _mm256_loadu_ps(p.add(8)),
                    _mm256_loadu_ps(p.add(16)),
                ];
                for (j, a) in acc.iter_mut().enumerate() {
                    let wt = _mm256_broadcast_ss(&*w.as_ptr().add(j * taps + t));
                    a[0] = _mm256_fmadd_ps(wt, v[0], a[0]);
                    a[1] = _mm256_fmadd_ps(wt, v[1], a[1]);
                    a[2] = _mm256_fmadd_ps(wt, v[2], a[2]);
                }
            }
            for (j, three) in acc.iter().enumerate() {
                for (h, &a) in three.iter().enumerate() {
                    let a = if leaky {
                        _mm256_max_ps(a, _mm256_mul_ps(slope, a))
                    } else {
                        a
                    };
                    _mm256_storeu_ps(row.as_mut_ptr().add(j * wo_pad + x + 8 * h), a);
                }
            }
            x += 24;
        }
    }
}

/// `N` output channels × 48 pixels per step: 3N accumulators (24 for N = 8, of the 32
/// registers), three loads and N broadcast weights per input tap.
///
/// # Safety
/// The CPU must have AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512<const N: usize>(
    buf: &[f32],
    ptrs: &[usize],
    w: &[f32],
    b: &[f32],
    wo_pad: usize,
    xs: Range<usize>,
    leaky: bool,
    row: &mut [f32],
) {
    use std::arch::x86_64::*;
    let taps = ptrs.len();
    assert!(w.len() == N * taps && b.len() == N && row.len() == N * wo_pad);
    assert!(xs.start.is_multiple_of(48) && xs.end <= wo_pad && xs.len().is_multiple_of(48));
    let base = buf.as_ptr();
    // SAFETY: as in `avx2`, with 48-pixel blocks (wo_pad is a multiple of 48); the caller
    // guarantees AVX-512F and FMA.
    unsafe {
        let slope = _mm512_set1_ps(super::conv::SLOPE);
        let mut x = xs.start;
        while x < xs.end {
            let mut acc: [[__m512; 3]; N] = std::array::from_fn(|j| [_mm512_set1_ps(b[j]); 3]);
            for (t, &src) in ptrs.iter().enumerate() {
                let p = base.add(src + x);
                let v = [
                    _mm512_loadu_ps(p),
                    _mm512_loadu_ps(p.add(16)),
                    _mm512_loadu_ps(p.add(32)),
                ];
                for (j, a) in acc.iter_mut().enumerate() {
                    let wt = _mm512_set1_ps(*w.as_ptr().add(j * taps + t));
                    a[0] = _mm512_fmadd_ps(wt, v[0], a[0]);
                    a[1] = _mm512_fmadd_ps(wt, v[1], a[1]);
                    a[2] = _mm512_fmadd_ps(wt, v[2], a[2]);
                }
            }
            for (j, three) in acc.iter().enumerate() {
                for (h, &a) in three.iter().enumerate() {
                    let a = if leaky {
                        _mm512_max_ps(a, _mm512_mul_ps(slope, a))
                    } else {
                        a
                    };
                    _mm512_storeu_ps(row.as_mut_ptr().add(j * wo_pad + x + 16 * h), a);
                }
            }
            x += 48;
        }
    }
}
