//! Profiling aid: the 10-filter bank at 1080p (or SIZE=WxH) on 8-bit samples, repeated.
//! `F64=1`: the f64 path on the same data. `CHECK=1`: also prints the largest difference
//! between the integer and f64 paths over all 30 planes.
use derain::physics::guided_filter::{
    Arithmetic, BANK_EPS, BANK_RADII, guided_bank_into, guided_bank_into_with,
};
use derain::{PlanarRgb, Plane};

fn main() {
    let (w, h): (usize, usize) = std::env::var("SIZE")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once('x')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((1920, 1080));
    let arithmetic = match std::env::var("F64").as_deref() {
        Ok("1") => Arithmetic::F64,
        _ => Arithmetic::Auto,
    };
    let mk = |k: usize| Plane {
        width: w,
        height: h,
        data: (0..w * h)
            .map(|i| ((i * 7 + k * 13) % 255) as f32 / 255.0)
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
        guided_bank_into_with(&g, &img, &BANK_RADII, &BANK_EPS, &mut out, arithmetic).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!("min {:.2} ms, median {:.2} ms", times[0], times[n / 2]);
    if std::env::var("CHECK").as_deref() == Ok("1") {
        let mut int: Vec<Plane> = (0..30).map(|_| Plane::zeros(w, h)).collect();
        guided_bank_into(&g, &img, &BANK_RADII, &BANK_EPS, &mut int).unwrap();
        let mut f = out;
        guided_bank_into_with(&g, &img, &BANK_RADII, &BANK_EPS, &mut f, Arithmetic::F64).unwrap();
        let d = int
            .iter()
            .zip(&f)
            .flat_map(|(a, b)| a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()))
            .fold(0f32, f32::max);
        println!("max |integer path − f64 path| over 30 planes: {d:.3e}");
    }
}
