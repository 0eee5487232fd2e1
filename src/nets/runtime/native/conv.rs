//! Direct convolutions on planar f32 feature maps: the arithmetic of the native engine.
//!
//! A convolution is a k×k kernel (k = 1 or 3), stride 1 or 2, dilation d (3×3 stride 1),
//! zero padding d·(k/2), bias, and an optional fused LeakyReLU. Every output pixel is
//! `b[oc] + Σ_t w[oc][t]·x_t` accumulated with FMA in the fixed tap order (ic, dy, dx), so the
//! result does not depend on the thread count or on which SIMD path ran: AVX-512 (chosen at
//! run time where the CPU has it) and AVX2 give bit-identical outputs.
//!
//! Layout for contiguous tap reads: stride 1 reads zero-padded planes (row length w + 2d),
//! stride 2 reads even/odd-deinterleaved padded rows, 1×1 reads the planes as they are. A task
//! computes whole output rows of every channel into its own scratch row (blocks of 3 vectors:
//! 24 pixels with AVX2, 48 with AVX-512, for 4 or 8 output channels at a time), walking the
//! row in tiles so the input rows it reads stay in L1, then copies the row into the output
//! planes.

use rayon::prelude::*;

use super::{pool, simd};

/// LeakyReLU slope of every activation (training/derain_train `act()`).
pub(super) const SLOPE: f32 = 0.1;

/// Zero border kept around every plane of a [`Map`]: a 3×3 stride-1 convolution with dilation
/// up to `PAD` reads its taps straight from the map, with no padded copy.
pub(super) const PAD: usize = 8;

/// A planar feature map: `c` planes of `h`×`w`, each stored with a zero border of [`PAD`]
/// (row length `w + 2·PAD`), followed by [`SLACK`] floats. Storage comes from and returns to
/// a small pool ([`super::pool`]), so a stream of frames does not fault fresh pages in every layer.
/// Nothing writes outside the interior of a map (the convolutions, [`Map::rows_mut`] and
/// [`up_add`] write interior rows only; `clone` copies a zero border): so storage given back
/// keeps a zero border and slack for its shape, and a map of the same shape taken again
/// skips zeroing them.
#[derive(Debug, Default)]
pub(super) struct Map {
    pub(super) c: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    data: Vec<f32>,
}

impl Drop for Map {
    fn drop(&mut self) {
        let shape = pool::Shape::Map(self.c, self.h, self.w);
        pool::give(std::mem::take(&mut self.data), shape);
    }
}

impl Clone for Map {
    fn clone(&self) -> Self {
        let (mut data, _) = pool::take(self.data.len(), pool::Shape::Map(self.c, self.h, self.w));
        data.copy_from_slice(&self.data);
        Self {
            c: self.c,
            h: self.h,
            w: self.w,
            data,
        }
    }
}

impl Map {
    /// A map whose border (and slack) is zero and whose interior is unspecified: for callers
    /// that write every interior pixel.
    pub(super) fn with_zero_border(c: usize, h: usize, w: usize) -> Self {
        let n = c * (h + 2 * PAD) * (w + 2 * PAD) + SLACK;
        let (data, clean) = pool::take(n, pool::Shape::Map(c, h, w));
        let mut m = Self { c, h, w, data };
        if clean {
            return m;
        }
        let (rl, ph) = (m.row_len(), h + 2 * PAD);
        let plane = m.plane_len();
        m.data[..c * plane]
            .par_chunks_mut(plane.max(1))
            .for_each(|p| {
                p[..PAD * rl].fill(0.0);
                p[(ph - PAD) * rl..].fill(0.0);
                for r in p[PAD * rl..(ph - PAD) * rl].chunks_mut(rl) {
                    r[..PAD].fill(0.0);
                    r[rl - PAD..].fill(0.0);
                }
            });
        m.data[c * plane..].fill(0.0);
        m
    }

    /// A map from dense `[c][h][w]` values.
    pub(super) fn from_dense(c: usize, h: usize, w: usize, dense: &[f32]) -> Self {
        assert_eq!(dense.len(), c * h * w);
        Self::from_stacked(h, w, &[dense])
    }

    /// A map from dense `[c_i][h][w]` parts stacked along the channels, copied once.
    pub(super) fn from_stacked(h: usize, w: usize, parts: &[&[f32]]) -> Self {
        let plane = (h * w).max(1);
        assert!(parts.iter().all(|p| p.len() % plane == 0));
        let c = parts.iter().map(|p| p.len() / plane).sum();
        let mut m = Self::with_zero_border(c, h, w);
        m.rows_mut().for_each(|(k, row)| {
            let mut at = k * w;
            for p in parts {
                if at < p.len() {
                    row.copy_from_slice(&p[at..at + w]);
                    return;
                }
                at -= p.len();
            }
        });
        m
    }

