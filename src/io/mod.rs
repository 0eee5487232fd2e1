//! Image files in and out (PNG and JPEG through the `image` crate).
//!
//! Reading checks before it decodes: the header's dimensions against
//! [`MAX_DIMENSION`](crate::frame::MAX_DIMENSION) and the
//! memory the image needs ([`check_size`], [`available_memory`]), then that the file is whole
//! ([`check_complete_bytes`]: the JPEG decoder would otherwise fill a truncated file with grey).
//! The EXIF orientation is applied, so pixels come out the way a viewer shows them.
//!
//! Writing goes to a temporary file beside the target (`.NAME.derain-PID-N.tmp`), renamed over
//! it once the encoder has finished and the bytes are flushed: a failed write leaves no partial
//! file and keeps what was there before. Only `.png`, `.jpg` and `.jpeg` are written
//! ([`FileFormat::from_path`]); callers that do long work first can check the name up front.

mod complete;
mod memory;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::{DynamicImage, ImageDecoder};

use crate::config::Mode;
use crate::error::{Error, Result};
use crate::frame::{FrameRef, PixelFormat, PlanarRgb, Plane, to_u8};

pub use complete::check_complete_bytes;
pub use memory::{available_memory, bytes_per_pixel, check_size, estimated_bytes};

/// The file formats derain writes, chosen by extension (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `.png`: 8 or 16 bits per sample, with or without alpha.
    Png,
    /// `.jpg`, `.jpeg`: 8-bit RGB, no alpha.
    Jpeg,
}

impl FileFormat {
    /// The format `path`'s extension names; an [`Error::ImageWrite`] naming the file for any
    /// other extension (or none), so a command can refuse before it does any work.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(FileFormat::Png),
            Some("jpg" | "jpeg") => Ok(FileFormat::Jpeg),
            other => Err(Error::ImageWrite {
                path: path.into(),
                reason: format!(
                    "{} is not a format derain writes (use .png, .jpg or .jpeg)",
                    other.map_or("no extension".to_owned(), |e| format!("extension `.{e}`"))
                ),
            }),
        }
    }
    /// Whether the format stores an alpha channel.
    pub fn keeps_alpha(self) -> bool {
        self == FileFormat::Png
    }
    /// The most bits per sample the format stores.
    pub fn max_bit_depth(self) -> u8 {
        match self {
            FileFormat::Png => 16,
            FileFormat::Jpeg => 8,
        }
    }
}

/// A still image as read from a file: RGB for the pipeline, plus what the pipeline leaves
/// alone and a writer should put back.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The colour, planar in \[0,1\] (grey files are spread to three equal planes).
    pub rgb: PlanarRgb,
    /// The alpha channel in \[0,1\] when the file has one (same size as `rgb`).
    pub alpha: Option<Plane>,
    /// Bits per sample in the file: 8 or 16.
    pub bit_depth: u8,
}

impl Picture {
    /// What writing this picture as `format` would drop, one phrase each (empty: nothing).
    pub fn losses(&self, format: FileFormat) -> Vec<String> {
        let name = match format {
            FileFormat::Png => "PNG",
            FileFormat::Jpeg => "JPEG",
        };
        let mut out = Vec::new();
        if self.alpha.is_some() && !format.keeps_alpha() {
            out.push(format!(
                "the alpha channel is dropped ({name} has none; write .png to keep it)"
            ));
        }
        if self.bit_depth > format.max_bit_depth() {
            out.push(format!(
                "{}-bit samples are written as {}-bit ({name} holds no more; write .png to keep \
                 them)",
                self.bit_depth,
                format.max_bit_depth()
            ));
        }
        out
    }
}

/// Reads a PNG or JPEG (any bit depth / colour type `image` decodes) as planar RGB in \[0,1\],
/// discarding alpha. Errors name the file. The checks of [`read_picture`], with the memory
/// figure of `physics` mode (the default and the leanest; use [`read_picture`] with
/// [`Mode::Full`] before running the networks on a large image).
pub fn load_image(path: &Path) -> Result<PlanarRgb> {
    read(path, Mode::Physics, false).map(|p| p.rgb)
}

/// Reads a PNG or JPEG with its alpha channel and bit depth, to be processed in `mode`. Before
/// decoding: the header's dimensions must pass [`check_size`] for `mode` against
/// [`available_memory`] ([`Error::ImageTooLarge`]),
/// and the file must be whole ([`check_complete_bytes`], [`Error::ImageTruncated`]). The EXIF
/// orientation (JPEG APP1, PNG eXIf) is applied. Other failures are [`Error::ImageRead`]; every
/// error names the file.
pub fn read_picture(path: &Path, mode: Mode) -> Result<Picture> {
    read(path, mode, true)
}

