//! Frames as GStreamer hands them to us (packed 8-bit, with a row stride) and the planar f32
//! images the algorithms work on.
//!
//! Conversion is one pass each way: [`PlanarRgb::from_frame`] reads the packed bytes straight
//! into three planes in [0, 1], [`PlanarRgb::write_frame`] writes them back (rounding, clamping,
//! copying alpha from the source frame where the format has one).

use crate::error::{Error, Result};

mod owned;
pub mod yuv;

pub use owned::FrameBuf;

/// Largest width or height accepted (16K). Beyond that a frame is refused with a clear error
/// instead of attempting a multi-gigabyte allocation.
pub const MAX_DIMENSION: u32 = 16_384;

/// Packed 8-bit pixel layouts accepted at the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// R, G, B, A bytes.
    Rgba,
    /// B, G, R, A bytes.
    Bgra,
    /// R, G, B, padding.
    Rgbx,
    /// B, G, R, padding.
    Bgrx,
    /// R, G, B (3 bytes per pixel).
    Rgb,
}

impl PixelFormat {
    /// Every format, in declaration order.
    pub const ALL: [PixelFormat; 5] = [
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::Rgb,
    ];

    /// Bytes per pixel.
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb => 3,
            _ => 4,
        }
    }
    /// Byte offsets of R, G and B inside a pixel.
    pub const fn rgb_offsets(self) -> [usize; 3] {
        match self {
            PixelFormat::Rgba | PixelFormat::Rgbx | PixelFormat::Rgb => [0, 1, 2],
            PixelFormat::Bgra | PixelFormat::Bgrx => [2, 1, 0],
        }
    }
    /// Byte offset of a real alpha channel (not padding), if any.
    pub const fn alpha_offset(self) -> Option<usize> {
        match self {
            PixelFormat::Rgba | PixelFormat::Bgra => Some(3),
            _ => None,
        }
    }
}

fn check_layout(
    len: usize,
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
) -> Result<()> {
    let bad = |reason: String| Error::UnsupportedFrame {
        width,
        height,
        format,
        reason,
    };
    if width == 0 || height == 0 {
        return Err(bad("empty frame".into()));
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(bad(format!("larger than {MAX_DIMENSION} pixels on a side")));
    }
    let row = width as usize * format.bytes_per_pixel();
    if stride < row {
        return Err(bad(format!("stride {stride} < {row} bytes per row")));
    }
    // (A stride from a negative, bottom-up pitch cast to usize overflows here.)
    let Some(need) = stride
        .checked_mul(height as usize - 1)
        .and_then(|v| v.checked_add(row))
    else {
        return Err(bad(format!(
            "stride {stride} over {height} rows is beyond the address space"
        )));
    };
    if len < need {
        return Err(bad(format!("buffer holds {len} bytes, needs {need}")));
    }
    Ok(())
}

/// A read-only view of a packed 8-bit frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
}

impl<'a> FrameRef<'a> {
    /// Wraps `data` (rows `stride` bytes apart) without copying; checks the layout.
    pub fn new(
        data: &'a [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self> {
        check_layout(data.len(), width, height, stride, format)?;
        Ok(Self {
            data,
            width,
            height,
            stride,
            format,
        })
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Row stride in bytes.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// Pixel layout.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// Row `y` (only the pixel bytes, without padding).
    pub fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.data[start..start + self.width as usize * self.format.bytes_per_pixel()]
    }
}

/// A writable view of a packed 8-bit frame.
#[derive(Debug)]
pub struct FrameMut<'a> {
    data: &'a mut [u8],
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
}

