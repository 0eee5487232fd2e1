//! Global camera motion between consecutive frames, for `temporal=auto`: a translation
//! found by exhaustive search of the mean absolute luma difference at an eighth of the
//! resolution (±32 px at full resolution), then at a quarter around the best, refined to a
//! fraction of a pixel by a parabola through the best cost and its neighbours on each axis;
//! [`refine`] then measures it at full resolution.

use rayon::prelude::*;

use super::steps::Layout;

/// Downsampling factor of the motion search.
pub const SCALE: usize = 4;
/// Search radius at an eighth of the resolution, px.
const SEARCH: isize = 4;

/// The largest translation per axis, full-resolution px, that the search measures reliably
/// (an eighth-resolution pixel inside its edge).
pub fn reach_px() -> f32 {
    ((SEARCH - 1) as usize * 2 * SCALE) as f32
}

/// Quarter-resolution luma (4×4 box means) of a packed frame stored as `height` rows of
/// `row_bytes` in `frame`; `out` is resized to ⌊w/4⌋×⌊h/4⌋ (empty for frames under 4 px).
pub fn small_luma(frame: &[u8], lay: &Layout, out: &mut Vec<u8>) -> (usize, usize) {
    let (sw, sh) = (lay.width / SCALE, lay.height / SCALE);
    out.resize(sw * sh, 0);
    if sw == 0 || sh == 0 {
        return (sw, sh);
    }
    let rb = lay.row_bytes();
    let [r, g, b] = lay.off;
    out.par_chunks_mut(sw).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let mut s = 0u32;
            for dy in 0..SCALE {
                let line = &frame[(y * SCALE + dy) * rb..];
                for dx in 0..SCALE {
                    let p = &line[(x * SCALE + dx) * lay.bpp..];
                    s += 77 * p[r] as u32 + 150 * p[g] as u32 + 29 * p[b] as u32;
                }
            }
            *o = ((s + 128 * 16) / (256 * 16)) as u8;
        }
    });
    (sw, sh)
}

/// Mean |a(x, y) − b(x + dx, y + dy)| over the overlap (`None` when it is empty).
fn cost(a: &[u8], b: &[u8], w: usize, h: usize, dx: isize, dy: isize) -> Option<f64> {
    let (x0, x1) = ((-dx).max(0) as usize, (w as isize - dx.max(0)) as usize);
    let (y0, y1) = ((-dy).max(0) as usize, (h as isize - dy.max(0)) as usize);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let mut s = 0u64;
    for y in y0..y1 {
        let ra = &a[y * w + x0..y * w + x1];
        let yb = (y as isize + dy) as usize;
        let xb = (x0 as isize + dx) as usize;
        let rb = &b[yb * w + xb..yb * w + xb + (x1 - x0)];
        s += ra
            .iter()
            .zip(rb)
            .map(|(&p, &q)| p.abs_diff(q) as u32)
            .sum::<u32>() as u64;
    }
    Some(s as f64 / ((x1 - x0) * (y1 - y0)) as f64)
}

/// The estimated camera motion from `prev` to `cur` (quarter-resolution luma of equal size).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    /// Translation in full-resolution pixels (content of `cur` at p was at p + shift in `prev`).
    pub shift: (f32, f32),
    /// Mean absolute difference without motion and at the best shift (8-bit levels).
    pub still_cost: f32,
    pub best_cost: f32,
}

impl Motion {
    /// Whether the camera moved by at least `min_px` (sub-pixel moves count: a pan of
    /// 1–2 px per frame has its best integer match at rest on the quarter-resolution grid).
    pub fn moved(&self, min_px: f32) -> bool {
        self.shift.0.hypot(self.shift.1) >= min_px
    }
}

