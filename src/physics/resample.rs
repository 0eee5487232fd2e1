//! Resampling between the frame and the estimation resolution: box downsampling by an integer
//! factor and the bilinear upsampler (half-pixel centres) that brings coefficients and maps
//! back to full resolution.

use rayon::prelude::*;

use crate::frame::Plane;

/// Downsamples by an integer factor with box averaging (partial blocks at the right/bottom
/// edge average what they have).
///
/// # Panics
/// If `s` is 0 (the engine's factors are at least 1).
pub fn downsample(src: &Plane, s: usize) -> Plane {
    assert!(s >= 1, "downsample: the factor must be at least 1");
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
///
/// # Panics
/// If `s` is 0 or `src` is empty while `w`×`h` is not.
pub fn upsample(src: &Plane, s: usize, w: usize, h: usize) -> Plane {
    let mut out = Plane::zeros(w, h);
    if w == 0 || h == 0 {
        return out;
    }
    assert!(
        s >= 1 && src.width > 0 && src.height > 0,
        "upsample: a factor of at least 1 and a non-empty source"
    );
    let up = Upsampler::new(src.width, src.height, s, w);
    out.data.par_chunks_mut(w).enumerate().for_each_init(
        || vec![0f32; src.width],
        |tmp, (y, row)| up.row(src, y, tmp, row),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::guided_filter::tests::test_plane;

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
}
