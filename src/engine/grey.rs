//! Grey in, grey out. A monochrome frame (an infrared camera at night, a black-and-white
//! photograph) carries no colour, yet the networks of `full` mode bring their colour priors
//! to it: the atmospheric light of a grey veil comes out slightly blue, the removed rain
//! layer differs a little per channel, and the inversion multiplies both by 1/T — up to 23
//! levels between R and B on a grey frame (measured). So when every pixel of the input is
//! grey (its R, G and B within [`TOLERANCE`]), the output is made grey again: each pixel the
//! mean of its three channels, A the mean of its three. `physics` treats the channels alike
//! and needs none of it.

use crate::frame::{FrameRef, PlanarRgb};
use crate::physics::{RunInfo, Sink, Source};

/// Largest difference between a pixel's channels, in 8-bit levels, that still counts as
/// grey (a YUV camera's chroma sits within a level or two of neutral).
pub const TOLERANCE: u8 = 2;

/// Is every pixel of `src` grey?
pub(crate) fn is_grey(src: &Source<'_>) -> bool {
    match src {
        Source::Packed(f) => packed_is_grey(f),
        Source::Planar(p) => planar_is_grey(p),
    }
}

fn packed_is_grey(f: &FrameRef<'_>) -> bool {
    let fmt = f.format();
    let (bpp, [r, g, b]) = (fmt.bytes_per_pixel(), fmt.rgb_offsets());
    (0..f.height() as usize).all(|y| {
        f.row(y)[..f.width() as usize * bpp]
            .chunks_exact(bpp)
            .all(|p| p[r].max(p[g]).max(p[b]) - p[r].min(p[g]).min(p[b]) <= TOLERANCE)
    })
}

fn planar_is_grey(p: &PlanarRgb) -> bool {
    let tol = (TOLERANCE as f32 + 0.5) / 255.0;
    let [r, g, b] = &p.planes;
    r.data
        .iter()
        .zip(&g.data)
        .zip(&b.data)
        .all(|((&r, &g), &b)| r.max(g).max(b) - r.min(g).min(b) <= tol)
}

/// Makes the output in `sink` and the A reported in `info` grey (alpha untouched).
pub(crate) fn make_grey(sink: &mut Sink<'_, '_>, info: &mut RunInfo) {
    info.atmosphere = [mean3(info.atmosphere); 3];
    match sink {
        Sink::Components(c) => {
            c.atmosphere = [mean3(c.atmosphere); 3];
            grey_planar(&mut c.background);
        }
        Sink::Frame(fs) => {
            let fmt = fs.frame.format();
            let (bpp, [r, g, b]) = (fmt.bytes_per_pixel(), fmt.rgb_offsets());
            let w = fs.frame.width() as usize;
            for y in 0..fs.frame.height() as usize {
                for p in fs.frame.row_mut(y)[..w * bpp].chunks_exact_mut(bpp) {
                    let v = ((p[r] as u32 + p[g] as u32 + p[b] as u32 + 1) / 3) as u8;
                    (p[r], p[g], p[b]) = (v, v, v);
                }
            }
        }
    }
}

fn mean3(v: [f32; 3]) -> f32 {
    (v[0] + v[1] + v[2]) / 3.0
}

fn grey_planar(img: &mut PlanarRgb) {
    let [r, g, b] = &mut img.planes;
    for ((r, g), b) in r.data.iter_mut().zip(&mut g.data).zip(&mut b.data) {
        let v = (*r + *g + *b) / 3.0;
        (*r, *g, *b) = (v, v, v);
    }
}
