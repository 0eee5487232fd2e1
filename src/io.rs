//! Image files in and out (PNG and JPEG through the `image` crate).

use std::path::Path;

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane, to_u8};

/// Reads a PNG or JPEG (any bit depth / colour type `image` decodes) as planar RGB in [0,1].
/// Errors name the file.
pub fn load_image(path: &Path) -> Result<PlanarRgb> {
    let img = image::ImageReader::open(path)
        .map_err(|e| Error::ImageRead {
            path: path.into(),
            reason: e.to_string(),
        })?
        .with_guessed_format()
        .map_err(|e| Error::ImageRead {
            path: path.into(),
            reason: e.to_string(),
        })?
        .decode()
        .map_err(|e| Error::ImageRead {
            path: path.into(),
            reason: e.to_string(),
        })?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::ImageRead {
            path: path.into(),
            reason: "image has no pixels".into(),
        });
    }
    PlanarRgb::from_rgb8(w as usize, h as usize, rgb.as_raw()).map_err(|e| Error::ImageRead {
        path: path.into(),
        reason: e.to_string(),
    })
}

fn create_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })?;
    }
    Ok(())
}

/// Writes an RGB image as 8-bit PNG (or JPEG when the extension says so), creating folders.
pub fn save_image(path: &Path, img: &PlanarRgb) -> Result<()> {
    create_parent(path)?;
    let buf = image::RgbImage::from_raw(img.width() as u32, img.height() as u32, img.to_rgb8())
        .ok_or_else(|| Error::ImageWrite {
            path: path.into(),
            reason: "buffer size".into(),
        })?;
    buf.save(path).map_err(|e| Error::ImageWrite {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Writes a single plane as 8-bit grey PNG, mapping `[lo, hi]` to `[0, 255]`.
pub fn save_plane(path: &Path, plane: &Plane, lo: f32, hi: f32) -> Result<()> {
    create_parent(path)?;
    let scale = 1.0 / (hi - lo).max(1e-12);
    let bytes: Vec<u8> = plane
        .data
        .iter()
        .map(|&v| to_u8((v - lo) * scale))
        .collect();
    let buf = image::GrayImage::from_raw(plane.width as u32, plane.height as u32, bytes)
        .ok_or_else(|| Error::ImageWrite {
            path: path.into(),
            reason: "buffer size".into(),
        })?;
    buf.save(path).map_err(|e| Error::ImageWrite {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Reads a grey PNG as a plane in [0,1] (the inverse of [`save_plane`] with lo=0, hi=1).
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
