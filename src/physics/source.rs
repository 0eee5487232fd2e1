//! Where a frame comes from and where the derained result goes, row by row.
//!
//! The full-resolution passes are memory-bound (≈10 GB/s per core on the development
//! machine), so they read packed 8-bit frames directly (4 bytes a pixel instead of 12 for
//! planar f32) and write the output frame directly, converting rows in cache.

use rayon::prelude::*;

use crate::frame::Plane;
pub(crate) use crate::frame::pack_rgb_row as pack_row;
use crate::frame::{FrameMut, FrameRef, PlanarRgb, unpack_rgb_row};
use crate::physics::guided_filter::reduce_row;

/// The input of the physics stage.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Planar f32 RGB in [0, 1].
    Planar(&'a PlanarRgb),
    /// A packed 8-bit frame.
    Packed(&'a FrameRef<'a>),
}

impl Source<'_> {
    /// Width in pixels.
    pub fn width(&self) -> usize {
        match self {
            Source::Planar(p) => p.width(),
            Source::Packed(f) => f.width() as usize,
        }
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        match self {
            Source::Planar(p) => p.height(),
            Source::Packed(f) => f.height() as usize,
        }
    }
    /// Row `y` as three f32 rows in [0, 1].
    pub fn row(&self, y: usize, rgb: &mut [Vec<f32>; 3]) {
        let [r, g, b] = rgb;
        match self {
            Source::Planar(p) => {
                r.copy_from_slice(p.planes[0].row(y));
                g.copy_from_slice(p.planes[1].row(y));
                b.copy_from_slice(p.planes[2].row(y));
            }
            Source::Packed(f) => unpack_rgb_row(f.format(), f.row(y), r, g, b),
        }
    }

    /// The three channels and the residue channel max − min, box-downsampled by `s`
    /// (one pass over the frame).
    pub fn downsample_with_residue(&self, s: usize) -> ([Plane; 3], Plane) {
        let (w, h) = (self.width(), self.height());
        let (lw, lh) = (w.div_ceil(s), h.div_ceil(s));
        let mut planes: [Plane; 4] = std::array::from_fn(|_| Plane::zeros(lw, lh));
        let [p0, p1, p2, p3] = &mut planes;
        p0.data
            .par_chunks_mut(lw)
            .zip(p1.data.par_chunks_mut(lw))
            .zip(p2.data.par_chunks_mut(lw))
            .zip(p3.data.par_chunks_mut(lw))
            .enumerate()
            .for_each_init(
                || {
                    (
                        [vec![0f32; w], vec![0f32; w], vec![0f32; w]],
                        [vec![0f32; w], vec![0f32; w], vec![0f32; w], vec![0f32; w]],
                    )
                },
                |(rgb, acc), (y, (((o0, o1), o2), o3))| {
                    let ys = y * s..((y + 1) * s).min(h);
                    let ny = ys.len();
                    for a in acc.iter_mut() {
                        a.fill(0.0);
                    }
                    for yy in ys {
                        self.row(yy, rgb);
                        let [r, g, b] = &*rgb;
                        let (r, g, b) = (&r[..w], &g[..w], &b[..w]);
                        let [a0, a1, a2, a3] = acc;
                        let (a0, a1, a2, a3) =
                            (&mut a0[..w], &mut a1[..w], &mut a2[..w], &mut a3[..w]);
                        for x in 0..w {
                            a0[x] += r[x];
                            a1[x] += g[x];
                            a2[x] += b[x];
                            a3[x] += r[x].max(g[x]).max(b[x]) - r[x].min(g[x]).min(b[x]);
                        }
                    }
                    reduce_row(&acc[0], s, ny, o0);
                    reduce_row(&acc[1], s, ny, o1);
                    reduce_row(&acc[2], s, ny, o2);
                    reduce_row(&acc[3], s, ny, o3);
                },
            );
        let [a, b, c, d] = planes;
        ([a, b, c], d)
    }
}

/// A packed output frame with what is needed to finish it: the input (for alpha and the
/// strength blend).
#[derive(Debug)]
pub struct FrameSink<'a, 'b> {
    /// The frame written.
    pub frame: &'a mut FrameMut<'b>,
    /// The input frame (alpha is copied from it; same size and format).
    pub input: &'a FrameRef<'a>,
    /// Blend with the input: out = s·J + (1 − s)·I.
    pub strength: f32,
}