/// [`check_complete_bytes`] on a file: [`Error::ImageTruncated`] naming it when the file ends
/// before its end marker, [`Error::ImageRead`] when it cannot be read.
pub fn check_complete(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
    complete(path, &bytes)
}

/// Reads and decodes an image file with the checks of [`read_picture`] (header size and
/// memory for `mode`, a whole file, EXIF orientation applied), for a caller that wants the
/// decoded image as it is (`derain video`'s frame folders). The bytes are read once.
pub fn read_checked(path: &Path, mode: Mode) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| read_error(path, e))?;
    // The size check below replaces the crate's default limits (512 MiB per allocation, which
    // refuses 16-bit images derain can process).
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(|e| read_error(path, e))?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, mode, available_memory()).map_err(|reason| Error::ImageTooLarge {
        path: path.into(),
        width,
        height,
        reason,
    })?;
    complete(path, &bytes)?;
    let orientation = decoder.orientation().map_err(|e| read_error(path, e))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| read_error(path, e))?;
    img.apply_orientation(orientation);
    Ok(img)
}

fn complete(path: &Path, bytes: &[u8]) -> Result<()> {
    check_complete_bytes(bytes).map_err(|reason| Error::ImageTruncated {
        path: path.into(),
        reason,
    })
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::ImageRead {
        path: path.into(),
        reason: e.to_string(),
    }
}

fn read(path: &Path, mode: Mode, want_alpha: bool) -> Result<Picture> {
    let img = read_checked(path, mode)?;
    split(img, want_alpha).map_err(|e| read_error(path, e))
}

/// Planar RGB, alpha (when wanted and present) and bit depth of a decoded image.
fn split(img: DynamicImage, want_alpha: bool) -> Result<Picture> {
    use image::ColorType as C;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let alpha = want_alpha && img.color().has_alpha();
    let sixteen = matches!(img.color(), C::L16 | C::La16 | C::Rgb16 | C::Rgba16);
    if sixteen {
        let (raw, n) = if alpha {
            (img.into_rgba16().into_raw(), 4)
        } else {
            (img.into_rgb16().into_raw(), 3)
        };
        let plane = |c: usize| {
            let data = raw.chunks_exact(n).map(|p| f32::from(p[c]) / 65535.0);
            Plane::from_vec(w, h, data.collect())
        };
        return Ok(Picture {
            rgb: PlanarRgb::from_planes([plane(0)?, plane(1)?, plane(2)?])?,
            alpha: if alpha { Some(plane(3)?) } else { None },
            bit_depth: 16,
        });
    }
    if alpha {
        let raw = img.into_rgba8().into_raw();
        let frame = FrameRef::new(&raw, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
        let a = raw.chunks_exact(4).map(|p| f32::from(p[3]) / 255.0);
        return Ok(Picture {
            rgb: PlanarRgb::from_frame(&frame),
            alpha: Some(Plane::from_vec(w, h, a.collect())?),
            bit_depth: 8,
        });
    }
    let raw = img.into_rgb8().into_raw();
    Ok(Picture {
        rgb: PlanarRgb::from_rgb8(w, h, &raw)?,
        alpha: None,
        bit_depth: 8,
    })
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|cause| Error::Io {
            path: dir.into(),
            cause,
        })?;
    }
    Ok(())
}

fn write_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::ImageWrite {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// Encodes `img` into a temporary file beside `path` and renames it over `path` on success;
/// on failure the temporary file is removed and `path` is left as it was.
fn write_file(path: &Path, format: FileFormat, img: &DynamicImage) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    create_parent(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| write_error(path, "not a file name"))?;
    let tmp: PathBuf = path.with_file_name(format!(
        ".{}.derain-{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> std::result::Result<(), String> {
        let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        let mut w = std::io::BufWriter::new(file);
        match format {
            FileFormat::Png => img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut w)),
            FileFormat::Jpeg => {
                img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new(&mut w))
            }
        }
        .map_err(|e| e.to_string())?;
        // Dropping a BufWriter swallows its last write's error: flush explicitly.
        w.flush().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())
    })();
    result.map_err(|reason| {
        let _ = std::fs::remove_file(&tmp);
        write_error(path, reason)
    })
}

/// Samples of `rgb` (and `alpha`), interleaved and quantised by `q`.
fn interleave<T>(rgb: &PlanarRgb, alpha: Option<&Plane>, q: impl Fn(f32) -> T) -> Vec<T> {
    let n = rgb.width() * rgb.height();
    let [r, g, b] = &rgb.planes;
    let mut out = Vec::with_capacity(n * if alpha.is_some() { 4 } else { 3 });
    for i in 0..n {
        out.push(q(r.data[i]));
        out.push(q(g.data[i]));
        out.push(q(b.data[i]));
        if let Some(a) = alpha {
            out.push(q(a.data[i]));
        }
    }
    out
}

