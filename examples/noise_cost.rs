//! Cost of the noise bound (physics::noise: estimating the frame's grain) in `physics` mode
//! end to end, side by side: rounds alternate between the default and the bound off
//! (`max_output_noise = 0`, the frame is not read for it) on the same 1080p and 720p RGBA
//! frames. `cargo run --release --example noise_cost [ROUNDS]`.
use derain::config::PhysicsParams;
use derain::{Config, FrameMut, FrameRef, Mode, Pipeline, PixelFormat};
use std::time::Instant;

fn ms_per_frame(p: &mut Pipeline, input: &[u8], w: usize, h: usize, n: usize) -> f64 {
    let src = FrameRef::new(input, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
    let mut out = vec![0u8; input.len()];
    let mut dst = FrameMut::new(&mut out, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        p.process(&src, &mut dst).unwrap();
    }
    t.elapsed().as_secs_f64() * 1e3 / n as f64
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    for (w, h) in [(1280usize, 720usize), (1920, 1080)] {
        // A procedural scene (gradients and blocks) under rendered layered rain.
        let planes = [0.3f32, 0.5, 0.7].map(|base| {
            let data = (0..w * h)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    base + 0.2 * x as f32 / w as f32 + 0.15 * (((x / 64 + y / 48) % 2) as f32)
                })
                .collect();
            derain::Plane::from_vec(w, h, data).unwrap()
        });
        let clean = derain::PlanarRgb::from_planes(planes).unwrap();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let range = derain::synth::RainRange {
            style: derain::synth::Style::Layered,
            intensity: (0.8, 0.8),
        };
        let params = derain::synth::RainParams::sample(&mut rng, &range).unwrap();
        let rainy = derain::synth::render(&clean, &params).unwrap();
        let mut input = vec![0u8; w * h * 4];
        let mut f =
            FrameMut::new(&mut input, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
        rainy.input.write_frame(&mut f, None).unwrap();
        let make = |noise: f32| {
            Pipeline::new(Config {
                mode: Mode::Physics,
                backend: derain::Backend::Cpu,
                physics: PhysicsParams {
                    max_output_noise: noise,
                    ..Default::default()
                },
                ..Config::default()
            })
            .unwrap()
        };
        let (mut on, mut off) = (make(derain::config::DEFAULT_MAX_OUTPUT_NOISE), make(0.0));
        ms_per_frame(&mut on, &input, w, h, 5);
        ms_per_frame(&mut off, &input, w, h, 5);
        let mut ratios = Vec::new();
        for _ in 0..rounds {
            let a = ms_per_frame(&mut on, &input, w, h, 20);
            let b = ms_per_frame(&mut off, &input, w, h, 20);
            println!(
                "{w}x{h}: bound on {a:.2} ms, off {b:.2} ms, ratio {:.3}",
                a / b
            );
            ratios.push(a / b);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "{w}x{h}: median on/off {:.3} over {rounds} rounds ({} threads)",
            ratios[rounds / 2],
            rayon::current_num_threads()
        );
    }
}
