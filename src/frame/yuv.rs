//! 4:2:0 YUV frames (I420, NV12: what decoders and cameras hand over) to and from packed RGBx,
//! so that the element can take a decoder's output without `videoconvert`.
//!
//! Y′CbCr with the matrix and range of the stream (BT.601 or BT.709, limited 16–235/240 or
//! full range). Chroma is shared by each 2×2 block: in, every pixel of a block takes the
//! block's chroma sample; out, a block's chroma is the mean of its four pixels' chroma. Odd
//! sizes have a last half block (chroma planes are ⌈w/2⌉ × ⌈h/2⌉).

use rayon::prelude::*;

use crate::error::{Error, Result};

/// How the chroma planes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YuvLayout {
    /// Y plane, then U (Cb) and V (Cr) planes, each ⌈w/2⌉ × ⌈h/2⌉.
    I420,
    /// Y plane, then one plane of interleaved U, V pairs.
    Nv12,
}

/// The colour matrix (luma weights of R and B).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvMatrix {
    /// Kr.
    pub kr: f32,
    /// Kb.
    pub kb: f32,
}

impl YuvMatrix {
    /// ITU-R BT.601 (SD).
    pub const BT601: YuvMatrix = YuvMatrix {
        kr: 0.299,
        kb: 0.114,
    };
    /// ITU-R BT.709 (HD).
    pub const BT709: YuvMatrix = YuvMatrix {
        kr: 0.2126,
        kb: 0.0722,
    };
}

/// Layout, matrix and range of a YUV stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YuvSpec {
    /// Plane layout.
    pub layout: YuvLayout,
    /// Colour matrix.
    pub matrix: YuvMatrix,
    /// Full range (0–255) rather than limited (Y 16–235, chroma 16–240).
    pub full_range: bool,
}

/// The planes of one frame: Y, then U and V (I420) or the interleaved UV plane and an unused
/// third (NV12), with their strides in bytes.
pub struct YuvPlanes<P> {
    /// The planes.
    pub data: [P; 3],
    /// Bytes per row of each plane.
    pub stride: [usize; 3],
}

/// Per-range scale and offset: value = (code − offset) · scale.
struct Range {
    y_off: f32,
    y_scale: f32,
    c_scale: f32,
}

impl YuvSpec {
    fn range(&self) -> Range {
        if self.full_range {
            Range {
                y_off: 0.0,
                y_scale: 1.0 / 255.0,
                c_scale: 1.0 / 255.0,
            }
        } else {
            Range {
                y_off: 16.0,
                y_scale: 1.0 / 219.0,
                c_scale: 1.0 / 224.0,
            }
        }
    }