/// Half-size box downsampling of a `w`×`h` luma plane.
fn halve(src: &[u8], w: usize, h: usize) -> (Vec<u8>, usize, usize) {
    let (hw, hh) = (w / 2, h / 2);
    let mut out = vec![0u8; hw * hh];
    for y in 0..hh {
        for x in 0..hw {
            let i = 2 * y * w + 2 * x;
            let s = src[i] as u32 + src[i + 1] as u32 + src[i + w] as u32 + src[i + w + 1] as u32;
            out[y * hw + x] = ((s + 2) / 4) as u8;
        }
    }
    (out, hw, hh)
}

/// The costs of the shifts `centre` ± `radius` (row-major) and the best one.
fn search(
    prev: &[u8],
    cur: &[u8],
    (w, h): (usize, usize),
    centre: (isize, isize),
    radius: isize,
) -> (Vec<f64>, (isize, isize)) {
    let side = 2 * radius + 1;
    let costs: Vec<f64> = (0..side * side)
        .into_par_iter()
        .map(|i| {
            let (dx, dy) = (centre.0 + i % side - radius, centre.1 + i / side - radius);
            cost(cur, prev, w, h, dx, dy).unwrap_or(f64::INFINITY)
        })
        .collect();
    let best = (0..costs.len())
        .min_by(|&a, &b| costs[a].total_cmp(&costs[b]))
        .unwrap_or(0) as isize;
    (costs, (best % side - radius, best / side - radius))
}

/// Coarse-to-fine search of the translation: ±`SEARCH` pixels at an eighth of the resolution
/// (±32 px), then ±2 at a quarter around it, refined on each axis by a parabola.
pub fn estimate(prev: &[u8], cur: &[u8], w: usize, h: usize) -> Option<Motion> {
    // The eighth-resolution plane must be wider than the search.
    if w < 4 * SEARCH as usize + 4 || h < 4 * SEARCH as usize + 4 {
        return None;
    }
    let (p8, w8, h8) = halve(prev, w, h);
    let (c8, ..) = halve(cur, w, h);
    let (_, (cx, cy)) = search(&p8, &c8, (w8, h8), (0, 0), SEARCH);
    const FINE4: isize = 2;
    let centre = (2 * cx, 2 * cy);
    let (costs, (bx, by)) = search(prev, cur, (w, h), centre, FINE4);
    let side = 2 * FINE4 + 1;
    let at = |dx: isize, dy: isize| costs[((dy + FINE4) * side + dx + FINE4) as usize];
    if !at(bx, by).is_finite() {
        return None;
    }
    let (fx, fy) = subpixel(&at, (bx, by), FINE4);
    let s = SCALE as f64;
    let (tx, ty) = (centre.0 + bx, centre.1 + by);
    Some(Motion {
        shift: (((tx as f64 + fx) * s) as f32, ((ty as f64 + fy) * s) as f32),
        still_cost: cost(cur, prev, w, h, 0, 0).unwrap_or(f64::INFINITY) as f32,
        best_cost: at(bx, by) as f32,
    })
}

/// Largest |cur − ref| luma difference a sample adds to the refinement cost: rain only
/// brightens, and a streak in the current frame must not pull the match.
const CLIP: u32 = 24;
/// Full-resolution search radius around the quarter-resolution estimate, px.
const FINE: isize = 2;
/// Samples of the full-resolution refinement: every 8th row, every 4th column (about 65 000
/// at 1080p, 7 000 at 640×360).
const ROW_STEP: usize = 8;
const COL_STEP: usize = 4;

/// Integer BT.601 luma of the pixel at byte `i` of a packed frame (the events' luma too).
#[inline]
pub(super) fn luma(f: &[u8], i: usize, off: [usize; 3]) -> u32 {
    (77 * f[i + off[0]] as u32 + 150 * f[i + off[1]] as u32 + 29 * f[i + off[2]] as u32 + 128) >> 8
}

