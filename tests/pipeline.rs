//! End-to-end behaviour of the library pipeline on images made here (no external data).

use derain::metrics::psnr_y;
use derain::{Config, Error, FrameMut, FrameRef, Pipeline, PixelFormat, PlanarRgb, Plane};

/// Tiny deterministic PRNG (xorshift) so the tests need no extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A clean "street scene": sky gradient, buildings with windows, textured ground.
fn clean_scene(w: usize, h: usize) -> PlanarRgb {
    let mut img = PlanarRgb::zeros(w, h);
    let mut rng = Rng(7);
    for y in 0..h {
        for x in 0..w {
            let fy = y as f32 / h as f32;
            let mut c = if fy < 0.35 {
                [0.35 + 0.3 * fy, 0.5 + 0.3 * fy, 0.8]
            } else if fy < 0.7 {
                let b = (x * 5 / w) % 3;
                let base = [[0.55, 0.35, 0.3], [0.4, 0.42, 0.45], [0.6, 0.55, 0.4]][b];
                let window = (x % 23 < 9) && (y % 19 < 8);
                if window { [0.15, 0.2, 0.3] } else { base }
            } else {
                let g = 0.25 + 0.1 * rng.next();
                [g, g * 1.1, g * 0.8]
            };
            for v in &mut c {
                *v = (*v + 0.02 * (rng.next() - 0.5)).clamp(0.0, 1.0);
            }
            for (plane, v) in img.planes.iter_mut().zip(c) {
                plane.data[y * w + x] = v;
            }
        }
    }
    img
}

/// I = T·(J + S) + (1 − T)·A with near-vertical streaks S and a veil that thickens with
/// distance (top of the frame is far).
fn render_rain(clean: &PlanarRgb, streaks: usize, intensity: f32, beta: f32, a: f32) -> PlanarRgb {
    let (w, h) = (clean.width(), clean.height());
    let mut s = Plane::zeros(w, h);
    let mut rng = Rng(99);
    for _ in 0..streaks {
        let (x0, y0) = (rng.next() * w as f32, rng.next() * h as f32);
        let len = 15.0 + 30.0 * rng.next();
        let slant = 0.15 * (rng.next() - 0.5);
        let v = intensity * (0.6 + 0.4 * rng.next());
        for t in 0..len as usize {
            let (x, y) = ((x0 + slant * t as f32) as usize, y0 as usize + t);
            if x < w && y < h {
                let p = &mut s.data[y * w + x];
                *p = (*p + v).min(1.0);
            }
        }
    }
    let mut out = clean.clone();
    for y in 0..h {
        let depth = 1.0 - y as f32 / h as f32;
        let t = (-beta * depth).exp();
        for x in 0..w {
            for c in 0..3 {
                let j = clean.planes[c].data[y * w + x];
                let sv = s.data[y * w + x];
                out.planes[c].data[y * w + x] =
                    (t * ((j + sv).min(1.0)) + (1.0 - t) * a).clamp(0.0, 1.0);
            }
        }
    }
    out.quantize();
    out
}

