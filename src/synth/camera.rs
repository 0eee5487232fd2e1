//! Camera effects on top of a rendered sample: what a real camera does to the rainy scene
//! before we see it.
//!
//! | effect | range ([`Camera::sample`]) | applied to |
//! |---|---|---|
//! | rescale | ×0.5–1.5 (triangle filter) | every layer (streaks get thinner or wider) |
//! | gamma | v^γ, γ ∈ [0.8, 1.25] in half of the samples | I and J (the camera's tone curve) |
//! | sensor noise | σ² = σ_read² + σ_shot²·v, σ_read ≤ 0.01, σ_shot ≤ 0.03 | I |
//! | JPEG | quality 55–95 in 60 % of the samples (the `image` crate's encoder) | I |
//!
//! After camera effects the input no longer satisfies the model exactly (the tone curve, the
//! noise and the compression act on I alone); the ground truth J is what the same camera
//! would record of the clear scene, without noise or compression.

use std::io::Cursor;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};

use super::{RainySample, resize};

/// One draw of camera effects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// Resampling factor of the whole sample, [0.25, 4] (1 = none).
    pub rescale: f32,
    /// Tone-curve exponent on I and J, [0.5, 2] (1 = none).
    pub gamma: f32,
    /// Signal-independent noise σ on I, ≥ 0.
    pub read_noise: f32,
    /// Signal-dependent noise σ at full scale on I (σ² grows linearly with the value), ≥ 0.
    pub shot_noise: f32,
    /// JPEG quality 1–100 of I, or `None`.
    pub jpeg_quality: Option<u8>,
    /// Seed of the noise.
    pub seed: u64,
}

impl Camera {
    /// No effect at all.
    pub const NONE: Camera = Camera {
        rescale: 1.0,
        gamma: 1.0,
        read_noise: 0.0,
        shot_noise: 0.0,
        jpeg_quality: None,
        seed: 0,
    };

    /// Draws effects from the ranges of the module table.
    pub fn sample<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let rescale = if rng.random_bool(0.5) {
            rng.random_range(0.5..=1.5)
        } else {
            1.0
        };
        let gamma = if rng.random_bool(0.5) {
            rng.random_range(0.8..=1.25)
        } else {
            1.0
        };
        let noisy = rng.random_bool(0.5);
        let read_noise = if noisy {
            rng.random_range(0.0..=0.01)
        } else {
            0.0
        };
        let shot_noise = if noisy {
            rng.random_range(0.0..=0.03)
        } else {
            0.0
        };
        let jpeg_quality = rng.random_bool(0.6).then(|| rng.random_range(55..=95));
        Self {
            rescale,
            gamma,
            read_noise,
            shot_noise,
            jpeg_quality,
            seed: rng.next_u64(),
        }
    }

    /// Checks the ranges of the fields.
    pub fn validate(&self) -> Result<()> {
        let ok = (0.25..=4.0).contains(&self.rescale)
            && (0.5..=2.0).contains(&self.gamma)
            && self.read_noise.is_finite()
            && self.read_noise >= 0.0
            && self.shot_noise.is_finite()
            && self.shot_noise >= 0.0
            && self.jpeg_quality.is_none_or(|q| (1..=100).contains(&q));
        if ok {
            Ok(())
        } else {
            Err(Error::param("camera", format!("out of range: {self:?}")))
        }
    }

    /// Applies the effects to `s` (see the module doc for what each one touches).
    pub fn apply(&self, mut s: RainySample) -> Result<RainySample> {
        self.validate()?;
        if self.rescale != 1.0 {
            let w = ((s.width() as f32 * self.rescale).round() as usize).max(1);
            let h = ((s.height() as f32 * self.rescale).round() as usize).max(1);
            s.input = resize(&s.input, w, h)?;
            s.background = resize(&s.background, w, h)?;
            s.streaks = resize(&s.streaks, w, h)?;
            s.transmission = resize_plane(&s.transmission, w, h)?;
            s.depth = resize_plane(&s.depth, w, h)?;
        }
        if self.gamma != 1.0 {
            for img in [&mut s.input, &mut s.background] {
                for p in &mut img.planes {
                    p.data
                        .iter_mut()
                        .for_each(|v| *v = v.clamp(0.0, 1.0).powf(self.gamma));
                }
            }
        }
        if self.read_noise > 0.0 || self.shot_noise > 0.0 {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            let (r2, s2) = (self.read_noise.powi(2), self.shot_noise.powi(2));
            for p in &mut s.input.planes {
                for v in &mut p.data {
                    let z: f32 = StandardNormal.sample(&mut rng);
                    *v = (*v + z * (r2 + s2 * v.max(0.0)).sqrt()).clamp(0.0, 1.0);
                }
            }
        }
        if let Some(q) = self.jpeg_quality {
            s.input = jpeg_roundtrip(&s.input, q)?;
        }
        Ok(s)
    }
}

