//! Guided filter throughput (pixels/s): one filter r=8 with a 3-channel input at 720p/1080p and
//! the paper's 10-filter bank at 1080p, on 8-bit frame data (the exact integer path) and, for the
//! bank, on the same data in f64 arithmetic. The OpenCV baseline for the same work is measured by
//! `scripts/opencv_bench.py`; BENCHMARKS.md puts both side by side.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use derain::Plane;
use derain::physics::guided_filter::{
    Arithmetic, BANK_EPS, BANK_RADII, guided_bank_into, guided_bank_into_with,
    guided_filter_multi_into,
};
use derain::physics::residue::residue;
use derain::{PlanarRgb, frame::FrameRef, frame::PixelFormat};

fn frame(w: usize, h: usize) -> PlanarRgb {
    let bytes: Vec<u8> = (0..w * h * 4)
        .map(|i| ((i * 7 + (i / (w * 4)) * 13) % 253) as u8)
        .collect();
    PlanarRgb::from_frame(
        &FrameRef::new(&bytes, w as u32, h as u32, w * 4, PixelFormat::Rgba).unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    for (w, h) in [(1280, 720), (1920, 1080)] {
        let img = frame(w, h);
        let guide: Plane = residue(&img);
        let [r, g, b] = &img.planes;
        let mut grp = c.benchmark_group(format!("cpu_guided_r8_{h}p"));
        grp.throughput(Throughput::Elements((w * h) as u64));
        grp.sample_size(20);
        // Outputs reused across iterations, as a per-frame caller does (and as the OpenCV
        // baseline reuses `dst`).
        let mut out: Vec<Plane> = (0..3).map(|_| Plane::zeros(w, h)).collect();
        grp.bench_function("3ch_eps1e-3", |bch| {
            bch.iter(|| guided_filter_multi_into(&guide, &[r, g, b], 8, &[1e-3], &mut out).unwrap())
        });
        grp.finish();
    }
    let img = frame(1920, 1080);
    let guide = residue(&img);
    let mut grp = c.benchmark_group("cpu_bank10_1080p");
    grp.throughput(Throughput::Elements(1920 * 1080));
    grp.sample_size(10);
    let mut out: Vec<Plane> = (0..30).map(|_| Plane::zeros(1920, 1080)).collect();
    // 8-bit frame data: the exact integer path.
    grp.bench_function("radii2-32_eps1e-3_1e-4_3ch", |bch| {
        bch.iter(|| guided_bank_into(&guide, &img, &BANK_RADII, &BANK_EPS, &mut out).unwrap())
    });
    // The same data in f64 arithmetic.
    grp.bench_function("radii2-32_eps1e-3_1e-4_3ch_f64path", |bch| {
        bch.iter(|| {
            let f64_path = Arithmetic::F64;
            guided_bank_into_with(&guide, &img, &BANK_RADII, &BANK_EPS, &mut out, f64_path).unwrap()
        })
    });
    grp.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