impl<'a> FrameMut<'a> {
    /// Wraps `data` (rows `stride` bytes apart) without copying; checks the layout.
    pub fn new(
        data: &'a mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self> {
        check_layout(data.len(), width, height, stride, format)?;
        Ok(Self {
            data,
            width,
            height,
            stride,
            format,
        })
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Pixel layout.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// Mutable row `y` (only the pixel bytes).
    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        let start = y * self.stride;
        let n = self.width as usize * self.format.bytes_per_pixel();
        &mut self.data[start..start + n]
    }
    /// The `height` pixel rows (without padding), for parallel writing.
    pub(crate) fn par_rows_mut(
        &mut self,
    ) -> impl rayon::iter::IndexedParallelIterator<Item = &mut [u8]> {
        use rayon::prelude::*;
        let n = self.width as usize * self.format.bytes_per_pixel();
        let h = self.height as usize;
        self.data
            .par_chunks_mut(self.stride)
            .take(h)
            .map(move |r| &mut r[..n])
    }
    /// The `height` pixel rows (without padding), for parallel reading.
    pub(crate) fn par_rows(&self) -> impl rayon::iter::IndexedParallelIterator<Item = &[u8]> {
        use rayon::prelude::*;
        let n = self.width as usize * self.format.bytes_per_pixel();
        let h = self.height as usize;
        self.data
            .par_chunks(self.stride)
            .take(h)
            .map(move |r| &r[..n])
    }
    /// Copies `src` (same size and format) into this frame, row by row.
    pub fn copy_from(&mut self, src: &FrameRef<'_>) -> Result<()> {
        ensure_same_frame(src, self)?;
        for y in 0..self.height as usize {
            self.row_mut(y).copy_from_slice(src.row(y));
        }
        Ok(())
    }
}

pub(crate) fn ensure_same_frame(a: &FrameRef<'_>, b: &FrameMut<'_>) -> Result<()> {
    if a.width != b.width || a.height != b.height {
        return Err(Error::SizeMismatch {
            what: "input and output frames".into(),
            a_width: a.width as usize,
            a_height: a.height as usize,
            b_width: b.width as usize,
            b_height: b.height as usize,
        });
    }
    if a.format != b.format {
        return Err(Error::UnsupportedFrame {
            width: b.width,
            height: b.height,
            format: b.format,
            reason: format!("output format differs from input {:?}", a.format),
        });
    }
    Ok(())
}

/// One f32 image plane, row-major, no padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` samples.
    pub data: Vec<f32>,
}

impl Plane {
    /// A plane filled with `value`.
    pub fn filled(width: usize, height: usize, value: f32) -> Self {
        Self {
            width,
            height,
            data: vec![value; width * height],
        }
    }
    /// A zero plane.
    pub fn zeros(width: usize, height: usize) -> Self {
        Self::filled(width, height, 0.0)
    }
    /// Wraps `data`; errors if its length is not `width * height`.
    pub fn from_vec(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != width * height {
            return Err(Error::param(
                "plane",
                format!("{} samples for a {width}x{height} plane", data.len()),
            ));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }
    /// Sample at (x, y).
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }
    /// Row `y`.
    #[inline]
    pub fn row(&self, y: usize) -> &[f32] {
        &self.data[y * self.width..(y + 1) * self.width]
    }
    /// Mutable row `y`.
    #[inline]
    pub fn row_mut(&mut self, y: usize) -> &mut [f32] {
        &mut self.data[y * self.width..(y + 1) * self.width]
    }
    /// Errors unless `data` holds `width × height` samples (the fields are public, so a
    /// plane need not have come from a checked constructor).
    pub fn check(&self) -> Result<()> {
        if self.width.checked_mul(self.height) != Some(self.data.len()) {
            return Err(Error::param(
                "plane",
                format!(
                    "{} samples for a {}x{} plane",
                    self.data.len(),
                    self.width,
                    self.height
                ),
            ));
        }
        Ok(())
    }
    /// Errors unless `other` has the same dimensions.
    pub fn ensure_same_dims(&self, other: &Plane, what: &str) -> Result<()> {
        if self.width != other.width || self.height != other.height {
            return Err(Error::SizeMismatch {
                what: what.into(),
                a_width: self.width,
                a_height: self.height,
                b_width: other.width,
                b_height: other.height,
            });
        }
        Ok(())
    }
}

/// A planar RGB image with samples in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct PlanarRgb {
    /// R, G, B planes of equal size.
    pub planes: [Plane; 3],
}

/// 1/255 as the exact f32 the conversion multiplies by.
const INV_255: f32 = 1.0 / 255.0;