fn resize_plane(p: &Plane, w: usize, h: usize) -> Result<Plane> {
    let img = PlanarRgb::from_planes([p.clone(), p.clone(), p.clone()])?;
    let [out, _, _] = resize(&img, w, h)?.planes;
    Ok(out)
}

/// Encodes `img` as a baseline JPEG of quality `q` and decodes it again.
pub fn jpeg_roundtrip(img: &PlanarRgb, q: u8) -> Result<PlanarRgb> {
    let (w, h) = (img.width(), img.height());
    let mut buf = Cursor::new(Vec::new());
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, q);
    image::ImageEncoder::write_image(
        enc,
        &img.to_rgb8(),
        w as u32,
        h as u32,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| Error::param("jpeg", e.to_string()))?;
    let dec = image::load_from_memory_with_format(&buf.into_inner(), image::ImageFormat::Jpeg)
        .map_err(|e| Error::param("jpeg", e.to_string()))?
        .to_rgb8();
    PlanarRgb::from_rgb8(w, h, dec.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{RainParams, RainRange, render};

    fn scene() -> PlanarRgb {
        let mut img = PlanarRgb::zeros(48, 32);
        for (c, p) in img.planes.iter_mut().enumerate() {
            for (i, v) in p.data.iter_mut().enumerate() {
                *v = ((i * (c + 3)) % 50) as f32 / 60.0 + 0.1;
            }
        }
        img
    }

    #[test]
    fn no_effect_is_the_identity_and_effects_are_deterministic() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let p = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        let s = render(&scene(), &p).unwrap();
        assert_eq!(Camera::NONE.apply(s.clone()).unwrap(), s);
        let cam = Camera {
            rescale: 1.5,
            gamma: 0.8,
            read_noise: 0.01,
            shot_noise: 0.02,
            jpeg_quality: Some(70),
            seed: 5,
        };
        let a = cam.apply(s.clone()).unwrap();
        assert_eq!(a, cam.apply(s.clone()).unwrap());
        assert_eq!((a.width(), a.height()), (72, 48));
        assert_eq!(a.transmission.width, 72);
        // Noise and JPEG touch I only: J is the gamma'd, resized clean image.
        let j = resize(&s.background, 72, 48).unwrap();
        let want = j.planes[1].data[100].clamp(0.0, 1.0).powf(0.8);
        assert!((a.background.planes[1].data[100] - want).abs() < 1e-6);
        assert!(Camera { gamma: 3.0, ..cam }.apply(s).is_err());
    }

    #[test]
    fn jpeg_roundtrip_is_close_but_not_exact() {
        let img = scene();
        let out = jpeg_roundtrip(&img, 90).unwrap();
        let mse: f32 = img.planes[0]
            .data
            .iter()
            .zip(&out.planes[0].data)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            / img.planes[0].data.len() as f32;
        assert!(mse > 0.0 && mse < 1e-3, "{mse}");
    }
}
