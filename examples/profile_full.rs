//! Profiling aid: `full` mode end to end, repeated (perf record on
//! `cargo build --profile profiling --example profile_full`).
//!
//!     profile_full [FRAMES] [fast|quality] [WxH] [ensemble]
use derain::{Config, FrameMut, FrameRef, Mode, Pipeline, PixelFormat};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let model = args.get(2).cloned().unwrap_or_else(|| "fast".into());
    let (w, h) = args
        .get(3)
        .and_then(|s| s.split_once('x'))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((1280usize, 720usize));
    let ensemble = args.get(4).is_some_and(|s| s == "ensemble");
    let src: Vec<u8> = (0..w * h * 4)
        .map(|i| ((i * 7 + (i / (w * 4)) * 3) % 251) as u8)
        .collect();
    let mut dst = vec![0u8; w * h * 4];
    let mut p = Pipeline::new(Config {
        backend: derain::Backend::Cpu,
        mode: Mode::Full,
        model: Some(model.parse().expect("fast, quality or a folder")),
        ensemble,
        ..Config::default()
    })
    .expect("pipeline");
    let mut run = |k: usize| {
        let t = std::time::Instant::now();
        for _ in 0..k {
            let f = FrameRef::new(&src, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            let mut o =
                FrameMut::new(&mut dst, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
            p.process(&f, &mut o).expect("process");
        }
        t.elapsed().as_secs_f64() * 1e3 / k as f64
    };
    run(2);
    println!("{:.2} ms/frame ({w}x{h}, {model})", run(n));
    println!("last frame: {:?}", p.last_run().map(|r| r.timings));
}