impl PlanarRgb {
    /// A black image.
    pub fn zeros(width: usize, height: usize) -> Self {
        Self {
            planes: std::array::from_fn(|_| Plane::zeros(width, height)),
        }
    }
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.planes[0].width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.planes[0].height
    }
    /// Builds from three planes of equal size.
    pub fn from_planes(planes: [Plane; 3]) -> Result<Self> {
        let img = Self { planes };
        img.check()?;
        Ok(img)
    }
    /// Errors unless the three planes have one size and each holds its samples (the fields
    /// are public; every entry point that reads an image calls this).
    pub fn check(&self) -> Result<()> {
        for p in &self.planes {
            p.check()?;
        }
        self.planes[0].ensure_same_dims(&self.planes[1], "RGB planes")?;
        self.planes[0].ensure_same_dims(&self.planes[2], "RGB planes")
    }
    /// Converts a packed frame to planar f32 in [0, 1] (one pass, rows in parallel for large
    /// frames).
    pub fn from_frame(frame: &FrameRef<'_>) -> Self {
        let mut out = Self::zeros(frame.width as usize, frame.height as usize);
        out.fill_from_frame(frame);
        out
    }
    /// Like [`from_frame`](Self::from_frame) into an existing image of the same size
    /// (reuses the allocation across video frames).
    pub fn fill_from_frame(&mut self, frame: &FrameRef<'_>) {
        let (w, h) = (frame.width as usize, frame.height as usize);
        if self.width() != w || self.height() != h {
            *self = Self::zeros(w, h);
        }
        let [r, g, b] = &mut self.planes;
        use rayon::prelude::*;
        r.data
            .par_chunks_mut(w)
            .zip(g.data.par_chunks_mut(w))
            .zip(b.data.par_chunks_mut(w))
            .enumerate()
            .with_min_len(16)
            .for_each(|(y, ((rr, gg), bb))| {
                unpack_rgb_row(frame.format, frame.row(y), rr, gg, bb);
            });
    }
    /// Writes this image into `out` (same size), rounding to 8 bits. Alpha is copied from
    /// `alpha_src` when the format has alpha (255 when no source is given); padding bytes are
    /// set to 255.
    pub fn write_frame(
        &self,
        out: &mut FrameMut<'_>,
        alpha_src: Option<&FrameRef<'_>>,
    ) -> Result<()> {
        self.check()?;
        let (w, h) = (out.width as usize, out.height as usize);
        if let Some(a) = alpha_src
            && (a.width != out.width || a.height != out.height || a.format != out.format)
        {
            return Err(Error::param(
                "alpha source",
                format!(
                    "a {}x{} {:?} frame for a {}x{} {:?} output",
                    a.width, a.height, a.format, out.width, out.height, out.format
                ),
            ));
        }
        if self.width() != w || self.height() != h {
            return Err(Error::SizeMismatch {
                what: "planar image and output frame".into(),
                a_width: self.width(),
                a_height: self.height(),
                b_width: w,
                b_height: h,
            });
        }
        let fmt = out.format;
        let bpp = fmt.bytes_per_pixel();
        let off = fmt.rgb_offsets();
        let stride = out.stride;
        let row_bytes = w * bpp;
        use rayon::prelude::*;
        out.data
            .par_chunks_mut(stride)
            .take(h)
            .enumerate()
            .with_min_len(16)
            .for_each(|(y, row)| {
                let row = &mut row[..row_bytes];
                let (r, g, b) = (
                    self.planes[0].row(y),
                    self.planes[1].row(y),
                    self.planes[2].row(y),
                );
                let alpha = alpha_src
                    .map(|a| a.row(y))
                    .filter(|_| fmt.alpha_offset().is_some());
                match (bpp, off) {
                    (4, [0, 1, 2]) => pack_row::<4, 0, 2>(row, r, g, b, alpha),
                    (4, _) => pack_row::<4, 2, 0>(row, r, g, b, alpha),
                    (_, [0, 1, 2]) => pack_row::<3, 0, 2>(row, r, g, b, None),
                    _ => pack_row::<3, 2, 0>(row, r, g, b, None),
                }
            });
        Ok(())
    }
    /// Packs to tightly packed RGB8 bytes (for PNG encoding).
    pub fn to_rgb8(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.fill_rgb8(&mut v);
        v
    }
    /// Like [`to_rgb8`](Self::to_rgb8) into an existing buffer (resized; rows in parallel),
    /// so a video stream reuses its allocation.
    pub fn fill_rgb8(&self, out: &mut Vec<u8>) {
        let w = self.width();
        out.resize(w * self.height() * 3, 0);
        if w == 0 {
            return;
        }
        let [r, g, b] = &self.planes;
        use rayon::prelude::*;
        out.par_chunks_mut(3 * w)
            .zip(r.data.par_chunks(w))
            .zip(g.data.par_chunks(w))
            .zip(b.data.par_chunks(w))
            .with_min_len(16)
            .for_each(|(((row, r), g), b)| {
                for (((px, &r), &g), &b) in row.chunks_exact_mut(3).zip(r).zip(g).zip(b) {
                    px[0] = to_u8(r);
                    px[1] = to_u8(g);
                    px[2] = to_u8(b);
                }
            });
    }
    /// Unpacks tightly packed RGB8 bytes.
    pub fn from_rgb8(width: usize, height: usize, bytes: &[u8]) -> Result<Self> {
        let frame = FrameRef::new(
            bytes,
            width as u32,
            height as u32,
            width * 3,
            PixelFormat::Rgb,
        )?;
        Ok(Self::from_frame(&frame))
    }
    /// Rounds every sample to the nearest multiple of 1/255 (what a PNG round trip does).
    pub fn quantize(&mut self) {
        for p in &mut self.planes {
            for v in &mut p.data {
                *v = to_u8(*v) as f32 * INV_255;
            }
        }
    }
}

