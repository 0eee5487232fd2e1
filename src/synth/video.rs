//! Synthetic rainy video with ground truth: temporally coherent rain over a slowly panning
//! and zooming clean image.
//!
//! - **Camera.** Frame t shows a window of the source image whose centre moves linearly by
//!   `pan_px` (in output pixels), plus an independent per-frame shake of up to ±`shake_px`,
//!   and whose scale goes linearly from 1 to `zoom` over the clip; the window is sampled
//!   bilinearly.
//! - **Moving objects.** `objects` textured shapes cross the scene in screen space
//!   ([`movers`](super::movers)); they are part of the ground truth. The source is pre-shrunk (triangle filter) when it is
//!   more than 1.25× larger than the window needs, so sampling does not alias.
//! - **Rain.** Each streak layer is a fixed set of drops (particles) in screen space with a
//!   position, an amplitude drawn from the same clipped-Gaussian tail as the still renderer
//!   ([`streaks`](super::streaks)), and the layer's fall direction θ. A streak is the path a
//!   drop travels while the shutter is open, so a drop moves `length_px / exposure` pixels
//!   along θ between frames (exposure = open fraction of the frame interval, (0, 1]): long
//!   streaks fall fast. Drops wrap around a canvas padded by the streak reach, keeping the
//!   density constant. Each frame splats the drops (bilinear, mass a·scale², a Gaussian of
//!   σ = (scale − 1)/2 for large drops) and applies the same motion blur, defocus and weight
//!   as the stills.
//! - **Veil.** The proxy depth is computed once on the source and moves with the scene;
//!   β oscillates slowly, β_t = β·(1 + `veil_variation`·sin(2πt/`veil_period_frames` + φ)),
//!   A is constant.
//!
//! Frames are random-access ([`RainVideo::frame`]) and deterministic in the parameters.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::frame::{MAX_DIMENSION, PlanarRgb, Plane};

use super::movers::{Mover, movers};
use super::streaks::{crop, finish_layer, gaussian_blur, reach, tail_amplitude};
use super::{RainParams, RainySample, compose, layer_seed, proxy_depth, resize};

/// RNG stream of the drop particles.
const DROP_STREAM: u64 = 0x0D_0F;

/// Parameters of a synthetic rainy clip.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoParams {
    /// Number of frames (≥ 1).
    pub frames: usize,
    /// Output frame width in px.
    pub width: usize,
    /// Output frame height in px.
    pub height: usize,
    /// Streak layers, β, A, depth prior and seed.
    pub rain: RainParams,
    /// Camera pan over the whole clip, in output pixels (x right, y down).
    pub pan_px: (f32, f32),
    /// Zoom factor at the last frame relative to the first, in [0.5, 2] (1 = none).
    pub zoom: f32,
    /// Fraction of the frame interval the shutter is open, (0, 1]: drops move
    /// `length_px / exposure` px per frame.
    pub exposure: f32,
    /// Relative amplitude of the slow β oscillation, [0, 0.5].
    pub veil_variation: f32,
    /// Period of the β oscillation in frames (> 0).
    pub veil_period_frames: f32,
    /// Camera shake: each frame's view is displaced by an independent uniform offset of up to
    /// ± this many output pixels on each axis (0 = a steady camera), [0, 64].
    pub shake_px: f32,
    /// Textured objects moving across the scene ([`movers`](super::movers)), at most 64.
    pub objects: usize,
}

/// The source window shown at one frame: output pixel (x, y) samples the source at
/// (`x0` + (x + ½)·`px` − ½, `y0` + (y + ½)·`px` − ½).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Left edge in source pixels.
    pub x0: f64,
    /// Top edge in source pixels.
    pub y0: f64,
    /// Source pixels per output pixel.
    pub px: f64,
}

#[derive(Debug, Clone)]
struct Drop {
    x: f32,
    y: f32,
    amplitude: f32,
}

#[derive(Debug, Clone)]
struct LayerDrops {
    drops: Vec<Drop>,
    margin: (usize, usize),
    canvas: (usize, usize),
    step: (f32, f32),
}

/// A renderer of one synthetic clip.
#[derive(Debug, Clone)]
pub struct RainVideo {
    params: VideoParams,
    source: PlanarRgb,
    depth: Plane,
    px0: f64,
    centre0: (f64, f64),
    layers: Vec<LayerDrops>,
    phase: f32,
    movers: Vec<Mover>,
}

