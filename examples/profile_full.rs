//! Profiling aid: `full` mode end to end, repeated (perf record on
//! `cargo build --profile profiling --example profile_full`).
//!
//!     profile_full [FRAMES] [fast|quality|DIR] [WxH[,WxH…]] [ensemble]
//!
//! With several sizes, one pipeline per size, fed in turn (cameras of different sizes in one
//! process, as `derain serve`): the time is per round of one frame each.
use derain::{Config, FrameMut, FrameRef, Mode, Pipeline, PixelFormat};

/// A camera: width, height, its frame, the output buffer and its pipeline.
type Camera = (usize, usize, Vec<u8>, Vec<u8>, Pipeline);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let model = args.get(2).cloned().unwrap_or_else(|| "fast".into());
    let sizes: Vec<(usize, usize)> = args
        .get(3)
        .map(|s| {
            s.split(',')
                .filter_map(|wh| wh.split_once('x'))
                .filter_map(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .collect()
        })
        .filter(|v: &Vec<_>| !v.is_empty())
        .unwrap_or_else(|| vec![(1280, 720)]);
    let ensemble = args.get(4).is_some_and(|s| s == "ensemble");
    let mut cams: Vec<Camera> = sizes
        .iter()
        .map(|&(w, h)| {
            let src: Vec<u8> = (0..w * h * 4)
                .map(|i| ((i * 7 + (i / (w * 4)) * 3) % 251) as u8)
                .collect();
            let p = Pipeline::new(Config {
                backend: derain::Backend::Cpu,
                mode: Mode::Full,
                model: Some(model.parse().expect("fast, quality or a folder")),
                ensemble,
                ..Config::default()
            })
            .expect("pipeline");
            (w, h, src, vec![0u8; w * h * 4], p)
        })
        .collect();
    let mut run = |k: usize| {
        let t = std::time::Instant::now();
        for _ in 0..k {
            for (w, h, src, dst, p) in cams.iter_mut() {
                let (w, h) = (*w as u32, *h as u32);
                let f = FrameRef::new(src, w, h, w as usize * 4, PixelFormat::Rgba).unwrap();
                let mut o = FrameMut::new(dst, w, h, w as usize * 4, PixelFormat::Rgba).unwrap();
                p.process(&f, &mut o).expect("process");
            }
        }
        t.elapsed().as_secs_f64() * 1e3 / k as f64
    };
    run(2);
    println!("{:.2} ms per round ({sizes:?}, {model})", run(n));
}