    /// The values as dense `[c][h][w]`.
    pub(super) fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.c * self.h * self.w];
        out.par_chunks_mut(self.w.max(1))
            .enumerate()
            .for_each(|(k, o)| o.copy_from_slice(self.row(k / self.h, k % self.h)));
        out
    }

    /// Length of a stored row.
    pub(super) fn row_len(&self) -> usize {
        self.w + 2 * PAD
    }

    /// Length of a stored plane.
    pub(super) fn plane_len(&self) -> usize {
        (self.h + 2 * PAD) * self.row_len()
    }

    /// Offset in the storage of pixel (0, y) of plane c.
    pub(super) fn offset(&self, c: usize, y: usize) -> usize {
        c * self.plane_len() + (y + PAD) * self.row_len() + PAD
    }

    /// Row `y` of plane `c` (without the border).
    pub(super) fn row(&self, c: usize, y: usize) -> &[f32] {
        let o = self.offset(c, y);
        &self.data[o..o + self.w]
    }

    /// Every row of every plane, in parallel: (c·h + y, row).
    pub(super) fn rows_mut(&mut self) -> impl IndexedParallelIterator<Item = (usize, &mut [f32])> {
        let (w, h, rl) = (self.w, self.h, self.row_len());
        let plane = self.plane_len();
        let c = self.c;
        self.data[..c * plane]
            .par_chunks_mut(rl)
            .enumerate()
            .filter_map(move |(k, row)| {
                let (ci, r) = (k / (h + 2 * PAD), k % (h + 2 * PAD));
                (r >= PAD && r < h + PAD && w > 0)
                    .then(move || (ci * h + r - PAD, &mut row[PAD..PAD + w]))
            })
            .collect::<Vec<_>>()
            .into_par_iter()
    }
}

/// A convolution (see the module doc).
#[derive(Debug, Clone)]
pub(super) struct Conv {
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) dilation: usize,
    /// `[cout][cin·k²]`, taps ordered (ic, dy, dx) as in ONNX's OIHW.
    pub(super) w: Vec<f32>,
    pub(super) b: Vec<f32>,
}

/// Extra floats after every source buffer: kernels read whole blocks (up to 47 past the last
/// output column, plus the taps' reach); those lanes are computed and thrown away.
const SLACK: usize = 64;
/// Output columns per tile (a multiple of both block widths): the input rows a tile reads
/// stay close in cache.
const TILE: usize = 192;

impl Conv {
    pub(super) fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        if self.stride == 1 {
            (h, w)
        } else {
            (h.div_ceil(2), w.div_ceil(2))
        }
    }

    /// Runs the convolution (+ LeakyReLU if `leaky`) on `x`.
    pub(super) fn run(&self, x: &Map, leaky: bool) -> Map {
        self.run_with_bias(x, leaky, &self.b)
    }

    /// [`Conv::run`] with `bias` (`cout` values) in place of the layer's own.
    pub(super) fn run_with_bias(&self, x: &Map, leaky: bool, bias: &[f32]) -> Map {
        assert_eq!(bias.len(), self.cout, "one bias per output channel");
        assert_eq!(x.c, self.cin, "channel count checked at load");
        assert!(self.k == 1 || self.k == 3, "kernels are 1×1 or 3×3");
        assert!(
            self.k == 3 || self.stride == 1,
            "1×1 convolutions have stride 1"
        );
        assert!(
            self.stride == 1 && self.dilation <= PAD || self.dilation == 1,
            "dilation within the border; strided convolutions are not dilated"
        );
        let (ho, wo) = self.out_size(x.h, x.w);
        let deinterleaved = (self.stride == 2).then(|| Strided::new(x));
        let (buf, layout) = match &deinterleaved {
            Some(s) => (&s.buf[..], Layout::Strided(s)),
            None => (&x.data[..], Layout::Map(x)),
        };
        // Every interior pixel is written below.
        let mut out = Map::with_zero_border(self.cout, ho, wo);
        let wide = simd::wide();
        let block = if wide { 48 } else { 24 };
        let wo_pad = wo.div_ceil(block) * block;
        let taps = self.cin * self.k * self.k;
        let (plane, rl) = (out.plane_len(), out.row_len());
        let dst = SyncPtr(out.data.as_mut_ptr());
        let chunk = 1.max(ho / (4 * rayon::current_num_threads()).max(1));
        (0..ho).collect::<Vec<_>>().par_chunks(chunk).for_each_init(
            || (vec![0usize; taps], vec![0f32; self.cout * wo_pad]),
            |(ptrs, row), ys| {
                for &y in ys {
                    layout.row_offsets(self, y, ptrs);
                    conv_row(buf, ptrs, &self.w, bias, wo_pad, leaky, wide, row);
                    for oc in 0..self.cout {
                        // SAFETY: the interior of row y of plane oc, [oc·plane + (y+PAD)·rl
                        // + PAD, + wo), is written by this task only (tasks own disjoint
                        // rows); `out` outlives the parallel loop.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                row.as_ptr().add(oc * wo_pad),
                                dst.get().add(oc * plane + (y + PAD) * rl + PAD),
                                wo,
                            );
                        }
                    }
                }
            },
        );
        out
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);