/// One packed row of `format` → three planar rows in [0, 1].
#[inline]
pub(crate) fn unpack_rgb_row(
    format: PixelFormat,
    src: &[u8],
    r: &mut [f32],
    g: &mut [f32],
    b: &mut [f32],
) {
    match (format.bytes_per_pixel(), format.rgb_offsets()) {
        (4, [0, 1, 2]) => unpack_row::<4, 0, 2>(src, r, g, b),
        (4, _) => unpack_row::<4, 2, 0>(src, r, g, b),
        (_, [0, 1, 2]) => unpack_row::<3, 0, 2>(src, r, g, b),
        _ => unpack_row::<3, 2, 0>(src, r, g, b),
    }
}

/// Three planar rows (rounded, saturated) → one packed row of `format`; alpha is copied from
/// `alpha` (a row of the same layout) when the format has it, else 255.
#[inline]
pub(crate) fn pack_rgb_row(
    format: PixelFormat,
    row: &mut [u8],
    rgb: [&[f32]; 3],
    alpha: Option<&[u8]>,
) {
    let alpha = alpha.filter(|_| format.alpha_offset().is_some());
    let [r, g, b] = rgb;
    match (format.bytes_per_pixel(), format.rgb_offsets()) {
        (4, [0, 1, 2]) => pack_row::<4, 0, 2>(row, r, g, b, alpha),
        (4, _) => pack_row::<4, 2, 0>(row, r, g, b, alpha),
        (_, [0, 1, 2]) => pack_row::<3, 0, 2>(row, r, g, b, None),
        _ => pack_row::<3, 2, 0>(row, r, g, b, None),
    }
}

/// One packed row → three planar rows. `BPP` bytes per pixel, R at byte `R`, B at byte `B`.
#[inline(always)]
fn unpack_row<const BPP: usize, const R: usize, const B: usize>(
    src: &[u8],
    rr: &mut [f32],
    gg: &mut [f32],
    bb: &mut [f32],
) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    let done = if BPP == 4 {
        unpack4_avx2::<R, B>(src, rr, gg, bb)
    } else {
        0
    };
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    let done = 0;
    // `done` ≤ every length (the fast path stops at the shortest).
    let (src, rr, gg, bb) = (
        &src[done * BPP..],
        &mut rr[done..],
        &mut gg[done..],
        &mut bb[done..],
    );
    for (((px, r), g), b) in src.chunks_exact(BPP).zip(rr).zip(gg).zip(bb) {
        *r = px[R] as f32 * INV_255;
        *g = px[1] as f32 * INV_255;
        *b = px[B] as f32 * INV_255;
    }
}