fn physics() -> Pipeline {
    Pipeline::new(Config {
        backend: derain::Backend::Cpu,
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn heavy_rain_with_veil_gains_clearly() {
    let clean = clean_scene(320, 240);
    let rainy = render_rain(&clean, 1500, 0.5, 1.6, 0.85);
    let out = physics().process_image(&rainy).unwrap();
    let (before, after) = (
        psnr_y(&rainy, &clean).unwrap(),
        psnr_y(&out, &clean).unwrap(),
    );
    assert!(before < 20.0, "render is not heavy rain: {before:.2} dB");
    assert!(
        after >= before + 2.0,
        "heavy rain: {before:.2} → {after:.2} dB"
    );
}

#[test]
fn light_rain_without_veil_is_not_damaged() {
    let clean = clean_scene(320, 240);
    let rainy = render_rain(&clean, 150, 0.25, 0.0, 0.8);
    let out = physics().process_image(&rainy).unwrap();
    let (before, after) = (
        psnr_y(&rainy, &clean).unwrap(),
        psnr_y(&out, &clean).unwrap(),
    );
    assert!(
        after >= before - 0.5,
        "light rain: {before:.2} → {after:.2} dB"
    );
}

#[test]
fn clear_image_stays_close_to_itself() {
    let clean = clean_scene(160, 120);
    let out = physics().process_image(&clean).unwrap();
    let p = psnr_y(&out, &clean).unwrap();
    assert!(p > 30.0, "clear image changed too much: {p:.2} dB");
}

#[test]
fn odd_sizes_every_format_strided_alpha_kept() {
    let formats = PixelFormat::ALL;
    let mut p = physics();
    for &(w, h) in &[
        (1usize, 1usize),
        (2, 3),
        (3, 2),
        (7, 5),
        (33, 17),
        (64, 1),
        (1, 64),
        (101, 77),
    ] {
        for fmt in formats {
            let bpp = fmt.bytes_per_pixel();
            let stride = w * bpp + 5; // padded rows
            let mut rng = Rng((w * 31 + h) as u64);
            let src: Vec<u8> = (0..stride * h)
                .map(|_| (rng.next() * 255.0) as u8)
                .collect();
            let mut dst = vec![0u8; stride * h];
            let f = FrameRef::new(&src, w as u32, h as u32, stride, fmt).unwrap();
            let mut o = FrameMut::new(&mut dst, w as u32, h as u32, stride, fmt).unwrap();
            p.process(&f, &mut o)
                .unwrap_or_else(|e| panic!("{w}x{h} {fmt:?}: {e}"));
            if let Some(a) = fmt.alpha_offset() {
                for y in 0..h {
                    for x in 0..w {
                        let i = y * stride + x * bpp + a;
                        assert_eq!(dst[i], src[i], "alpha at ({x},{y}) {fmt:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn components_are_finite_and_in_range() {
    let clean = clean_scene(97, 61);
    let rainy = render_rain(&clean, 300, 0.6, 2.0, 0.9);
    let c = physics().components(&rainy).unwrap();
    for p in c
        .background
        .planes
        .iter()
        .chain([&c.transmission, &c.streaks])
    {
        assert!(p.data.iter().all(|v| v.is_finite()));
    }
    assert!(
        c.background
            .planes
            .iter()
            .all(|p| p.data.iter().all(|&v| (0.0..=1.0).contains(&v)))
    );
    let t0 = Config::default().physics.min_transmission;
    assert!(c.transmission.data.iter().all(|&t| (t0..=1.0).contains(&t)));
    assert!(c.streaks.data.iter().all(|&s| s >= 0.0));
    assert!(c.atmosphere.iter().all(|&a| (0.05..=1.0).contains(&a)));
}

#[test]
fn extreme_inputs_do_not_produce_nan() {
    let mut p = physics();
    for v in [0.0f32, 1.0] {
        let img =
            PlanarRgb::from_planes(std::array::from_fn(|_| Plane::filled(40, 30, v))).unwrap();
        let out = p.process_image(&img).unwrap();
        assert!(
            out.planes
                .iter()
                .all(|pl| pl.data.iter().all(|x| x.is_finite()))
        );
    }
}

#[test]
fn bad_frames_are_typed_errors() {
    let buf = vec![0u8; 100];
    assert!(matches!(
        FrameRef::new(&buf, 0, 0, 0, PixelFormat::Rgba),
        Err(Error::UnsupportedFrame { .. })
    ));
    assert!(matches!(
        FrameRef::new(&buf, 10, 10, 40, PixelFormat::Rgba),
        Err(Error::UnsupportedFrame { .. })
    ));
    assert!(matches!(
        FrameRef::new(&buf, 10, 1, 20, PixelFormat::Rgba),
        Err(Error::UnsupportedFrame { .. })
    ));
    assert!(FrameRef::new(&buf, 20_000, 1, 80_000, PixelFormat::Rgba).is_err());
    let src = vec![0u8; 4 * 4 * 4];
    let mut dst = vec![0u8; 4 * 5 * 4];
    let f = FrameRef::new(&src, 4, 4, 16, PixelFormat::Rgba).unwrap();
    let mut o = FrameMut::new(&mut dst, 4, 5, 16, PixelFormat::Rgba).unwrap();
    assert!(matches!(
        physics().process(&f, &mut o),
        Err(Error::SizeMismatch { .. })
    ));
    let mut o = FrameMut::new(&mut dst[..64], 4, 4, 16, PixelFormat::Bgra).unwrap();
    assert!(physics().process(&f, &mut o).is_err());
    assert!(physics().process_image(&PlanarRgb::zeros(0, 0)).is_err());
}

#[test]
fn invalid_config_is_rejected() {
    for cfg in [
        Config {
            strength: 1.5,
            ..Config::default()
        },
        Config {
            atmosphere_smoothing: -0.1,
            ..Config::default()
        },
        Config {
            strength: f32::NAN,
            ..Config::default()
        },
    ] {
        assert!(matches!(
            Pipeline::new(cfg),
            Err(Error::InvalidParameter { .. })
        ));
    }
    let mut p = physics();
    assert!(p.set_strength(2.0).is_err());
    assert_eq!(p.config().strength, 1.0);
}

#[test]
fn strength_zero_returns_the_input() {
    let clean = clean_scene(64, 48);
    let rainy = render_rain(&clean, 100, 0.5, 1.0, 0.8);
    let mut p = Pipeline::new(Config {
        strength: 0.0,
        backend: derain::Backend::Cpu,
        ..Config::default()
    })
    .unwrap();
    let out = p.process_image(&rainy).unwrap();
    assert_eq!(out, rainy);
}

#[test]
fn uhd_frame_is_processed() {
    let (w, h) = (3840usize, 2160usize);
    let src = vec![128u8; w * h * 4];
    let mut dst = vec![0u8; w * h * 4];
    let f = FrameRef::new(&src, w as u32, h as u32, w * 4, PixelFormat::Rgbx).unwrap();
    let mut o = FrameMut::new(&mut dst, w as u32, h as u32, w * 4, PixelFormat::Rgbx).unwrap();
    physics().process(&f, &mut o).unwrap();
    assert!(dst.chunks_exact(4).all(|p| p[3] == 255));
}

/// Streams that share a pool of engines (`derain serve`) get what each would get on its own
/// engine: the per-stream state (A over frames) stays with the stream, and an engine that
/// served a frame of another size reuses its buffers correctly.
#[test]
fn streams_sharing_one_engine_match_streams_with_their_own() {
    use derain::engine::EnginePool;
    use std::sync::Arc;
    let config = Config {
        backend: derain::Backend::Cpu,
        ..Config::default()
    };
    let pool = Arc::new(EnginePool::new(&config, 1).unwrap());
    let sizes = [(96usize, 64usize), (80, 120)];
    let mut shared: Vec<Pipeline> = sizes
        .iter()
        .map(|_| Pipeline::with_pool(config.clone(), pool.clone()).unwrap())
        .collect();
    let mut own: Vec<Pipeline> = sizes
        .iter()
        .map(|_| Pipeline::new(config.clone()).unwrap())
        .collect();
    for t in 0..3 {
        for (i, &(w, h)) in sizes.iter().enumerate() {
            let mut frame = clean_scene(w, h);
            // A different veil per stream and frame, so that A moves.
            for p in &mut frame.planes {
                for v in &mut p.data {
                    *v = 0.6 * *v + 0.3 + 0.03 * (t + 2 * i) as f32;
                }
            }
            let a = shared[i].process_image(&frame).unwrap();
            let b = own[i].process_image(&frame).unwrap();
            assert_eq!(a.planes, b.planes, "stream {i}, frame {t}");
            assert_eq!(
                shared[i].last_run().unwrap().atmosphere,
                own[i].last_run().unwrap().atmosphere
            );
        }
    }
    assert_eq!(shared[0].backend_name(), "cpu");
    // The pool's mode is the streams' mode.
    let full = Config {
        mode: derain::Mode::Full,
        ..config
    };
    assert!(Pipeline::with_pool(full, pool).is_err());
}

/// The largest difference between the R, G and B of one pixel, over a packed RGBA frame.
fn max_chroma(frame: &[u8]) -> u8 {
    frame
        .chunks_exact(4)
        .map(|p| p[0].max(p[1]).max(p[2]) - p[0].min(p[1]).min(p[2]))
        .max()
        .unwrap_or(0)
}

#[test]
fn a_grey_frame_comes_out_grey_in_both_modes() {
    // A monochrome camera (infrared at night) or a grey photo under heavy rain: the
    // networks' colour priors must not tint it.
    let (w, h) = (96, 64);
    let colour = render_rain(&clean_scene(w, h), 120, 0.8, 1.5, 0.7);
    let mut grey = colour.clone();
    for i in 0..w * h {
        let y =
            (colour.planes[0].data[i] + colour.planes[1].data[i] + colour.planes[2].data[i]) / 3.0;
        for c in 0..3 {
            grey.planes[c].data[i] = y;
        }
    }
    grey.quantize();
    let mut rgba = vec![255u8; w * h * 4];
    for i in 0..w * h {
        for c in 0..3 {
            rgba[4 * i + c] = (grey.planes[c].data[i] * 255.0).round() as u8;
        }
    }
    for mode in [derain::Mode::Physics, derain::Mode::Full] {
        let mut p = Pipeline::new(Config {
            mode,
            backend: derain::Backend::Cpu,
            ..Config::default()
        })
        .unwrap();
        // Packed frames (the element, `derain video`).
        let input = FrameRef::new(&rgba, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
        let mut out = vec![0u8; w * h * 4];
        let mut fm = FrameMut::new(&mut out, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
        p.process(&input, &mut fm).unwrap();
        assert_eq!(max_chroma(&out), 0, "{mode:?}: packed output tinted");
        assert!(out.chunks_exact(4).all(|px| px[3] == 255), "alpha kept");
        // Planar images and components (`derain image`).
        let c = p.components(&grey).unwrap();
        let j = &c.background;
        let spread = (0..w * h)
            .map(|i| {
                let v = [0, 1, 2].map(|k| j.planes[k].data[i]);
                v.iter().cloned().fold(f32::MIN, f32::max)
                    - v.iter().cloned().fold(f32::MAX, f32::min)
            })
            .fold(0.0f32, f32::max);
        assert!(spread < 1e-6, "{mode:?}: J tinted by {spread}");
        let a = c.atmosphere;
        assert!(a[0] == a[1] && a[1] == a[2], "{mode:?}: A {a:?}");
        // A colour frame is left as it was (no greying when the input has colour).
        if mode == derain::Mode::Full {
            let cj = p.components(&colour).unwrap().background;
            let tinted =
                (0..w * h).any(|i| (cj.planes[0].data[i] - cj.planes[2].data[i]).abs() > 0.05);
            assert!(tinted, "a colour frame came out grey");
        }
    }
}