/// [0, 1] → 0..=65535, rounding; out-of-range values saturate, NaN becomes 0.
fn to_u16(v: f32) -> u16 {
    (v * 65535.0 + 0.5) as u16
}

/// Writes an RGB image as 8-bit PNG or JPEG by extension ([`FileFormat::from_path`]), creating
/// folders; see the module docs for how a failed write is cleaned up.
pub fn save_image(path: &Path, img: &PlanarRgb) -> Result<()> {
    let format = FileFormat::from_path(path)?;
    let (w, h) = (img.width() as u32, img.height() as u32);
    let buf = image::RgbImage::from_raw(w, h, img.to_rgb8())
        .ok_or_else(|| write_error(path, "buffer size"))?;
    write_file(path, format, &DynamicImage::ImageRgb8(buf))
}

/// Writes a [`Picture`] by extension, keeping its alpha channel and 16-bit samples where the
/// format stores them and dropping them silently where it does not ([`Picture::losses`] says
/// what a format drops, for a warning before the work). Same clean-up as [`save_image`].
pub fn save_picture(path: &Path, pic: &Picture) -> Result<()> {
    let format = FileFormat::from_path(path)?;
    let img = &pic.rgb;
    let (w, h) = (img.width() as u32, img.height() as u32);
    let alpha = pic.alpha.as_ref().filter(|_| format.keeps_alpha());
    if let Some(a) = alpha {
        img.planes[0].ensure_same_dims(a, "alpha plane")?;
    }
    let sixteen = pic.bit_depth > 8 && format.max_bit_depth() >= 16;
    let size = || write_error(path, "buffer size");
    let dynamic = match (sixteen, alpha.is_some()) {
        (false, false) => DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(w, h, interleave(img, None, to_u8)).ok_or_else(size)?,
        ),
        (false, true) => DynamicImage::ImageRgba8(
            image::RgbaImage::from_raw(w, h, interleave(img, alpha, to_u8)).ok_or_else(size)?,
        ),
        (true, false) => DynamicImage::ImageRgb16(
            image::ImageBuffer::from_raw(w, h, interleave(img, None, to_u16)).ok_or_else(size)?,
        ),
        (true, true) => DynamicImage::ImageRgba16(
            image::ImageBuffer::from_raw(w, h, interleave(img, alpha, to_u16)).ok_or_else(size)?,
        ),
    };
    write_file(path, format, &dynamic)
}

/// Writes a single plane as 8-bit grey PNG, mapping `[lo, hi]` to `[0, 255]`.
pub fn save_plane(path: &Path, plane: &Plane, lo: f32, hi: f32) -> Result<()> {
    let format = FileFormat::from_path(path)?;
    let scale = 1.0 / (hi - lo).max(1e-12);
    let bytes: Vec<u8> = plane
        .data
        .iter()
        .map(|&v| to_u8((v - lo) * scale))
        .collect();
    let buf = image::GrayImage::from_raw(plane.width as u32, plane.height as u32, bytes)
        .ok_or_else(|| write_error(path, "buffer size"))?;
    write_file(path, format, &DynamicImage::ImageLuma8(buf))
}

/// Reads a grey PNG as a plane in \[0,1\] (the inverse of [`save_plane`] with lo=0, hi=1).
pub fn load_plane(path: &Path) -> Result<Plane> {
    let img = image::ImageReader::open(path)
        .map_err(|e| Error::ImageRead {
            path: path.into(),
            reason: e.to_string(),
        })?
        .decode()
        .map_err(|e| Error::ImageRead {
            path: path.into(),
            reason: e.to_string(),
        })?
        .to_luma8();
    let (w, h) = img.dimensions();
    let data = img.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
    Plane::from_vec(w as usize, h as usize, data)
}