/// Three planar rows → one packed row; the 4th byte is copied from `alpha` (same layout) or 255.
#[inline(always)]
fn pack_row<const BPP: usize, const R: usize, const B: usize>(
    row: &mut [u8],
    r: &[f32],
    g: &[f32],
    b: &[f32],
    alpha: Option<&[u8]>,
) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    let done = if BPP == 4 {
        pack4_avx2::<R, B>(row, r, g, b, alpha)
    } else {
        0
    };
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    let done = 0;
    // `done` ≤ every length (the fast path stops at the shortest).
    let (row, r, g, b) = (&mut row[done * BPP..], &r[done..], &g[done..], &b[done..]);
    let alpha = alpha.map(|a| &a[done * BPP..]);
    for (((px, &r), &g), &b) in row.chunks_exact_mut(BPP).zip(r).zip(g).zip(b) {
        px[R] = to_u8(r);
        px[1] = to_u8(g);
        px[B] = to_u8(b);
        if BPP == 4 {
            px[3] = 255;
        }
    }
    if let Some(src) = alpha {
        for (d, s) in row.chunks_exact_mut(BPP).zip(src.chunks_exact(BPP)) {
            d[3] = s[3];
        }
    }
}

/// [`unpack_row`] for 4-byte pixels, eight at a time: the same `byte as f32 * INV_255` per
/// channel (bit-identical). Returns the number of pixels done (a multiple of 8).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn unpack4_avx2<const R: usize, const B: usize>(
    src: &[u8],
    rr: &mut [f32],
    gg: &mut [f32],
    bb: &mut [f32],
) -> usize {
    use std::arch::x86_64::*;
    let n = (src.len() / 4).min(rr.len()).min(gg.len()).min(bb.len());
    let mut x = 0;
    // SAFETY: AVX2 is enabled at compile time; x + 8 ≤ n bounds the 32-byte load and the
    // eight-float stores.
    unsafe {
        let (k, mask) = (_mm256_set1_ps(INV_255), _mm256_set1_epi32(0xff));
        let chan = |v: __m256i, byte: usize| {
            let c = match byte {
                0 => v,
                1 => _mm256_srli_epi32::<8>(v),
                2 => _mm256_srli_epi32::<16>(v),
                _ => _mm256_srli_epi32::<24>(v),
            };
            _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(c, mask)), k)
        };
        while x + 8 <= n {
            let v = _mm256_loadu_si256(src.as_ptr().add(4 * x) as *const __m256i);
            _mm256_storeu_ps(rr.as_mut_ptr().add(x), chan(v, R));
            _mm256_storeu_ps(gg.as_mut_ptr().add(x), chan(v, 1));
            _mm256_storeu_ps(bb.as_mut_ptr().add(x), chan(v, B));
            x += 8;
        }
    }
    x
}

/// [`pack_row`] for 4-byte pixels, eight at a time: [`to_u8`] per channel (`v·255 + 0.5`,
/// truncated and saturated, NaN to 0: bit-identical), the 4th byte from `alpha` or 255.
/// Returns the number of pixels done (a multiple of 8).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn pack4_avx2<const R: usize, const B: usize>(
    row: &mut [u8],
    r: &[f32],
    g: &[f32],
    b: &[f32],
    alpha: Option<&[u8]>,
) -> usize {
    use std::arch::x86_64::*;
    let mut n = (row.len() / 4).min(r.len()).min(g.len()).min(b.len());
    if let Some(a) = alpha {
        n = n.min(a.len() / 4);
    }
    let mut x = 0;
    // SAFETY: AVX2 is enabled at compile time; x + 8 ≤ n bounds the loads and the 32-byte
    // store.
    unsafe {
        let (k, half) = (_mm256_set1_ps(255.0), _mm256_set1_ps(0.5));
        let (zero, top) = (_mm256_setzero_ps(), _mm256_set1_ps(255.0));
        // max(NaN, 0) is 0 (vmaxps returns its second operand on NaN), then ≤ 255: the
        // truncation is then the saturating `as u8`.
        let q = |p: *const f32| {
            let v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(p), k), half);
            _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(v, zero), top))
        };
        let alpha_mask = _mm256_set1_epi32(0xff00_0000u32 as i32);
        while x + 8 <= n {
            let (cr, cg, cb) = (
                q(r.as_ptr().add(x)),
                q(g.as_ptr().add(x)),
                q(b.as_ptr().add(x)),
            );
            // R and B are bytes 0 and 2 (RGBA/RGBx) or 2 and 0 (BGRA/BGRx).
            let rb = if R == 0 {
                _mm256_or_si256(cr, _mm256_slli_epi32::<16>(cb))
            } else {
                _mm256_or_si256(_mm256_slli_epi32::<16>(cr), cb)
            };
            let a = match alpha {
                Some(a) => _mm256_and_si256(
                    _mm256_loadu_si256(a.as_ptr().add(4 * x) as *const __m256i),
                    alpha_mask,
                ),
                None => alpha_mask,
            };
            let px = _mm256_or_si256(_mm256_or_si256(rb, _mm256_slli_epi32::<8>(cg)), a);
            _mm256_storeu_si256(row.as_mut_ptr().add(4 * x) as *mut __m256i, px);
            x += 8;
        }
    }
    x
}