    /// Bytes each plane needs at the given strides, checking the strides are wide enough.
    fn check<P: AsRef<[u8]>>(&self, w: usize, h: usize, p: &YuvPlanes<P>) -> Result<()> {
        if w == 0 || h == 0 {
            return Err(Error::param("YUV frame", format!("empty frame {w}x{h}")));
        }
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let widths = match self.layout {
            YuvLayout::I420 => [w, cw, cw],
            YuvLayout::Nv12 => [w, 2 * cw, 0],
        };
        let heights = [h, ch, ch];
        for k in 0..3 {
            if widths[k] == 0 {
                continue;
            }
            let need = p.stride[k]
                .checked_mul(heights[k] - 1)
                .and_then(|v| v.checked_add(widths[k]))
                .unwrap_or(usize::MAX);
            if p.stride[k] < widths[k] || p.data[k].as_ref().len() < need {
                return Err(Error::param(
                    "YUV frame",
                    format!(
                        "{:?} plane {k}: {} bytes at stride {} for {}x{} (needs {need})",
                        self.layout,
                        p.data[k].as_ref().len(),
                        p.stride[k],
                        widths[k],
                        heights[k]
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Fixed point: coefficients are scaled by 2^16.
const ONE: f32 = 65536.0;

fn fix(v: f32) -> i32 {
    (v * ONE).round() as i32
}

/// Integer coefficients of the conversion YUV → RGB, 8-bit codes in and out.
struct ToRgb {
    y_off: i32,
    y: i32,
    rv: i32,
    gu: i32,
    gv: i32,
    bu: i32,
}

impl ToRgb {
    fn new(spec: &YuvSpec) -> Self {
        let r = spec.range();
        let YuvMatrix { kr, kb } = spec.matrix;
        let kg = 1.0 - kr - kb;
        // R = Y + 2(1−Kr)·Cr; B = Y + 2(1−Kb)·Cb; G = (Y − Kr·R − Kb·B) / Kg, on [0,1] values
        // scaled back to 8-bit codes.
        let (rv, bu) = (2.0 * (1.0 - kr), 2.0 * (1.0 - kb));
        let c = 255.0 * r.c_scale;
        Self {
            y_off: r.y_off as i32,
            y: fix(255.0 * r.y_scale),
            rv: fix(rv * c),
            gu: fix(-bu * kb / kg * c),
            gv: fix(-rv * kr / kg * c),
            bu: fix(bu * c),
        }
    }
}

/// A packed RGBx buffer of `len` bytes at `stride` holds a non-empty `w`×`h` frame.
fn check_rgbx(what: &str, w: usize, h: usize, len: usize, stride: usize) -> Result<()> {
    let need = stride
        .checked_mul(h.saturating_sub(1))
        .and_then(|v| v.checked_add(4 * w));
    if w == 0 || h == 0 || stride < 4 * w || need.is_none_or(|n| len < n) {
        return Err(Error::param(
            "YUV frame",
            format!("RGBx {what} of {len} bytes at stride {stride} for {w}x{h}"),
        ));
    }
    Ok(())
}

/// A 16.16 fixed-point value rounded and clamped to an 8-bit code.
#[inline(always)]
fn code(v: i32) -> u8 {
    ((v + (1 << 15)) >> 16).clamp(0, 255) as u8
}

/// Converts a `w`×`h` 4:2:0 frame into packed RGBx (4 bytes per pixel, the 4th set to 255)
/// at `out_stride`.
pub fn yuv420_to_rgbx<P: AsRef<[u8]> + Sync>(
    spec: &YuvSpec,
    w: usize,
    h: usize,
    src: &YuvPlanes<P>,
    out: &mut [u8],
    out_stride: usize,
) -> Result<()> {
    spec.check(w, h, src)?;
    check_rgbx("output", w, h, out.len(), out_stride)?;
    let k = ToRgb::new(spec);
    let (py, pu, pv) = (
        src.data[0].as_ref(),
        src.data[1].as_ref(),
        src.data[2].as_ref(),
    );
    let cw = w.div_ceil(2);
    out.par_chunks_mut(out_stride)
        .take(h)
        .enumerate()
        .for_each_init(
            || vec![[0i32; 3]; cw],
            |terms, (y, row)| {
                // The chroma terms of R, G and B for each 2-pixel pair of this row.
                let cy = y / 2;
                let mut set = |c: usize, u: u8, v: u8| {
                    let (cb, cr) = (i32::from(u) - 128, i32::from(v) - 128);
                    terms[c] = [k.rv * cr, k.gu * cb + k.gv * cr, k.bu * cb];
                };
                match spec.layout {
                    YuvLayout::I420 => {
                        let (u, v) = (&pu[cy * src.stride[1]..], &pv[cy * src.stride[2]..]);
                        for c in 0..cw {
                            set(c, u[c], v[c]);
                        }
                    }
                    YuvLayout::Nv12 => {
                        let uv = &pu[cy * src.stride[1]..];
                        for c in 0..cw {
                            set(c, uv[2 * c], uv[2 * c + 1]);
                        }
                    }
                }
                let yrow = &py[y * src.stride[0]..y * src.stride[0] + w];
                for (x, (px, &l)) in row[..4 * w].chunks_exact_mut(4).zip(yrow).enumerate() {
                    let l = (i32::from(l) - k.y_off) * k.y;
                    let [r, g, b] = terms[x / 2];
                    px[0] = code(l + r);
                    px[1] = code(l + g);
                    px[2] = code(l + b);
                    px[3] = 255;
                }
            },
        );
    Ok(())
}

/// Converts packed RGBx (or RGBA: the 4th byte is ignored) at `in_stride` into a `w`×`h`
/// 4:2:0 frame.
pub fn rgbx_to_yuv420(
    spec: &YuvSpec,
    w: usize,
    h: usize,
    rgbx: &[u8],
    in_stride: usize,
    dst: &mut YuvPlanes<&mut [u8]>,
) -> Result<()> {
    spec.check(w, h, dst)?;
    check_rgbx("input", w, h, rgbx.len(), in_stride)?;
    let r = spec.range();
    let YuvMatrix { kr, kb } = spec.matrix;
    let kg = 1.0 - kr - kb;
    // Y code = Y′·(255·y_scale)⁻¹ + offset; chroma codes from the block's mean R, G, B (the
    // conversion is linear): Cb = (B − Y′)/(2(1−Kb)), Cr = (R − Y′)/(2(1−Kr)).
    let ys = 1.0 / (255.0 * r.y_scale);
    let (yr, yg, yb) = (fix(kr * ys), fix(kg * ys), fix(kb * ys));
    let y_off = (r.y_off as i32) << 16;
    let cs = 1.0 / (255.0 * r.c_scale);
    let (cbk, crk) = (cs * 0.5 / (1.0 - kb), cs * 0.5 / (1.0 - kr));
    let (ur, ug, ub) = (fix(-kr * cbk), fix(-kg * cbk), fix((1.0 - kb) * cbk));
    let (vr, vg, vb) = (fix((1.0 - kr) * crk), fix(-kg * crk), fix(-kb * crk));
    let ys_ = dst.stride[0];
    dst.data[0]
        .par_chunks_mut(ys_)
        .take(h)
        .enumerate()
        .for_each(|(y, row)| {
            let src = &rgbx[y * in_stride..y * in_stride + 4 * w];
            for (o, p) in row[..w].iter_mut().zip(src.chunks_exact(4)) {
                let v = yr * i32::from(p[0]) + yg * i32::from(p[1]) + yb * i32::from(p[2]);
                *o = code(v + y_off);
            }
        });
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // Each chroma sample from its 2×2 block's R, G, B sums (the conversion is linear), two
    // source rows at a time; a block cut by an odd edge is scaled up to four pixels.
    let chroma_row = |cy: usize, out: &mut dyn FnMut(usize, u8, u8)| {
        let r0 = &rgbx[2 * cy * in_stride..2 * cy * in_stride + 4 * w];
        let y1 = (2 * cy + 1).min(h - 1);
        let r1 = &rgbx[y1 * in_stride..y1 * in_stride + 4 * w];
        let rows = if 2 * cy + 1 < h { 2 } else { 1 };
        for cx in 0..cw {
            let x0 = 8 * cx;
            let n = if 2 * cx + 1 < w { 2 } else { 1 };
            let mut s = [0i32; 3];
            for k in 0..3 {
                let mut t = i32::from(r0[x0 + k]);
                if n == 2 {
                    t += i32::from(r0[x0 + 4 + k]);
                }
                if rows == 2 {
                    t += i32::from(r1[x0 + k]);
                    if n == 2 {
                        t += i32::from(r1[x0 + 4 + k]);
                    }
                }
                s[k] = t * (4 / (n * rows));
            }
            let u = (ur * s[0] + ug * s[1] + ub * s[2]) / 4;
            let v = (vr * s[0] + vg * s[1] + vb * s[2]) / 4;
            out(cx, code(u + (128 << 16)), code(v + (128 << 16)));
        }
    };
    let [_, p1, p2] = &mut dst.data;
    let (s1, s2) = (dst.stride[1], dst.stride[2]);
    match spec.layout {
        YuvLayout::I420 => {
            p1.par_chunks_mut(s1)
                .zip(p2.par_chunks_mut(s2))
                .take(ch)
                .enumerate()
                .for_each(|(cy, (u, v))| {
                    chroma_row(cy, &mut |cx, cb, cr| (u[cx], v[cx]) = (cb, cr));
                });
        }
        YuvLayout::Nv12 => {
            p1.par_chunks_mut(s1)
                .take(ch)
                .enumerate()
                .for_each(|(cy, uv)| {
                    chroma_row(cy, &mut |cx, cb, cr| {
                        (uv[2 * cx], uv[2 * cx + 1]) = (cb, cr)
                    });
                });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planes(layout: YuvLayout, w: usize, h: usize) -> YuvPlanes<Vec<u8>> {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match layout {
            YuvLayout::I420 => YuvPlanes {
                data: [vec![0; w * h], vec![0; cw * ch], vec![0; cw * ch]],
                stride: [w, cw, cw],
            },
            YuvLayout::Nv12 => YuvPlanes {
                data: [vec![0; w * h], vec![0; 2 * cw * ch], Vec::new()],
                stride: [w, 2 * cw, 0],
            },
        }
    }

    /// Smooth colours (chroma constant over 2×2 blocks would round-trip exactly; a gentle
    /// gradient must come back within a few levels).
    fn scene(w: usize, h: usize) -> Vec<u8> {
        let mut v = vec![0u8; 4 * w * h];
        for y in 0..h {
            for x in 0..w {
                let p = &mut v[4 * (y * w + x)..];
                p[0] = (40 + x * 150 / w) as u8;
                p[1] = (200 - y * 120 / h) as u8;
                p[2] = (60 + (x + y) * 80 / (w + h)) as u8;
                p[3] = 255;
            }
        }
        v
    }

    #[test]
    fn round_trips_within_a_few_levels_in_every_layout_matrix_and_range() {
        for layout in [YuvLayout::I420, YuvLayout::Nv12] {
            for matrix in [YuvMatrix::BT601, YuvMatrix::BT709] {
                for full_range in [false, true] {
                    for (w, h) in [(64, 48), (37, 23), (1, 1)] {
                        let spec = YuvSpec {
                            layout,
                            matrix,
                            full_range,
                        };
                        let rgb = scene(w, h);
                        let mut p = planes(layout, w, h);
                        let mut view = YuvPlanes {
                            data: p.data.each_mut().map(|d| &mut d[..]),
                            stride: p.stride,
                        };
                        rgbx_to_yuv420(&spec, w, h, &rgb, 4 * w, &mut view).unwrap();
                        let mut back = vec![0u8; 4 * w * h];
                        yuv420_to_rgbx(&spec, w, h, &p, &mut back, 4 * w).unwrap();
                        let worst = rgb
                            .iter()
                            .zip(&back)
                            .map(|(a, b)| a.abs_diff(*b))
                            .max()
                            .unwrap();
                        assert!(worst <= 6, "{spec:?} {w}x{h}: worst {worst}");
                    }
                }
            }
        }
    }

    #[test]
    fn grey_maps_to_neutral_chroma_and_the_range_ends() {
        let spec = YuvSpec {
            layout: YuvLayout::I420,
            matrix: YuvMatrix::BT709,
            full_range: false,
        };
        let mut rgb = vec![255u8; 4 * 4 * 2];
        rgb[..16].fill(0);
        let mut p = planes(YuvLayout::I420, 4, 2);
        let mut view = YuvPlanes {
            data: p.data.each_mut().map(|d| &mut d[..]),
            stride: p.stride,
        };
        rgbx_to_yuv420(&spec, 4, 2, &rgb, 16, &mut view).unwrap();
        assert_eq!(&p.data[0][..4], &[16; 4]);
        assert_eq!(&p.data[0][4..], &[235; 4]);
        assert!(p.data[1].iter().chain(&p.data[2]).all(|&c| c == 128));
    }

    #[test]
    fn short_planes_and_strides_are_errors() {
        let spec = YuvSpec {
            layout: YuvLayout::Nv12,
            matrix: YuvMatrix::BT601,
            full_range: false,
        };
        let mut p = planes(YuvLayout::Nv12, 8, 8);
        p.data[1].truncate(10);
        let mut out = vec![0u8; 4 * 64];
        assert!(yuv420_to_rgbx(&spec, 8, 8, &p, &mut out, 32).is_err());
        let p = planes(YuvLayout::Nv12, 8, 8);
        assert!(yuv420_to_rgbx(&spec, 8, 8, &p, &mut out, 16).is_err());
    }
}
