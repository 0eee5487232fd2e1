//! Rough cost of the temporal stage on one 1080p RGBA frame (not a benchmark of record; use
//! `derain bench` for figures): `cargo run --release --example temporal_cost`.
use derain::temporal::{Temporal, TemporalParams};
use derain::{FrameMut, PixelFormat, TemporalMode};
use std::time::Instant;

fn main() -> derain::Result<()> {
    let (w, h) = (1920usize, 1080usize);
    let mut frames: Vec<Vec<u8>> = (0..4)
        .map(|k| {
            (0..w * h * 4)
                .map(|i| ((i * 7 + k * 13) % 251) as u8)
                .collect()
        })
        .collect();
    let mut st = Temporal::new(TemporalMode::On, TemporalParams::default())?;
    let n = 40;
    let mut t = Instant::now();
    for i in 0..n + 8 {
        if i == 8 {
            t = Instant::now();
        }
        let f = &mut frames[i % 4];
        let mut fm = FrameMut::new(f, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
        st.apply_frame(&mut fm)?;
    }
    println!(
        "temporal stage 1080p RGBA: {:.2} ms/frame ({} threads)",
        t.elapsed().as_secs_f64() * 1e3 / n as f64,
        rayon::current_num_threads()
    );
    Ok(())
}
