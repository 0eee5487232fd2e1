//! Rough cost of the temporal stage on 1080p RGBA frames (not a benchmark of record; use
//! `derain bench` for figures):
//! `cargo run --release --example temporal_cost [on|auto] [still|pan] [physics|full]` — `pan`
//! moves the picture 2 px per frame, so `auto` compensates it (motion search and shifted
//! history); the last argument picks the mode's parameters (the rank of the background, and
//! after `full` the streak-fringe test, which reads the input frame: here the frame itself).
use derain::temporal::{Temporal, TemporalParams};
use derain::{FrameMut, FrameRef, Mode, PixelFormat, TemporalMode};
use std::time::Instant;

fn main() -> derain::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        Some("auto") => TemporalMode::Auto,
        _ => TemporalMode::On,
    };
    let pan = args.get(1).is_some_and(|a| a == "pan");
    let method = match args.get(2).map(String::as_str) {
        Some("full") => Mode::Full,
        _ => Mode::Physics,
    };
    let (w, h) = (1920usize, 1080usize);
    let n = 40;
    // A smooth texture wide enough for the pan; each frame is a window of it.
    let tw = w + 2 * (n + 8);
    let texture: Vec<u8> = (0..tw * h)
        .flat_map(|i| {
            let (x, y) = ((i % tw) as f32, (i / tw) as f32);
            let v =
                128.0 + 60.0 * (0.05 * x).sin() * (0.04 * y).cos() + 30.0 * (0.011 * (x + y)).sin();
            [v as u8, (v * 0.8) as u8, (255.0 - v) as u8, 255]
        })
        .collect();
    let frame = |k: usize| -> Vec<u8> {
        let x0 = if pan { 2 * k } else { 0 };
        let mut f = Vec::with_capacity(w * h * 4);
        for y in 0..h {
            f.extend_from_slice(&texture[(y * tw + x0) * 4..(y * tw + x0 + w) * 4]);
        }
        f
    };
    let mut frames: Vec<Vec<u8>> = (0..n + 8).map(frame).collect();
    let inputs = frames.clone();
    let mut st = Temporal::new(mode, TemporalParams::for_mode(method))?;
    let mut t = Instant::now();
    let mut shifts = 0;
    for (i, (f, input)) in frames.iter_mut().zip(&inputs).enumerate() {
        if i == 8 {
            t = Instant::now();
        }
        let input = FrameRef::new(input, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
        let mut fm = FrameMut::new(f, w as u32, h as u32, w * 4, PixelFormat::Rgba)?;
        let info = st.apply_frame(Some(&input), &mut fm)?;
        shifts += (info.camera_shift != (0.0, 0.0)) as usize;
    }
    println!(
        "temporal stage ({mode:?}, {}, after {method:?}) 1080p RGBA: {:.2} ms/frame ({} threads; {shifts} frames compensated)",
        if pan { "panning 2 px/frame" } else { "still" },
        t.elapsed().as_secs_f64() * 1e3 / n as f64,
        rayon::current_num_threads()
    );
    Ok(())
}