impl VideoParams {
    fn validate(&self) -> Result<()> {
        self.rain.validate()?;
        if self.frames == 0 {
            return Err(Error::param("frames", "must be at least 1"));
        }
        let max = MAX_DIMENSION as usize;
        if !(1..=max).contains(&self.width) || !(1..=max).contains(&self.height) {
            return Err(Error::param("size", "frame size out of range"));
        }
        let finite = [
            self.pan_px.0,
            self.pan_px.1,
            self.zoom,
            self.exposure,
            self.veil_variation,
            self.veil_period_frames,
            self.shake_px,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return Err(Error::param("video", "parameters must be finite"));
        }
        if !(0.5..=2.0).contains(&self.zoom) {
            return Err(Error::param(
                "zoom",
                format!("{} outside [0.5, 2]", self.zoom),
            ));
        }
        if !(self.exposure > 0.0 && self.exposure <= 1.0) {
            return Err(Error::param("exposure", "must be in (0, 1]"));
        }
        if !(0.0..=0.5).contains(&self.veil_variation) || self.veil_period_frames <= 0.0 {
            return Err(Error::param(
                "veil_variation",
                "variation in [0, 0.5] and period > 0",
            ));
        }
        if !(0.0..=64.0).contains(&self.shake_px) {
            return Err(Error::param("shake_px", "must be in [0, 64] px"));
        }
        if self.objects > 64 {
            return Err(Error::param("objects", "at most 64"));
        }
        if self.pan_px.0.abs() > 4.0 * max as f32 || self.pan_px.1.abs() > 4.0 * max as f32 {
            return Err(Error::param("pan_px", "pan too large"));
        }
        Ok(())
    }
}

impl RainVideo {
    /// Prepares a clip over `source` (the clean image; it must be at least as large as the
    /// window path needs after scaling, which any image is: the window is scaled to fit).
    pub fn new(source: &PlanarRgb, params: VideoParams) -> Result<Self> {
        params.validate()?;
        if source.width() == 0 || source.height() == 0 {
            return Err(Error::param("clean image", "empty image"));
        }
        let (w, h) = (params.width as f64, params.height as f64);
        let m = (1.0 / params.zoom as f64).max(1.0);
        let shake = 2.0 * params.shake_px as f64;
        let (pan_x, pan_y) = (
            params.pan_px.0.abs() as f64 + shake,
            params.pan_px.1.abs() as f64 + shake,
        );
        let need = |sw: f64, sh: f64| (sw / (w * m + pan_x)).min(sh / (h * m + pan_y));
        let mut src = source.clone();
        let mut px0 = need(src.width() as f64, src.height() as f64);
        if px0 > 1.25 {
            let nw = ((src.width() as f64 / px0).ceil() as usize).max(1);
            let nh = ((src.height() as f64 / px0).ceil() as usize).max(1);
            src = resize(&src, nw, nh)?;
            px0 = need(nw as f64, nh as f64);
        }
        let centre0 = (
            src.width() as f64 * 0.5 - params.pan_px.0 as f64 * px0 * 0.5,
            src.height() as f64 * 0.5 - params.pan_px.1 as f64 * px0 * 0.5,
        );
        let depth = proxy_depth(&src, &params.rain.depth, params.rain.seed)?;
        let layers = params
            .rain
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let margin = reach(l);
                let canvas = (params.width + 2 * margin.0, params.height + 2 * margin.1);
                let mut rng = ChaCha8Rng::seed_from_u64(layer_seed(params.rain.seed, i));
                rng.set_stream(DROP_STREAM);
                let area = (canvas.0 * canvas.1) as f64;
                let count = (l.density as f64 * area / (l.scale as f64).powi(2)).round() as usize;
                let drops = (0..count)
                    .map(|_| Drop {
                        x: rng.random_range(0.0..canvas.0 as f32),
                        y: rng.random_range(0.0..canvas.1 as f32),
                        amplitude: tail_amplitude(&mut rng, l),
                    })
                    .collect();
                let speed = l.length_px / params.exposure;
                let th = l.angle_deg.to_radians();
                LayerDrops {
                    drops,
                    margin,
                    canvas,
                    step: (speed * th.cos(), speed * th.sin()),
                }
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(params.rain.seed);
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        let movers = movers(
            params.objects,
            params.width,
            params.height,
            params.rain.seed,
        );
        Ok(Self {
            params,
            source: src,
            depth,
            px0,
            centre0,
            layers,
            phase,
            movers,
        })
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.params.frames
    }

    /// Whether the clip has no frames (never: [`new`](Self::new) requires at least one).
    pub fn is_empty(&self) -> bool {
        self.params.frames == 0
    }

    /// The parameters of the clip.
    pub fn params(&self) -> &VideoParams {
        &self.params
    }

    /// The (possibly pre-shrunk) source the camera looks at.
    pub fn source(&self) -> &PlanarRgb {
        &self.source
    }