impl SyncPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not the field).
    fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: used only to write disjoint rows from the tasks of one parallel loop.
unsafe impl Send for SyncPtr {}
// SAFETY: as above.
unsafe impl Sync for SyncPtr {}

/// Where a convolution reads its taps.
enum Layout<'a> {
    /// Straight from the map (stride 1: its zero border is the padding).
    Map(&'a Map),
    /// From an even/odd-deinterleaved copy (stride 2).
    Strided(&'a Strided),
}

/// The input of a stride-2 3×3 convolution as even/odd-deinterleaved rows, padded by one:
/// padded column 2x + dx of an output column x is contiguous in x for each dx.
struct Strided {
    buf: Vec<f32>,
    /// The map's (c, h, w) this was made from.
    shape: pool::Shape,
    /// Row length (twice the half).
    row: usize,
    /// Rows per plane.
    rows: usize,
}

impl Strided {
    fn new(x: &Map) -> Self {
        let (h, w) = (x.h, x.w);
        let (ph, pw) = (h + 2, w + 2);
        let half = pw.div_ceil(2);
        let row = 2 * half;
        let shape = pool::Shape::Strided(x.c, h, w);
        let (mut buf, clean) = pool::take(x.c * ph * row + SLACK, shape);
        if !clean {
            // The loop below writes the same places for the same shape: the rest is padding.
            buf.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
        }
        buf[..x.c * ph * row]
            .par_chunks_mut(ph * row)
            .enumerate()
            .for_each(|(c, dst)| {
                for y in 0..h {
                    let (src, base) = (x.row(c, y), (y + 1) * row);
                    // Padded column px = x + 1: even px to the first half at px/2, odd px to
                    // the second half at half + px/2. So x odd → (x+1)/2, x even → half + x/2.
                    let (even, odd) = dst[base..base + row].split_at_mut(half);
                    for (e, pair) in even[1..].iter_mut().zip(src.chunks_exact(2)) {
                        *e = pair[1];
                    }
                    for (o, pair) in odd.iter_mut().zip(src.chunks(2)) {
                        *o = pair[0];
                    }
                }
            });
        Self {
            buf,
            shape,
            row,
            rows: ph,
        }
    }
}

impl Drop for Strided {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.buf), self.shape);
    }
}

impl Layout<'_> {
    /// Offsets of the source row of every tap for output row `y`.
    fn row_offsets(&self, conv: &Conv, y: usize, out: &mut [usize]) {
        let mut t = 0;
        match self {
            Layout::Map(m) => {
                let (plane, rl) = (m.plane_len(), m.row_len());
                let d = conv.dilation as isize;
                let reach = (conv.k / 2) as isize;
                for ic in 0..conv.cin {
                    for dy in -reach..=reach {
                        let r = ic * plane + ((y + PAD) as isize + dy * d) as usize * rl;
                        for dx in -reach..=reach {
                            out[t] = (r as isize + PAD as isize + dx * d) as usize;
                            t += 1;
                        }
                    }
                }
            }
            Layout::Strided(s) => {
                let plane = s.rows * s.row;
                let half = s.row / 2;
                for ic in 0..conv.cin {
                    for dy in 0..3 {
                        let r = ic * plane + (2 * y + dy) * s.row;
                        for dx in 0..3 {
                            // Padded column 2x + dx: even half at (2x+dx)/2, odd half after it.
                            out[t] = r + (dx % 2) * half + dx / 2;
                            t += 1;
                        }
                    }
                }
            }
        }
    }
}

