//! Global camera motion between consecutive frames, for `temporal=auto`: a translation
//! found on quarter-resolution luma by exhaustive search of the mean absolute difference
//! over ±`SEARCH` quarter pixels (±16 px at full resolution), refined to a fraction of a
//! pixel by a parabola through the best cost and its neighbours on each axis.

use rayon::prelude::*;

use super::steps::Layout;

/// Downsampling factor of the motion search.
pub const SCALE: usize = 4;
/// Search radius in downsampled pixels.
const SEARCH: isize = 4;

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

/// Exhaustive search of the translation, refined on each axis by a parabola.
pub fn estimate(prev: &[u8], cur: &[u8], w: usize, h: usize) -> Option<Motion> {
    if w < 4 * SEARCH as usize || h < 4 * SEARCH as usize {
        return None;
    }
    let side = 2 * SEARCH + 1;
    let costs: Vec<f64> = (0..side * side)
        .into_par_iter()
        .map(|i| {
            let (dx, dy) = (i % side - SEARCH, i / side - SEARCH);
            cost(cur, prev, w, h, dx, dy).unwrap_or(f64::INFINITY)
        })
        .collect();
    let at = |dx: isize, dy: isize| costs[((dy + SEARCH) * side + dx + SEARCH) as usize];
    let best = (0..costs.len()).min_by(|&a, &b| costs[a].total_cmp(&costs[b]))?;
    let (bx, by) = (best as isize % side - SEARCH, best as isize / side - SEARCH);
    let refine = |m: f64, c: f64, p: f64| {
        let d = m - 2.0 * c + p;
        if d > 1e-9 {
            (0.5 * (m - p) / d).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    };
    let fx = if bx.abs() < SEARCH {
        refine(at(bx - 1, by), at(bx, by), at(bx + 1, by))
    } else {
        0.0
    };
    let fy = if by.abs() < SEARCH {
        refine(at(bx, by - 1), at(bx, by), at(bx, by + 1))
    } else {
        0.0
    };
    let s = SCALE as f64;
    Some(Motion {
        shift: (((bx as f64 + fx) * s) as f32, ((by as f64 + fy) * s) as f32),
        still_cost: at(0, 0) as f32,
        best_cost: at(bx, by) as f32,
    })
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
