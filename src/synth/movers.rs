//! Moving objects for synthetic video: textured shapes that cross a clip in screen space, so
//! that temporal deraining is tested on scenes that do change (cars, people, swinging signs).
//!
//! Each object is an ellipse or a rounded rectangle, 10–30 % of the frame height tall, moving
//! at a constant 1.5–6 px per frame within ±25° of horizontal. Its texture is two colours drawn
//! from the clip's RNG mixed by a stripe or checker pattern of period 6–24 px, so it has edges
//! inside as well as on its outline. Edges are anti-aliased over one pixel. Objects are part
//! of the ground truth; rain and veil fall over them like over the rest of the scene.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::frame::PlanarRgb;

/// RNG stream of the moving objects.
const MOVER_STREAM: u64 = 0x0B_1E;

/// One textured shape moving at constant velocity.
#[derive(Debug, Clone, PartialEq)]
pub struct Mover {
    /// Centre at frame 0, output px.
    pub centre: (f32, f32),
    /// Displacement per frame, px.
    pub velocity: (f32, f32),
    /// Half width and half height, px.
    pub half: (f32, f32),
    /// Ellipse (true) or rounded rectangle (false).
    pub ellipse: bool,
    /// The two texture colours (linear RGB in [0, 1]).
    pub colours: [[f32; 3]; 2],
    /// Texture: stripe period (px) and direction (radians); checker when `checker`.
    pub period: f32,
    /// Stripe direction, radians.
    pub angle: f32,
    /// Checkerboard instead of stripes.
    pub checker: bool,
}

/// `count` objects for a `w`×`h` clip of `frames` frames, deterministic in `seed`. Each starts
/// inside the frame, so every object is seen at frame 0.
pub fn movers(count: usize, w: usize, h: usize, seed: u64) -> Vec<Mover> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(MOVER_STREAM);
    let (wf, hf) = (w as f32, h as f32);
    (0..count)
        .map(|_| {
            let hh = hf * rng.random_range(0.05..0.15);
            let hw = hh * rng.random_range(0.8..2.0);
            let speed = rng.random_range(1.5..6.0f32);
            let dir = rng.random_range(-25.0..25.0f32).to_radians()
                + if rng.random_bool(0.5) {
                    0.0
                } else {
                    std::f32::consts::PI
                };
            let mut colour = || {
                [
                    rng.random_range(0.05..0.95f32),
                    rng.random_range(0.05..0.95f32),
                    rng.random_range(0.05..0.95f32),
                ]
            };
            let colours = [colour(), colour()];
            Mover {
                centre: (rng.random_range(0.0..wf), rng.random_range(0.0..hf)),
                velocity: (speed * dir.cos(), speed * dir.sin()),
                half: (hw, hh),
                ellipse: rng.random_bool(0.5),
                colours,
                period: rng.random_range(6.0..24.0),
                angle: rng.random_range(0.0..std::f32::consts::PI),
                checker: rng.random_bool(0.4),
            }
        })
        .collect()
}

impl Mover {
    /// Coverage in [0, 1] of the pixel centred at (x, y) (relative to the object's centre),
    /// anti-aliased over about one pixel.
    fn coverage(&self, dx: f32, dy: f32) -> f32 {
        let (a, b) = self.half;
        // Signed distance, approximately in pixels, negative inside.
        let d = if self.ellipse {
            let r = ((dx / a).powi(2) + (dy / b).powi(2)).sqrt();
            (r - 1.0) * a.min(b)
        } else {
            let round = 0.3 * a.min(b);
            let qx = dx.abs() - (a - round);
            let qy = dy.abs() - (b - round);
            let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
            outside + qx.max(qy).min(0.0) - round
        };
        (0.5 - d).clamp(0.0, 1.0)
    }

    /// Texture mix in [0, 1] at (dx, dy) from the centre.
    fn pattern(&self, dx: f32, dy: f32) -> f32 {
        let (s, c) = self.angle.sin_cos();
        let u = (dx * c + dy * s) / self.period;
        if self.checker {
            let v = (-dx * s + dy * c) / self.period;
            ((u.floor() + v.floor()) as i64).rem_euclid(2) as f32
        } else {
            // Soft stripes: a clipped sine, so edges are sharp but not aliased.
            (0.5 + 2.0 * (std::f32::consts::TAU * u).sin()).clamp(0.0, 1.0)
        }
    }

    /// Paints the object at frame `t` over `img`.
    pub fn paint(&self, img: &mut PlanarRgb, t: usize) {
        let (w, h) = (img.width(), img.height());
        let cx = self.centre.0 + self.velocity.0 * t as f32;
        let cy = self.centre.1 + self.velocity.1 * t as f32;
        let (a, b) = (self.half.0 + 1.0, self.half.1 + 1.0);
        let x0 = (cx - a).floor().max(0.0) as usize;
        let y0 = (cy - b).floor().max(0.0) as usize;
        let x1 = ((cx + a).ceil().max(0.0) as usize).min(w);
        let y1 = ((cy + b).ceil().max(0.0) as usize).min(h);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let k = self.coverage(dx, dy);
                if k <= 0.0 {
                    continue;
                }
                let m = self.pattern(dx, dy);
                for (c, p) in img.planes.iter_mut().enumerate() {
                    let v = self.colours[0][c] + (self.colours[1][c] - self.colours[0][c]) * m;
                    let o = &mut p.data[y * w + x];
                    *o += (v - *o) * k;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_moves_by_its_velocity() {
        let m = &movers(1, 200, 100, 5)[0];
        let centroid = |t: usize| {
            let mut img = PlanarRgb::zeros(200, 100);
            // A white object on black: paint twice with both colours white.
            let mut white = m.clone();
            white.colours = [[1.0; 3]; 2];
            white.centre = (100.0, 50.0);
            white.paint(&mut img, t);
            let p = &img.planes[0];
            let (mut sx, mut sy, mut s) = (0.0, 0.0, 0.0);
            for y in 0..100 {
                for x in 0..200 {
                    let v = p.at(x, y) as f64;
                    sx += v * (x as f64 + 0.5);
                    sy += v * (y as f64 + 0.5);
                    s += v;
                }
            }
            assert!(s > 10.0);
            (sx / s, sy / s)
        };
        let (a, b) = (centroid(0), centroid(3));
        assert!(
            (a.0 - 100.0).abs() < 0.5 && (a.1 - 50.0).abs() < 0.5,
            "{a:?}"
        );
        assert!(
            (b.0 - a.0 - 3.0 * m.velocity.0 as f64).abs() < 0.5,
            "{a:?} {b:?}"
        );
        assert!(
            (b.1 - a.1 - 3.0 * m.velocity.1 as f64).abs() < 0.5,
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn objects_are_deterministic_textured_and_clipped_to_the_frame() {
        assert_eq!(movers(4, 64, 48, 9), movers(4, 64, 48, 9));
        assert_ne!(movers(4, 64, 48, 9), movers(4, 64, 48, 10));
        let mut img = PlanarRgb::zeros(64, 48);
        for m in movers(6, 64, 48, 9) {
            // Far outside the frame after many frames: must not panic.
            m.paint(&mut img, 10_000);
            m.paint(&mut img, 0);
        }
        let p = &img.planes[1].data;
        let distinct: std::collections::BTreeSet<u32> =
            p.iter().map(|v| (v * 255.0) as u32).collect();
        assert!(
            distinct.len() > 8,
            "texture expected, {} levels",
            distinct.len()
        );
    }
}