    /// Fraction of the clip elapsed at frame `t`, as (numerator, denominator) kept exact.
    fn progress(&self, t: usize) -> (f64, f64) {
        (t as f64, (self.params.frames.max(2) - 1) as f64)
    }

    /// The source window of frame `t`.
    pub fn window(&self, t: usize) -> Window {
        let (n, d) = self.progress(t);
        let z = 1.0 + (self.params.zoom as f64 - 1.0) * n / d;
        let px = self.px0 / z;
        let cx = self.centre0.0 + self.params.pan_px.0 as f64 * self.px0 * n / d;
        let cy = self.centre0.1 + self.params.pan_px.1 as f64 * self.px0 * n / d;
        let (sx, sy) = self.shake(t);
        let (cx, cy) = (cx + sx * px, cy + sy * px);
        Window {
            x0: cx - self.params.width as f64 * px * 0.5,
            y0: cy - self.params.height as f64 * px * 0.5,
            px,
        }
    }

    /// The camera shake offset of frame `t` in output pixels (zero for a steady camera).
    pub fn shake(&self, t: usize) -> (f64, f64) {
        let a = self.params.shake_px as f64;
        if a == 0.0 {
            return (0.0, 0.0);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.params.rain.seed ^ 0x5_4A4E);
        rng.set_stream(t as u64);
        (rng.random_range(-a..=a), rng.random_range(-a..=a))
    }

    /// The moving objects of the clip (painted into the ground truth).
    pub fn movers(&self) -> &[Mover] {
        &self.movers
    }

    /// β at frame `t`.
    pub fn beta(&self, t: usize) -> f32 {
        let p = &self.params;
        let arg = std::f32::consts::TAU * t as f32 / p.veil_period_frames + self.phase;
        p.rain.beta * (1.0 + p.veil_variation * arg.sin())
    }

    /// The clean ground truth of frame `t` (errors past the last frame).
    pub fn background(&self, t: usize) -> Result<PlanarRgb> {
        self.check_frame(t)?;
        let win = self.window(t);
        let mut img = PlanarRgb::from_planes([0, 1, 2].map(|c| {
            sample_window(
                &self.source.planes[c],
                win,
                self.params.width,
                self.params.height,
            )
        }))?;
        for m in &self.movers {
            m.paint(&mut img, t);
        }
        Ok(img)
    }

    fn check_frame(&self, t: usize) -> Result<()> {
        if t >= self.params.frames {
            return Err(Error::param(
                "frame",
                format!("{t} is past the last frame {}", self.params.frames - 1),
            ));
        }
        Ok(())
    }

    /// The streak layer sum R of frame `t` (before the clip against the background).
    pub fn rain(&self, t: usize) -> Result<Plane> {
        self.check_frame(t)?;
        let (w, h) = (self.params.width, self.params.height);
        let mut sum = Plane::zeros(w, h);
        for (l, ld) in self.params.rain.layers.iter().zip(&self.layers) {
            let (cw, ch) = ld.canvas;
            let mut seeds = Plane::zeros(cw, ch);
            let mass = l.scale * l.scale;
            let (dx, dy) = (ld.step.0 * t as f32, ld.step.1 * t as f32);
            for d in &ld.drops {
                let x = (d.x + dx).rem_euclid(cw as f32);
                let y = (d.y + dy).rem_euclid(ch as f32);
                splat(&mut seeds, x, y, d.amplitude * mass);
            }
            if l.scale > 1.3 {
                seeds = gaussian_blur(&seeds, 0.5 * (l.scale - 1.0));
            }
            let r = finish_layer(&seeds, l)?;
            let r = crop(&r, ld.margin.0, ld.margin.1, w, h);
            sum.data.iter_mut().zip(&r.data).for_each(|(s, &v)| *s += v);
        }
        Ok(sum)
    }

    /// Frame `t` with all its layers.
    pub fn frame(&self, t: usize) -> Result<RainySample> {
        let background = self.background(t)?;
        let depth = sample_window(
            &self.depth,
            self.window(t),
            self.params.width,
            self.params.height,
        );
        let params = RainParams {
            beta: self.beta(t),
            ..self.params.rain.clone()
        };
        compose(background, self.rain(t)?, depth, &params)
    }
}

/// Adds `v` at (x, y) with bilinear weights (wrapping around the plane).
fn splat(p: &mut Plane, x: f32, y: f32, v: f32) {
    let (w, h) = (p.width, p.height);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as usize % w, y0 as usize % h);
    let (x1, y1) = ((x0 + 1) % w, (y0 + 1) % h);
    p.data[y0 * w + x0] += v * (1.0 - fx) * (1.0 - fy);
    p.data[y0 * w + x1] += v * fx * (1.0 - fy);
    p.data[y1 * w + x0] += v * (1.0 - fx) * fy;
    p.data[y1 * w + x1] += v * fx * fy;
}