/// [0, 1] f32 → u8 with rounding; NaN becomes 0.
#[inline]
pub fn to_u8(v: f32) -> u8 {
    // `as u8` saturates and maps NaN to 0.
    (v * 255.0 + 0.5) as u8
}

/// `out = strength·out + (1 − strength)·input`, sample by sample (no-op at strength ≥ 1).
pub fn blend(out: &mut [f32], input: &[f32], strength: f32) {
    if strength >= 1.0 {
        return;
    }
    for (o, &i) in out.iter_mut().zip(input) {
        *o = strength * *o + (1.0 - strength) * i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_and_unpacking_rows_match_the_per_pixel_rules_in_every_format() {
        // Widths around the eight-pixel blocks of the AVX2 paths; values off the grid, at the
        // rounding boundary, out of range and NaN.
        let special = [
            f32::NAN,
            -0.3,
            0.0,
            0.5 / 255.0,
            1.0,
            1.7,
            127.5 / 255.0,
            f32::INFINITY,
        ];
        for format in PixelFormat::ALL {
            let bpp = format.bytes_per_pixel();
            let [ro, go, bo] = format.rgb_offsets();
            for w in [1usize, 7, 8, 9, 16, 37] {
                let val = |c: usize, x: usize| {
                    let i = x * 3 + c;
                    if i.is_multiple_of(5) {
                        special[(i / 5) % special.len()]
                    } else {
                        ((i * 37) % 263) as f32 / 257.0
                    }
                };
                let rgb: [Vec<f32>; 3] =
                    std::array::from_fn(|c| (0..w).map(|x| val(c, x)).collect());
                let alpha: Vec<u8> = (0..w * bpp).map(|i| (i * 11 % 256) as u8).collect();
                let mut row = vec![0u8; w * bpp];
                pack_rgb_row(format, &mut row, [&rgb[0], &rgb[1], &rgb[2]], Some(&alpha));
                for x in 0..w {
                    let px = &row[x * bpp..(x + 1) * bpp];
                    for (c, &o) in [ro, go, bo].iter().enumerate() {
                        assert_eq!(px[o], to_u8(rgb[c][x]), "{format:?} w={w} x={x} c={c}");
                    }
                    if let Some(a) = format.alpha_offset() {
                        assert_eq!(px[a], alpha[x * bpp + a], "{format:?} alpha");
                    } else if bpp == 4 {
                        assert_eq!(px[3], 255, "{format:?} padding");
                    }
                }
                let mut back: [Vec<f32>; 3] = std::array::from_fn(|_| vec![f32::NAN; w]);
                let [r, g, b] = &mut back;
                unpack_rgb_row(format, &row, r, g, b);
                for x in 0..w {
                    for (c, &o) in [ro, go, bo].iter().enumerate() {
                        let want = row[x * bpp + o] as f32 * INV_255;
                        assert_eq!(
                            back[c][x].to_bits(),
                            want.to_bits(),
                            "{format:?} w={w} x={x}"
                        );
                    }
                }
            }
        }
    }
}