/// Refines a translation `guess` (px, content of `cur` at p was at p + shift in `reference`)
/// at full resolution: the integer shifts within ±2 px of it, scored by the clipped mean
/// absolute luma difference on a grid of samples inside a margin, then a parabola
/// through the best score and its neighbours on each axis. `reference` is best the previous
/// frame's rain-free background. `None` when the frame is too small for the margin.
pub fn refine(cur: &[u8], reference: &[u8], lay: &Layout, guess: (f32, f32)) -> Option<(f32, f32)> {
    let (gx, gy) = (guess.0.round() as isize, guess.1.round() as isize);
    let margin = gx.abs().max(gy.abs()) + FINE + 1;
    let (w, h) = (lay.width as isize, lay.height as isize);
    if w <= 2 * margin + 8 || h <= 2 * margin + 8 {
        return None;
    }
    let (rb, bpp) = (lay.row_bytes() as isize, lay.bpp as isize);
    let side = 2 * FINE + 1;
    let costs: Vec<f64> = (0..side * side)
        .into_par_iter()
        .map(|i| {
            let (sx, sy) = (gx + i % side - FINE, gy + i / side - FINE);
            let (mut sum, mut n) = (0u64, 0u64);
            for y in (margin..h - margin).step_by(ROW_STEP) {
                let (a, b) = (y * rb, (y + sy) * rb);
                for x in (margin..w - margin).step_by(COL_STEP) {
                    let p = luma(cur, (a + x * bpp) as usize, lay.off);
                    let q = luma(reference, (b + (x + sx) * bpp) as usize, lay.off);
                    sum += p.abs_diff(q).min(CLIP) as u64;
                    n += 1;
                }
            }
            sum as f64 / n.max(1) as f64
        })
        .collect();
    let at = |dx: isize, dy: isize| costs[((dy + FINE) * side + dx + FINE) as usize];
    let best = (0..costs.len()).min_by(|&a, &b| costs[a].total_cmp(&costs[b]))?;
    let (bx, by) = (best as isize % side - FINE, best as isize / side - FINE);
    let (fx, fy) = subpixel(&at, (bx, by), FINE);
    Some(((gx + bx) as f32 + fx as f32, (gy + by) as f32 + fy as f32))
}

/// The fractions of a step to add to the best shift `(bx, by)` of a grid of costs `at` within
/// ±`radius`: a parabola on each axis, none where the best is on the grid's edge.
fn subpixel(
    at: &impl Fn(isize, isize) -> f64,
    (bx, by): (isize, isize),
    radius: isize,
) -> (f64, f64) {
    let fx = if bx.abs() < radius {
        parabola(at(bx - 1, by), at(bx, by), at(bx + 1, by))
    } else {
        0.0
    };
    let fy = if by.abs() < radius {
        parabola(at(bx, by - 1), at(bx, by), at(bx, by + 1))
    } else {
        0.0
    };
    (fx, fy)
}

/// The minimum's offset in [−0.5, 0.5] of the parabola through three equally spaced costs.
fn parabola(m: f64, c: f64, p: f64) -> f64 {
    let d = m - 2.0 * c + p;
    if d > 1e-9 {
        (0.5 * (m - p) / d).clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texture(w: usize, h: usize, ox: f32, oy: f32) -> Vec<u8> {
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 + ox, (i / w) as f32 + oy);
                (128.0 + 60.0 * (0.31 * x).sin() * (0.23 * y).cos() + 40.0 * (0.07 * (x + y)).sin())
                    as u8
            })
            .collect()
    }

    #[test]
    fn a_translation_is_found_and_a_still_camera_is_still() {
        let (w, h) = (80, 60);
        let a = texture(w, h, 0.0, 0.0);
        let b = texture(w, h, 2.0, -1.0); // content moved by (−2, +1)
        let m = estimate(&a, &b, w, h).unwrap();
        assert!((m.shift.0 - 8.0).abs() < 1.5, "{m:?}");
        assert!((m.shift.1 + 4.0).abs() < 1.5, "{m:?}");
        assert!(m.moved(0.5));
        let s = estimate(&a, &a, w, h).unwrap();
        assert_eq!(s.shift, (0.0, 0.0));
        assert!(!s.moved(0.5));
        assert!(estimate(&a[..8 * 6], &a[..8 * 6], 8, 6).is_none());
    }
}