/// Bilinear sampling of `src` over `win` into a `w`×`h` plane (coordinates clamped to the
/// source). Integer-aligned windows with `px` = 1 copy the source exactly.
pub fn sample_window(src: &Plane, win: Window, w: usize, h: usize) -> Plane {
    let coord = |o: f64, i: usize, n: usize| -> (usize, usize, f32) {
        let f = (o + (i as f64 + 0.5) * win.px - 0.5).clamp(0.0, (n - 1) as f64);
        let i0 = f.floor() as usize;
        (i0, (i0 + 1).min(n - 1), (f - i0 as f64) as f32)
    };
    let xs: Vec<_> = (0..w).map(|x| coord(win.x0, x, src.width)).collect();
    let mut out = Plane::zeros(w, h);
    for y in 0..h {
        let (y0, y1, fy) = coord(win.y0, y, src.height);
        let (r0, r1) = (src.row(y0), src.row(y1));
        for (o, &(x0, x1, fx)) in out.row_mut(y).iter_mut().zip(&xs) {
            let top = if fx == 0.0 {
                r0[x0]
            } else {
                r0[x0] + (r0[x1] - r0[x0]) * fx
            };
            let bot = if fx == 0.0 {
                r1[x0]
            } else {
                r1[x0] + (r1[x1] - r1[x0]) * fx
            };
            *o = if fy == 0.0 {
                top
            } else {
                top + (bot - top) * fy
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{RainRange, StreakLayer};

    fn params(frames: usize, w: usize, h: usize) -> VideoParams {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let rain = RainParams::sample(&mut rng, &RainRange::default()).unwrap();
        VideoParams {
            frames,
            width: w,
            height: h,
            rain,
            pan_px: (0.0, 0.0),
            zoom: 1.0,
            exposure: 0.8,
            veil_variation: 0.1,
            veil_period_frames: 50.0,
            shake_px: 0.0,
            objects: 0,
        }
    }

    #[test]
    fn a_still_camera_shows_the_source_unchanged() {
        let mut src = PlanarRgb::zeros(30, 20);
        for (i, v) in src.planes[1].data.iter_mut().enumerate() {
            *v = (i % 13) as f32 / 13.0;
        }
        let v = RainVideo::new(&src, params(3, 30, 20)).unwrap();
        for t in 0..3 {
            assert_eq!(v.background(t).unwrap(), src);
        }
        assert!(v.background(3).is_err());
    }

    #[test]
    fn drops_fall_by_length_over_exposure_between_frames() {
        // One sparse vertical layer: the streak pattern of frame t+1 is that of frame t
        // shifted down by L / exposure.
        let mut p = params(2, 64, 160);
        p.rain.layers = vec![StreakLayer::reference(0.002, 1.0, 90.0, 12.0)];
        p.exposure = 0.5;
        let v = RainVideo::new(&PlanarRgb::zeros(64, 160), p).unwrap();
        let (a, b) = (v.rain(0).unwrap(), v.rain(1).unwrap());
        let score = |dy: usize| -> f64 {
            (0..160 - dy)
                .flat_map(|y| (0..64).map(move |x| (x, y)))
                .map(|(x, y)| a.at(x, y) as f64 * b.at(x, y + dy) as f64)
                .sum()
        };
        let best = (0..60)
            .max_by(|&i, &j| score(i).total_cmp(&score(j)))
            .unwrap();
        assert_eq!(best, 24);
    }

    #[test]
    fn tiny_sources_and_frames_render() {
        let v = RainVideo::new(&PlanarRgb::zeros(1, 1), params(2, 3, 2)).unwrap();
        let f = v.frame(1).unwrap();
        assert_eq!((f.width(), f.height()), (3, 2));
        let v = RainVideo::new(&PlanarRgb::zeros(50, 40), params(2, 1, 1)).unwrap();
        assert!(v.frame(0).unwrap().input.planes[0].data[0].is_finite());
    }

    #[test]
    fn bad_video_parameters_are_errors() {
        let src = PlanarRgb::zeros(8, 8);
        let mut p = params(0, 8, 8);
        assert!(RainVideo::new(&src, p.clone()).is_err());
        p.frames = 2;
        p.zoom = 5.0;
        assert!(RainVideo::new(&src, p.clone()).is_err());
        p.zoom = 1.0;
        p.exposure = 0.0;
        assert!(RainVideo::new(&src, p).is_err());
    }
}