/// One output row of every output channel: `row[oc·wo_pad + x] = b[oc] + Σ_t w[oc][t] ·
/// buf[ptrs[t] + x]`, then LeakyReLU if `leaky`.
#[allow(clippy::too_many_arguments)]
fn conv_row(
    buf: &[f32],
    ptrs: &[usize],
    w: &[f32],
    b: &[f32],
    wo_pad: usize,
    leaky: bool,
    wide: bool,
    row: &mut [f32],
) {
    let taps = ptrs.len();
    let cout = b.len();
    assert!(w.len() == cout * taps && row.len() == cout * wo_pad);
    assert!(
        ptrs.iter().all(|&p| p + wo_pad <= buf.len()),
        "source rows in bounds"
    );
    let mut x0 = 0;
    while x0 < wo_pad {
        let x1 = (x0 + TILE).min(wo_pad);
        let group = if wide { 8 } else { 4 };
        let mut oc = 0;
        while oc < cout {
            let n = (cout - oc).min(group);
            let (wb, bb) = (&w[oc * taps..(oc + n) * taps], &b[oc..oc + n]);
            let rb = &mut row[oc * wo_pad..(oc + n) * wo_pad];
            simd::block(buf, ptrs, wb, bb, wo_pad, x0..x1, leaky, wide, rb);
            oc += n;
        }
        x0 = x1;
    }
}

