//! `physics` mode end to end (RGBA frame in → RGBA frame out) at 720p and 1080p, pixels/s.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use derain::{Backend, Config, FrameMut, FrameRef, Pipeline, PixelFormat};

fn bench(c: &mut Criterion) {
    for (w, h) in [(1280usize, 720usize), (1920, 1080)] {
        let src: Vec<u8> = (0..w * h * 4)
            .map(|i| ((i * 7 + (i / (w * 4)) * 13) % 253) as u8)
            .collect();
        let mut dst = vec![0u8; w * h * 4];
        let mut p = Pipeline::new(Config {
            backend: Backend::Cpu,
            ..Config::default()
        })
        .unwrap();
        let mut grp = c.benchmark_group(format!("cpu_physics_{h}p"));
        grp.throughput(Throughput::Elements((w * h) as u64));
        grp.sample_size(20);
        grp.bench_function("rgba_end_to_end", |b| {
            b.iter(|| {
                let f = FrameRef::new(&src, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
                let mut o =
                    FrameMut::new(&mut dst, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap();
                p.process(&f, &mut o).unwrap();
            })
        });
        grp.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
