//! Profiling aid: physics mode end to end at 1080p, repeated.
use derain::{Config, FrameMut, FrameRef, Pipeline, PixelFormat};

fn main() {
    let (w, h) = (1920usize, 1080usize);
    let src: Vec<u8> = (0..w * h * 4)
        .map(|i| ((i * 7 + (i / (w * 4)) * 3) % 251) as u8)
        .collect();
    let mut dst = vec![0u8; w * h * 4];
    let mut p = Pipeline::new(Config {
        backend: derain::Backend::Cpu,
        ..Config::default()
    })
    .unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let t = std::time::Instant::now();
    for _ in 0..n {
        let f = FrameRef::new(&src, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
        let mut o = FrameMut::new(&mut dst, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
        p.process(&f, &mut o).unwrap();
    }
    println!("{:.2} ms/frame", t.elapsed().as_secs_f64() * 1e3 / n as f64);
    println!("process path: {:?}", p.last_run().map(|r| r.timings));
    let img = derain::PlanarRgb::from_frame(
        &FrameRef::new(&src, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap(),
    );
    let c = p.components(&img).unwrap();
    println!("{:?}", c.timings);
}
