//! The on-disk layout of rendered samples and the per-sample seeds.
//!
//! A sample named `STEM` lives in six folders under one root, as 8-bit PNGs of equal size:
//!
//! | folder | content |
//! |---|---|
//! | `in/STEM.png` | I, the rainy input (RGB) |
//! | `gt/STEM.png` | J, the clean background (RGB) |
//! | `streak/STEM.png` | S, the streak layer (RGB; grey for the achromatic blend), [0, 1] → [0,255] |
//! | `trans/STEM.png` | T, transmission, grey, [0, 1] → [0,255] |
//! | `atm/STEM.png` | A, the atmospheric light, a constant RGB image |
//! | `depth/STEM.png` | D, the proxy depth, grey, 0 near → 255 far |
//!
//! After [`RainySample::quantize`] the files satisfy I = T(J + S) + (1 − T)A to within half a
//! grey level.

use std::io::Cursor;
use std::path::Path;

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};
use crate::io::{load_image, load_plane, save_image, save_plane};

use super::RainySample;

/// The sub-folders of a rendered data set, in the order input, J, S, T, A, D.
pub const LAYER_DIRS: [&str; 6] = ["in", "gt", "streak", "trans", "atm", "depth"];

/// SplitMix64: a bijective 64-bit mixer (Steele, Lea & Flood 2014).
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG seed of sample `index` rendered from the source image named `source` under the
/// data-set seed `seed`. It depends on the name (FNV-1a), not on the position in a folder
/// listing, so adding or removing other images never changes a sample.
pub fn sample_seed(seed: u64, source: &str, index: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(splitmix64(seed ^ h) ^ index)
}

/// Encodes an RGB image as an 8-bit PNG in memory.
pub fn encode_png(img: &PlanarRgb) -> Result<Vec<u8>> {
    let buf = image::RgbImage::from_raw(img.width() as u32, img.height() as u32, img.to_rgb8())
        .ok_or_else(|| Error::param("image", "buffer size"))?;
    let mut out = Cursor::new(Vec::new());
    buf.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::ImageWrite {
            path: "<memory>".into(),
            reason: e.to_string(),
        })?;
    Ok(out.into_inner())
}

fn path(root: &Path, dir: &str, stem: &str) -> std::path::PathBuf {
    root.join(dir).join(format!("{stem}.png"))
}

impl RainySample {
    /// Writes every layer under `root` as `{in,gt,streak,trans,atm,depth}/STEM.png` (folders
    /// are created). Call [`quantize`](Self::quantize) first for files that satisfy the model
    /// to within half a grey level.
    pub fn save(&self, root: &Path, stem: &str) -> Result<()> {
        save_image(&path(root, "gt", stem), &self.background)?;
        self.save_without_background(root, stem)
    }

    /// Like [`save`](Self::save) but leaves `gt/` alone (for callers that write one encoded
    /// background for many samples of the same image).
    pub fn save_without_background(&self, root: &Path, stem: &str) -> Result<()> {
        save_image(&path(root, "in", stem), &self.input)?;
        save_image(&path(root, "streak", stem), &self.streaks)?;
        save_plane(&path(root, "trans", stem), &self.transmission, 0.0, 1.0)?;
        save_plane(&path(root, "depth", stem), &self.depth, 0.0, 1.0)?;
        let a = PlanarRgb::from_planes(
            self.atmosphere
                .map(|v| Plane::filled(self.width(), self.height(), v)),
        )?;
        save_image(&path(root, "atm", stem), &a)
    }

    /// Reads a sample written by [`save`](Self::save). A is read from the top-left pixel of
    /// `atm/STEM.png`.
    pub fn load(root: &Path, stem: &str) -> Result<Self> {
        let input = load_image(&path(root, "in", stem))?;
        let background = load_image(&path(root, "gt", stem))?;
        let streaks = load_image(&path(root, "streak", stem))?;
        let transmission = load_plane(&path(root, "trans", stem))?;
        let depth = load_plane(&path(root, "depth", stem))?;
        let a = load_image(&path(root, "atm", stem))?;
        for p in [&streaks.planes[0], &transmission, &depth] {
            input.planes[0].ensure_same_dims(p, "layers of a saved sample")?;
        }
        input.planes[0].ensure_same_dims(&background.planes[0], "layers of a saved sample")?;
        Ok(Self {
            atmosphere: [0, 1, 2].map(|c| a.planes[c].data[0]),
            input,
            background,
            streaks,
            transmission,
            depth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_seeds_differ_by_name_and_index_and_are_stable() {
        let a = sample_seed(1, "sun_000", 0);
        assert_eq!(a, sample_seed(1, "sun_000", 0));
        assert_ne!(a, sample_seed(1, "sun_000", 1));
        assert_ne!(a, sample_seed(1, "sun_001", 0));
        assert_ne!(a, sample_seed(2, "sun_000", 0));
    }

    #[test]
    fn png_bytes_decode_to_the_same_pixels() {
        let mut img = PlanarRgb::zeros(5, 3);
        img.planes[1].data[7] = 0.5;
        let bytes = encode_png(&img).unwrap();
        let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(back.as_raw(), &img.to_rgb8());
    }
}