/// Places images side by side (same height required) into one image, with a 4-pixel white gap.
pub fn side_by_side(images: &[&PlanarRgb]) -> Result<PlanarRgb> {
    const GAP: usize = 4;
    let h = images.first().map(|i| i.height()).unwrap_or(0);
    if images.is_empty() || images.iter().any(|i| i.height() != h) {
        return Err(Error::param(
            "side_by_side",
            "images must be non-empty and equally tall",
        ));
    }
    let w: usize = images.iter().map(|i| i.width()).sum::<usize>() + GAP * (images.len() - 1);
    let mut out = PlanarRgb::zeros(w, h);
    for p in &mut out.planes {
        p.data.fill(1.0);
    }
    let mut x0 = 0;
    for img in images {
        for c in 0..3 {
            for y in 0..h {
                let iw = img.width();
                out.planes[c].row_mut(y)[x0..x0 + iw].copy_from_slice(img.planes[c].row(y));
            }
        }
        x0 += img.width() + GAP;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("derain-io-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn gradient(w: usize, h: usize) -> PlanarRgb {
        let mut img = PlanarRgb::zeros(w, h);
        for (c, p) in img.planes.iter_mut().enumerate() {
            for (i, v) in p.data.iter_mut().enumerate() {
                *v = ((i * (c + 3)) % 997) as f32 / 996.0;
            }
        }
        img
    }

    #[test]
    fn output_format_by_extension() {
        let f = |p: &str| FileFormat::from_path(Path::new(p));
        assert_eq!(f("a/b.png").unwrap(), FileFormat::Png);
        assert_eq!(f("b.JPEG").unwrap(), FileFormat::Jpeg);
        assert_eq!(f("b.jpg").unwrap(), FileFormat::Jpeg);
        for bad in ["b.webp", "b.bmp", "b", "b.png.tmp"] {
            let e = f(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("not a format"), "{e}");
        }
    }

    #[test]
    fn picture_round_trips_alpha_and_16_bits_through_png() {
        let d = tmpdir("roundtrip");
        let rgb = gradient(13, 7);
        let mut alpha = Plane::zeros(13, 7);
        for (i, v) in alpha.data.iter_mut().enumerate() {
            *v = (i * 811 % 65536) as f32 / 65535.0;
        }
        for bits in [8u8, 16] {
            let path = d.join(format!("p{bits}.png"));
            let pic = Picture {
                rgb: rgb.clone(),
                alpha: Some(alpha.clone()),
                bit_depth: bits,
            };
            assert!(pic.losses(FileFormat::Png).is_empty());
            save_picture(&path, &pic).unwrap();
            let back = read_picture(&path, Mode::Physics).unwrap();
            assert_eq!(back.bit_depth, bits);
            let step = if bits == 8 { 255.0 } else { 65535.0 };
            let a = back.alpha.expect("alpha kept");
            for (x, y) in a.data.iter().zip(&alpha.data) {
                assert!((x - y).abs() <= 0.5 / step + 1e-7, "{bits}: {x} vs {y}");
            }
            for c in 0..3 {
                for (x, y) in back.rgb.planes[c].data.iter().zip(&rgb.planes[c].data) {
                    assert!((x - y).abs() <= 0.5 / step + 1e-7, "{bits}: {x} vs {y}");
                }
            }
        }
        let pic = Picture {
            rgb,
            alpha: Some(alpha),
            bit_depth: 16,
        };
        let losses = pic.losses(FileFormat::Jpeg);
        assert_eq!(losses.len(), 2, "{losses:?}");
        save_picture(&d.join("p.jpg"), &pic).unwrap();
        let back = read_picture(&d.join("p.jpg"), Mode::Physics).unwrap();
        assert!(back.alpha.is_none() && back.bit_depth == 8);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let d = tmpdir("failwrite");
        // The target is a directory: encoding succeeds, the rename fails.
        std::fs::create_dir(d.join("out.png")).unwrap();
        let e = save_image(&d.join("out.png"), &gradient(8, 8)).unwrap_err();
        assert!(matches!(e, Error::ImageWrite { .. }), "{e}");
        assert!(e.to_string().contains("out.png"), "{e}");
        assert_eq!(listing(&d), ["out.png"]);
        assert!(d.join("out.png").is_dir());
        // An unknown extension writes nothing at all.
        assert!(save_image(&d.join("x.webp"), &gradient(8, 8)).is_err());
        assert!(save_plane(&d.join("p.tiff"), &Plane::zeros(4, 4), 0.0, 1.0).is_err());
        assert_eq!(listing(&d), ["out.png"]);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn truncated_files_are_typed_errors_naming_the_file() {
        let d = tmpdir("trunc");
        let path = d.join("whole.png");
        save_image(&path, &gradient(40, 30)).unwrap();
        check_complete(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let cut = d.join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() - 12]).unwrap(); // IEND missing
        for e in [
            check_complete(&cut).unwrap_err(),
            load_image(&cut).unwrap_err(),
        ] {
            assert!(matches!(e, Error::ImageTruncated { .. }), "{e}");
            assert!(e.to_string().contains("cut.png"), "{e}");
        }
        std::fs::remove_dir_all(&d).ok();
    }
}
