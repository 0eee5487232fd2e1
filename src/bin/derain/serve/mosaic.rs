//! The mosaic of `derain serve --mosaic`: every camera's newest derained frame tiled on one
//! stream (`/mosaic`), for a wall. Cameras fill a near-square grid in the order given, each
//! scaled to fit its tile with its aspect kept (area sampling, no aliasing on downscale); a
//! camera that is away shows its last frame greyed out, one never seen a dark tile. The mosaic
//! is only composed while someone watches it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::rtsp::Output;
use crate::video::stop::Stop;

/// Background and empty tiles.
const BACKGROUND: u8 = 16;
/// Pixels between tiles.
const GAP: u32 = 4;

/// Grid (columns, rows) for `n` tiles: as square as possible, wider than tall.
pub fn grid(n: usize) -> (u32, u32) {
    let cols = (n as f64).sqrt().ceil().max(1.0) as u32;
    let rows = (n as u32).div_ceil(cols).max(1);
    (cols, rows)
}

/// The largest (w, h) with the aspect of `src` inside `tile`.
fn fit((sw, sh): (u32, u32), (tw, th): (u32, u32)) -> (u32, u32) {
    let s = (tw as f64 / sw as f64).min(th as f64 / sh as f64);
    (
        ((sw as f64 * s).round() as u32).clamp(1, tw),
        ((sh as f64 * s).round() as u32).clamp(1, th),
    )
}

/// Sample positions of each destination column (or row): up to 4 evenly inside its
/// footprint in the source.
fn taps(dst: u32, src: u32) -> Vec<([u32; 4], u32)> {
    let scale = src as f64 / dst as f64;
    let n = (scale.ceil() as u32).clamp(1, 4);
    (0..dst)
        .map(|d| {
            let mut t = [0u32; 4];
            for (j, tap) in t.iter_mut().enumerate().take(n as usize) {
                let s = (d as f64 + (j as f64 + 0.5) / n as f64) * scale;
                *tap = (s as u32).min(src - 1);
            }
            (t, n)
        })
        .collect()
}

/// Draws packed RGBx `src` (stride 4·sw) scaled to `(fw, fh)` at `(x0, y0)` of `dst`.
#[allow(clippy::too_many_arguments)]
fn draw(
    dst: &mut [u8],
    dst_w: u32,
    (x0, y0): (u32, u32),
    (fw, fh): (u32, u32),
    src: &[u8],
    sw: u32,
    sh: u32,
) {
    let xs = taps(fw, sw);
    let ys = taps(fh, sh);
    let stride = sw as usize * 4;
    for (y, (ty, ny)) in ys.iter().enumerate() {
        let row =
            &mut dst[((y0 as usize + y) * dst_w as usize + x0 as usize) * 4..][..fw as usize * 4];
        for (x, (tx, nx)) in xs.iter().enumerate() {
            let mut acc = [0u32; 3];
            for &sy in &ty[..*ny as usize] {
                let line = &src[sy as usize * stride..];
                for &sx in &tx[..*nx as usize] {
                    let p = &line[sx as usize * 4..][..3];
                    acc[0] += p[0] as u32;
                    acc[1] += p[1] as u32;
                    acc[2] += p[2] as u32;
                }
            }
            let n = ny * nx;
            let px = &mut row[x * 4..][..4];
            for c in 0..3 {
                px[c] = ((acc[c] + n / 2) / n) as u8;
            }
            px[3] = 255;
        }
    }
}

/// One mosaic frame (packed RGBx) of the cameras' newest frames.
pub fn compose(cameras: &[Arc<Output>], (w, h): (u32, u32)) -> Vec<u8> {
    let mut canvas = vec![BACKGROUND; w as usize * h as usize * 4];
    let (cols, rows) = grid(cameras.len());
    let (tw, th) = (w / cols, h / rows);
    for (i, cam) in cameras.iter().enumerate() {
        let (col, row) = (i as u32 % cols, i as u32 / cols);
        let inner = (tw.saturating_sub(GAP).max(1), th.saturating_sub(GAP).max(1));
        let Some(latest) = cam.latest() else { continue };
        let Ok(map) = latest.buffer.map_readable() else {
            continue;
        };
        if map.len() < latest.width as usize * latest.height as usize * 4 {
            continue;
        }
        let (fw, fh) = fit((latest.width, latest.height), inner);
        if fw > tw || fh > th {
            // Tiles smaller than a pixel (refused by the settings; never drawn out of the
            // canvas).
            continue;
        }
        let x0 = col * tw + (tw - fw) / 2;
        let y0 = row * th + (th - fh) / 2;
        draw(
            &mut canvas,
            w,
            (x0, y0),
            (fw, fh),
            &map,
            latest.width,
            latest.height,
        );
    }
    canvas
}

/// Composes and sends the mosaic at `fps` while it is watched, until a stop.
pub fn run(out: Arc<Output>, cameras: Vec<Arc<Output>>, size: (u32, u32), fps: f64, stop: Stop) {
    let period = Duration::from_secs_f64(1.0 / fps);
    let mut next = Instant::now();
    out.stats.update(|c| {
        (c.width, c.height) = size;
        c.state = super::stats::State::Live;
    });
    while stop.requested().is_none() {
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
        if !out.watched() {
            continue;
        }
        let t = Instant::now();
        let frame = compose(&cameras, size);
        let took = t.elapsed();
        let rate = gst::Fraction::approximate_f64(fps).unwrap_or(gst::Fraction::new(10, 1));
        out.publish(gst::Buffer::from_mut_slice(frame), size, rate);
        out.stats.update(|c| {
            c.frames_in += 1;
            c.timed(took, took);
            c.frames_out += 1;
            c.last_frame = Some(Instant::now());
        });
    }
    out.stats.update(|c| c.state = super::stats::State::Stopped);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_and_fits() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(2), (2, 1));
        assert_eq!(grid(4), (2, 2));
        assert_eq!(grid(5), (3, 2));
        assert_eq!(fit((1920, 1080), (636, 356)), (633, 356));
        assert_eq!(fit((480, 640), (636, 356)), (267, 356));
    }

    #[test]
    fn downscaling_averages_the_footprint() {
        // A 4x2 checkerboard of 0/200 scaled to 2x1: every output pixel averages both.
        let mut src = Vec::new();
        for y in 0..2u32 {
            for x in 0..4u32 {
                let v = if (x + y) % 2 == 0 { 0 } else { 200 };
                src.extend_from_slice(&[v, v, v, 255]);
            }
        }
        let mut dst = vec![0u8; 2 * 4];
        draw(&mut dst, 2, (0, 0), (2, 1), &src, 4, 2);
        assert_eq!(dst, [100, 100, 100, 255, 100, 100, 100, 255]);
    }
}