/// `x` upsampled ×2 (nearest) plus `skip` (twice the size of `x`, or one less on odd sides),
/// written into `skip`.
pub(super) fn up_add(x: &Map, mut skip: Map) -> Map {
    assert!(x.c == skip.c && skip.h.div_ceil(2) == x.h && skip.w.div_ceil(2) == x.w);
    let h = skip.h;
    skip.rows_mut().for_each(|(k, o)| {
        let (c, y) = (k / h, k % h);
        for (pair, &v) in o.chunks_mut(2).zip(x.row(c, y / 2)) {
            for p in pair {
                *p += v;
            }
        }
    });
    skip
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn random_conv(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        d: usize,
        s: &mut u64,
    ) -> Conv {
        Conv {
            cin,
            cout,
            k,
            stride,
            dilation: d,
            w: (0..cout * cin * k * k).map(|_| lcg(s)).collect(),
            b: (0..cout).map(|_| lcg(s)).collect(),
        }
    }

    /// The definition: zero padding d·(k/2), taps (ic, dy, dx), f64 sums.
    fn naive(conv: &Conv, x: &Map, leaky: bool) -> Map {
        let (ho, wo) = conv.out_size(x.h, x.w);
        let mut dense = vec![0f32; conv.cout * ho * wo];
        let (k, d, s) = (
            conv.k as isize,
            conv.dilation as isize,
            conv.stride as isize,
        );
        let pad = d * (k / 2);
        for oc in 0..conv.cout {
            for y in 0..ho {
                for xx in 0..wo {
                    let mut acc = conv.b[oc] as f64;
                    for ic in 0..conv.cin {
                        for dy in 0..k {
                            for dx in 0..k {
                                let sy = y as isize * s + dy * d - pad;
                                let sx = xx as isize * s + dx * d - pad;
                                if sy < 0 || sx < 0 || sy >= x.h as isize || sx >= x.w as isize {
                                    continue;
                                }
                                let wt = conv.w[((oc * conv.cin + ic) * conv.k + dy as usize)
                                    * conv.k
                                    + dx as usize];
                                acc += wt as f64 * x.row(ic, sy as usize)[sx as usize] as f64;
                            }
                        }
                    }
                    let v = acc as f32;
                    dense[(oc * ho + y) * wo + xx] = if leaky { v.max(SLOPE * v) } else { v };
                }
            }
        }
        Map::from_dense(conv.cout, ho, wo, &dense)
    }

    #[test]
    fn convolutions_match_the_definition_on_odd_sizes() {
        let mut s = 7u64;
        // Twice each, with new data: the second run takes the first one's storage back by
        // its shape, without zeroing its padding (`pool`).
        for &(cin, cout, k, stride, d, h, w) in &[
            (3, 5, 3, 1, 1, 7, 9),
            (3, 5, 3, 1, 1, 7, 9),
            (4, 9, 3, 2, 1, 11, 13),
            (2, 3, 3, 1, 2, 6, 50),
            (6, 4, 3, 1, 4, 13, 5),
            (5, 7, 1, 1, 1, 3, 101),
            (16, 12, 3, 1, 1, 1, 1),
            (8, 8, 3, 2, 1, 2, 3),
            (4, 9, 3, 2, 1, 11, 13),
            (8, 8, 3, 2, 1, 2, 3),
            (2, 3, 3, 1, 2, 6, 50),
        ] {
            let conv = random_conv(cin, cout, k, stride, d, &mut s);
            let dense: Vec<f32> = (0..cin * h * w).map(|_| lcg(&mut s)).collect();
            let x = Map::from_dense(cin, h, w, &dense);
            for leaky in [false, true] {
                let got = conv.run(&x, leaky);
                let want = naive(&conv, &x, leaky);
                assert_eq!((got.c, got.h, got.w), (want.c, want.h, want.w));
                // The border stays zero: the next convolution reads it as padding.
                assert!(got.data[..got.offset(0, 0)].iter().all(|&v| v == 0.0));
                let err = got
                    .to_dense()
                    .iter()
                    .zip(&want.to_dense())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    err < 1e-5,
                    "{cin}->{cout} k{k} s{stride} d{d} {h}x{w}: {err}"
                );
            }
        }
    }

    /// Every value of a map's storage outside its interior.
    fn padding(m: &Map) -> Vec<f32> {
        let mut out = Vec::new();
        for (i, &v) in m.data.iter().enumerate() {
            let inside = (0..m.c).any(|c| {
                (0..m.h).any(|y| {
                    let o = m.offset(c, y);
                    (o..o + m.w).contains(&i)
                })
            });
            if !inside {
                out.push(v);
            }
        }
        out
    }

    #[test]
    fn storage_taken_back_keeps_its_padding_zero() {
        // Maps written all over their interior, dropped, and taken again for the same shape
        // (padding not zeroed again) and for others (zeroed): the padding reads zero always.
        for round in 0..3 {
            for &(c, h, w) in &[(3, 5, 7), (2, 6, 9), (3, 5, 7), (1, 1, 1)] {
                let mut m = Map::with_zero_border(c, h, w);
                assert!(
                    padding(&m).iter().all(|&v| v == 0.0),
                    "{c}x{h}x{w}, round {round}"
                );
                m.rows_mut().for_each(|(_, row)| row.fill(f32::NAN));
                let copy = m.clone();
                assert!(padding(&copy).iter().all(|&v| v == 0.0));
                let s = Strided::new(&m);
                let nans = s.buf.iter().filter(|v| v.is_nan()).count();
                assert_eq!(nans, c * h * w, "only the map's values in the strided copy");
            }
        }
        // A buffer idle for longer than `STALE_TAKES` requests goes to another shape (unless a
        // test beside this one took it first): its padding is zeroed again.
        let mut m = Map::with_zero_border(4, 20, 30);
        m.rows_mut().for_each(|(_, row)| row.fill(f32::NAN));
        drop(m);
        for _ in 0..=pool::STALE_TAKES {
            drop(Map::with_zero_border(1, 1, 1));
        }
        let mut other = Map::with_zero_border(3, 17, 29);
        assert!(padding(&other).iter().all(|&v| v == 0.0));
        other.rows_mut().for_each(|(_, row)| row.fill(1.0));
        let s = Strided::new(&other);
        assert!(s.buf.iter().all(|v| !v.is_nan()));
    }

    #[test]
    fn simd_paths_agree_bit_for_bit_with_the_scalar_order() {
        // Whatever path runs here (AVX-512 or AVX2) must give the scalar FMA sequence's
        // result exactly: the order of the taps is the same.
        let mut s = 3u64;
        let conv = random_conv(7, 9, 3, 1, 2, &mut s);
        let dense: Vec<f32> = (0..7 * 5 * 97).map(|_| lcg(&mut s)).collect();
        let x = Map::from_dense(7, 5, 97, &dense);
        let got = conv.run(&x, true);
        let wo_pad = 97usize.div_ceil(48) * 48;
        let mut ptrs = vec![0usize; 7 * 9];
        let mut row = vec![0f32; 9 * wo_pad];
        for y in 0..5 {
            Layout::Map(&x).row_offsets(&conv, y, &mut ptrs);
            simd_scalar_row(&x.data, &ptrs, &conv, wo_pad, &mut row);
            for oc in 0..9 {
                assert_eq!(got.row(oc, y), &row[oc * wo_pad..oc * wo_pad + 97]);
            }
        }
    }

    fn simd_scalar_row(buf: &[f32], ptrs: &[usize], conv: &Conv, wo_pad: usize, row: &mut [f32]) {
        let taps = ptrs.len();
        for oc in 0..conv.cout {
            for x in 0..wo_pad {
                let mut acc = conv.b[oc];
                for (t, &p) in ptrs.iter().enumerate() {
                    acc = conv.w[oc * taps + t].mul_add(buf[p + x], acc);
                }
                row[oc * wo_pad + x] = acc.max(SLOPE * acc);
            }
        }
    }
}
