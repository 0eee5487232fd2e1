//! Profiling aid: the 10-filter bank at 1080p, repeated.
use derain::physics::guided_filter::{BANK_EPS, BANK_RADII, guided_bank_into};
use derain::{PlanarRgb, Plane};

fn main() {
    let (w, h): (usize, usize) = std::env::var("SIZE")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((1920, 1080));
    // 8-bit samples (the exact integer path), or with FLOAT=1 samples off the 1/255 grid
    // (the f64 path).
    let off = match std::env::var("FLOAT").as_deref() {
        Ok("1") => 0.25 / 255.0,
        _ => 0.0,
    };
    let mk = |k: usize| Plane {
        width: w,
        height: h,
        data: (0..w * h)
            .map(|i| ((i * 7 + k * 13) % 255) as f32 / 255.0 + off)
            .collect(),
    };
    let g = mk(0);
    let img = PlanarRgb::from_planes([mk(1), mk(2), mk(3)]).unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut out: Vec<Plane> = (0..30).map(|_| Plane::zeros(w, h)).collect();
    let mut times = Vec::new();
    for _ in 0..n {
        let t = std::time::Instant::now();
        guided_bank_into(&g, &img, &BANK_RADII, &BANK_EPS, &mut out).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!("min {:.2} ms, median {:.2} ms", times[0], times[n / 2]);
}
